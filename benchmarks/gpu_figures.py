"""`python -m benchmarks.gpu_figures --out=gpu.json [--part=all|epoch|models|augment|input] [--smoke]`.

Takes the GPU figures with the project's own commands (`train.py`, `train.py --benchmark`, the ceilings
of `python -m benchmarks.throughput`, `python -m benchmarks.input_pipeline`) on data it generates
offline in the real formats (benchmarks/gpu_data.py), and gathers them, with the hardware, versions, every
command and its wall time, into one JSON, rewritten after every run. The whole measurement fits one device
call inside a 15-minute lease (`LEASE`): the parts run most important first, each within its own budget
(time an earlier part leaves unused passes on), the plan recorded in the JSON (`budget`). Calling again
with the same `--out` merges (runs already measured on the same device are skipped). `--smoke` shrinks
everything so it runs on a CPU in minutes, and still records the full plan's budget. BUILD.md, "GPU
figures: how to take them".
"""

import dataclasses
import datetime
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

from benchmarks import gpu_data

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Most important first: a lease that runs short loses the last ones.
PARTS = ('epoch', 'models', 'augment', 'input')
BACKENDS = ('jax', 'tensorflow')
AUGMENT_SHARE_POLICIES = ('seed', 'randaugment+mixup')
# The targets: (comparison, bound).
RATIO_TARGET = ('>=', 0.97)
EPOCH_TARGET_S = ('<=', 1.0)
AUGMENT_SHARE_TARGET = ('<=', 0.05)
GATHER_TARGET = ('>=', 10e6)
FIRST_EPOCH_TARGET = ('>=', 0.8)


@dataclasses.dataclass(frozen=True)
class Lease:
    """The device time a session gets, and what it goes to (seconds).

    Attributes:
      lease_s: all device time of a session: machine start, transfers, idle waits and runs.
      staging_s: what staging takes before the figures (stage.sh's calls: a machine start, the wheel parts'
        transfers, setup.sh's install once), measured or estimated; see BUILD.md.
      call_limit_s: one device call's limit; the figures run in one call (`timeout_s` below it).
      probe_s: the hardware probe (JAX's GPU client start in a child process).
    """

    lease_s: float = 900.0
    staging_s: float = 360.0
    call_limit_s: float = 600.0
    probe_s: float = 20.0

    @property
    def measurement_s(self) -> float:
        """What is left for the figures after staging: about 9 minutes."""
        return self.lease_s - self.staging_s


LEASE = Lease()


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Every size the figures use, in one place; FULL is the issue's, SMOKE fits a 2-core CPU.

    Attributes:
      caltech_files: JPEGs in the generated Caltech-shaped archive (257 classes; the builder splits 80/20).
        The ConvNeXt runs only need a few batches of real records (their cache repeats), so 4 per class.
      cifar_train / cifar_test: records of the generated CIFAR-100 splits (a full epoch is the figure; the
        test split only feeds the final evaluation).
      big_model / big_size / big_batch: the large model's `--model`, `--image_size`, `--batch_size`.
      big_steps: `--steps_per_epoch` of its runs (timed ceiling steps, and each of the real loop's epochs).
      epoch_runs: full CIFAR epochs of cifar_resnet9, one run per (batch, steps_per_execution, cache); the
        first is the figure, the others compare (run while the part's budget lasts).
      epochs: epochs of each epoch run; the first carries compilation and is not the figure.
      input_min_seconds: `benchmarks.input_pipeline --min_seconds` (each timed row runs this long).
      cifar_input_examples: generated CIFAR-sized examples behind the device-cache gather row.
      min_run_s: a run is not started with less of the part's budget left.
      budgets_s: seconds per part (data generation included), in `PARTS` order.
    """

    caltech_files: int
    cifar_train: int
    cifar_test: int
    big_model: str
    big_size: int
    big_batch: int
    big_steps: int
    epoch_runs: tuple[tuple[int, int | str, str], ...]
    epochs: int
    input_min_seconds: float
    cifar_input_examples: int
    min_run_s: float
    budgets_s: tuple[tuple[str, float], ...]

    @property
    def budget(self) -> dict[str, float]:
        return dict(self.budgets_s)


FULL = Sizes(
    caltech_files=1028, cifar_train=50_000, cifar_test=2_000,
    big_model='convnext_tiny', big_size=224, big_batch=128, big_steps=30,
    # Batch 500: 100 steps per epoch, which `auto` can divide (512 gives 97, a prime: only 1 divides).
    # The figure runs the default (auto); 1 step per call beside it is the before.
    epoch_runs=((500, 'auto', 'device'), (500, 1, 'device')),
    epochs=3, input_min_seconds=2.0, cifar_input_examples=20_000, min_run_s=30.0,
    # Estimated on an H200 (16 cores): CIFAR data ~40 s + 2 runs ~100 s; Caltech data ~15 s + ConvNeXt-T
    # --benchmark (2 compilations, 90 steps) ~120 s; 2 ceilings ~90 s; 2 input runs ~60 s.
    budgets_s=(('epoch', 170.0), ('models', 150.0), ('augment', 100.0), ('input', 80.0)))
# A small net stands in for ConvNeXt-T at 224 (which takes minutes per step on a CPU); every code path,
# data format and policy stays. 320 / 32 = 10 steps.
SMOKE = Sizes(
    caltech_files=1028, cifar_train=320, cifar_test=64,
    big_model='cifar_resnet9', big_size=32, big_batch=16, big_steps=3,
    epoch_runs=((32, 'auto', 'device'), (32, 1, 'memory')),
    epochs=2, input_min_seconds=0.05, cifar_input_examples=256, min_run_s=0.0,
    # A CPU smoke is not bound by the lease; a loaded 2-core VM needs minutes per part.
    budgets_s=(('epoch', 900.0), ('models', 600.0), ('augment', 600.0), ('input', 600.0)))


def budget_plan(lease: Lease = LEASE, sizes: Sizes = FULL) -> dict:
    """The device-time plan the JSON records: per part, their sum with the probe, and whether it fits."""
    parts = sizes.budget
    total = lease.probe_s + sum(parts.values())
    return {'lease_s': lease.lease_s, 'staging_s': lease.staging_s, 'measurement_s': lease.measurement_s,
            'call_limit_s': lease.call_limit_s, 'probe_s': lease.probe_s, 'parts_s': parts, 'sum_s': total,
            'fits': total <= min(lease.measurement_s, lease.call_limit_s - 10)}


@dataclasses.dataclass(frozen=True)
class FiguresConfig:
    """One invocation (flags of the same names).

    Attributes:
      out: `--out`, the JSON (merged into when it exists).
      parts: what `--part` names, in order.
      smoke: `--smoke`.
      work_dir: `--work_dir`: generated data, run folders, logs, the JAX compilation cache.
      backend: `--backend`, the Keras backend of the measured runs.
      budget_s: `--budget_s`, seconds each part may take (data generation included); None = the sizes'
        per-part budgets.
      rerun: `--rerun`, measure again runs the JSON already holds for this device.
    """

    out: str
    parts: tuple[str, ...]
    smoke: bool = False
    work_dir: str = '/tmp/gpu_figures'
    backend: str = 'jax'
    budget_s: float | None = None
    rerun: bool = False

    def __post_init__(self):
        for part in self.parts:
            if part not in PARTS:
                raise ValueError(f'--part={part!r} is not valid; valid: all, {", ".join(PARTS)}')
        if self.backend not in BACKENDS:
            raise ValueError(f'--backend={self.backend!r} is not valid; valid: {", ".join(BACKENDS)}')
        if self.budget_s is not None and self.budget_s <= 0:
            raise ValueError(f'--budget_s={self.budget_s:g} is not valid; it must be a positive number of seconds')
        if not self.out:
            raise ValueError('--out is required: the JSON file the figures go to')

    @property
    def sizes(self) -> Sizes:
        return SMOKE if self.smoke else FULL

    def part_budget(self, part: str) -> float:
        return self.budget_s if self.budget_s is not None else self.sizes.budget[part]


@dataclasses.dataclass(frozen=True)
class Run:
    """One measured command: `python ARGV...` in the repository root; `report` is the JSON it writes."""

    name: str
    part: str
    argv: tuple[str, ...]
    report: str
    kind: str  # 'benchmark' (train.py --benchmark) | 'train' (train.py) | 'input' (benchmarks.input_pipeline)
    #            | 'ceilings' (python -m benchmarks.throughput)


# Names of the runs, shared by the plans and the figures.
def big_benchmark_name(s: Sizes) -> str:
    return f'benchmark_{s.big_model}_caltech_seed'


def ceilings_name(s: Sizes) -> str:
    return f'ceilings_{s.big_model}'


def epoch_name(batch: int, steps_per_execution: int | str, cache: str) -> str:
    return f'epoch_cifar_resnet9_b{batch}_spe{steps_per_execution}_{cache}'


_COMMON_TRAIN = ('--weights=none', '--head=gap', '--precision=auto', '--jit_compile=auto',
                 '--validation_split=0')


def plan(part: str, s: Sizes, work_dir: str, data: dict) -> list[Run]:
    """The runs of `part`, most telling first; `data` maps 'caltech256' / 'cifar100' to `PreparedData`."""
    runs_dir = os.path.join(work_dir, 'runs')
    reports = os.path.join(work_dir, 'reports')

    def train_run(name, kind, *flags):
        model_dir = os.path.join(runs_dir, name)
        report = os.path.join(model_dir, 'benchmark.json' if kind == 'benchmark' else 'results.json')
        return Run(name, part, ('train.py', *flags, *_COMMON_TRAIN, f'--model_dir={model_dir}'), report, kind)

    big = (f'--model={s.big_model}', f'--image_size={s.big_size}', f'--batch_size={s.big_batch}',
           f'--steps_per_epoch={s.big_steps}', '--cache=memory')
    if part == 'epoch':
        # The figure: steady-state epochs with every callback of a real run (checkpoints, history, plots,
        # backup, NaN stop), and the train steps alone inside them (results.json's epoch_time).
        return [train_run(epoch_name(batch, spe, cache), 'train', '--dataset=cifar100',
                          f'--data_dir={data["cifar100"].data_dir}', '--nodownload', '--model=cifar_resnet9',
                          f'--batch_size={batch}', f'--steps_per_execution={spe}', f'--cache={cache}',
                          '--augment=flip_crop', f'--epochs={s.epochs}', '--optimizer=adamw',
                          '--learning_rate=0.003')
                for batch, spe, cache in s.epoch_runs]
    if part == 'models':
        return [train_run(big_benchmark_name(s), 'benchmark', '--dataset=caltech256',
                          f'--data_dir={data["caltech256"].data_dir}', '--nodownload', '--augment=seed', *big,
                          '--benchmark')]
    if part == 'augment':
        # Only the ceilings matter here (the step fed from the device), so random pixels do, and no
        # training loop runs: both policies' ceilings in one process. `seed`'s comes from the models part.
        report = os.path.join(reports, f'{ceilings_name(s)}.json')
        return [Run(ceilings_name(s), part, (
                '-m', 'benchmarks.throughput', '--ceiling_policies=none,randaugment+mixup',
                f'--ceiling_json={report}', '--dataset=caltech256', '--synthetic_data', *big, *_COMMON_TRAIN,
                f'--model_dir={os.path.join(runs_dir, ceilings_name(s))}'), report, 'ceilings')]
    if part == 'input':
        caltech = data['caltech256']
        # Ours alone (`--nobaselines`): the device-cache gather and the host caches' epochs on this host.
        return [
            Run('input_cifar', part, (
                '-m', 'benchmarks.input_pipeline', '--dataset=cifar100', f'--examples={s.cifar_input_examples}',
                f'--batch_size={min(512, s.cifar_input_examples // 2)}', f'--min_seconds={s.input_min_seconds:g}',
                '--nobaselines',
                f'--json={os.path.join(reports, "input_cifar.json")}'),
                os.path.join(reports, 'input_cifar.json'), 'input'),
            Run('input_caltech', part, (
                '-m', 'benchmarks.input_pipeline', '--dataset=caltech256', f'--data_dir={caltech.data_dir}',
                f'--examples={caltech.splits["train"]}', f'--image_size={s.big_size}',
                f'--batch_size={s.big_batch}', f'--min_seconds={s.input_min_seconds:g}', '--nobaselines',
                f'--json={os.path.join(reports, "input_caltech.json")}'),
                os.path.join(reports, 'input_caltech.json'), 'input'),
        ]
    raise ValueError(f'--part={part!r} is not valid; valid: all, {", ".join(PARTS)}')


def prepare_data(part: str, s: Sizes, work_dir: str) -> dict:
    """Generates (or reuses) the data `part` reads, sized to its figures."""
    data = {}
    if part in ('input', 'models'):
        data['caltech256'] = gpu_data.caltech256(work_dir, s.caltech_files)
    if part == 'epoch':
        data['cifar100'] = gpu_data.cifar100(work_dir, s.cifar_train, s.cifar_test)
    return data


# ---- Figures: derived from the runs' own reports, recomputed whenever the JSON is written. ----

def _meets(value, target) -> bool | None:
    if value is None:
        return None
    op, bound = target
    return value >= bound if op == '>=' else value <= bound


def _figure(part, name, value, unit, target=None, detail='', runs=()) -> dict:
    return {'part': part, 'name': name, 'value': value, 'unit': unit,
            'target': None if target is None else f'{target[0]} {target[1]:g}',
            'meets': None if target is None else _meets(value, target), 'detail': detail, 'runs': list(runs)}


def _report(runs: dict, name: str) -> dict | None:
    run = runs.get(name) or {}
    return run.get('report') if run.get('status') == 'ok' else None


def _row(report: dict, name: str) -> dict | None:
    return next((r for r in report.get('results', []) if r.get('name') == name), None)


def _ceiling(report: dict | None) -> float | None:
    row = _row(report or {}, 'train_step_ceiling_on_device')
    return row['images_per_sec'] if row else None


def _policy_ceiling(runs: dict, s: Sizes, policy: str) -> tuple[float | None, str]:
    """(ceiling img/s, run name) of `policy`: `seed` from the models part's benchmark, others from the
    augment part's ceilings."""
    if policy == 'seed':
        return _ceiling(_report(runs, big_benchmark_name(s))), big_benchmark_name(s)
    row = ((_report(runs, ceilings_name(s)) or {}).get('ceilings') or {}).get(policy)
    return (row['images_per_sec'] if row else None), ceilings_name(s)


def compute_figures(runs: dict, s: Sizes) -> list[dict]:
    """The issue's figures from whatever runs have finished, in `PARTS` order; a missing run leaves its
    figure out."""
    figures = []
    for batch, spe, cache in s.epoch_runs:
        name = epoch_name(batch, spe, cache)
        report = _report(runs, name)
        steady = ((report or {}).get('epoch_time') or {}).get('steady_state')
        if not steady or not steady.get('epochs'):
            continue
        epochs = steady['epochs']
        images = steady['steps'] * batch / epochs
        seconds = steady['epoch_seconds'] / epochs
        steps_s = steady['seconds']['train_steps'] / epochs
        label = f'cifar_resnet9 epoch, batch {batch}, steps_per_execution {spe}, cache {cache}'
        detail = (f'{images:,.0f} images/epoch, callbacks {steady["seconds"]["callbacks"] / epochs:.2f} s/epoch, '
                  f'test top1 {report.get("top1", float("nan")):.3f}')
        figures.append(_figure('epoch', f'{label}: all callbacks', seconds, 's/epoch', EPOCH_TARGET_S, detail,
                               [name]))
        figures.append(_figure('epoch', f'{label}: train steps alone', steps_s, 's/epoch', detail=(
                f'{images / steps_s if steps_s else float("nan"):,.0f} img/s'), runs=[name]))

    report = _report(runs, big_benchmark_name(s))
    if report is not None:
        end_to_end = _row(report, 'train_end_to_end')
        wait = report.get('input_wait_share')
        detail = (f'ceiling {_ceiling(report):,.0f} img/s, end to end '
                  f'{end_to_end["images_per_sec"] if end_to_end else float("nan"):,.0f} img/s, '
                  f'input wait {"n/a" if wait is None else f"{100 * wait:.1f}%"}, {report.get("precision")}')
        figures.append(_figure('models', f'{s.big_model}@{s.big_size} b{s.big_batch} seed, Caltech-shaped: '
                               'end-to-end / ceiling', report.get('end_to_end_over_ceiling'), 'ratio',
                               RATIO_TARGET, detail, [big_benchmark_name(s)]))

    none, none_run = _policy_ceiling(runs, s, 'none')
    for policy in reversed(AUGMENT_SHARE_POLICIES):  # randaugment+mixup first: the part's own figure
        policy_ceiling, source = _policy_ceiling(runs, s, policy)
        if none is None or policy_ceiling is None:
            continue
        # Step time with the policy t_p = B / ceiling_p; its augmentation part is t_p - t_none.
        share = 1.0 - policy_ceiling / none
        detail = f'ceiling {policy_ceiling:,.0f} img/s with it, {none:,.0f} img/s with none'
        devices = {runs[source].get('hardware'), runs[none_run].get('hardware')}
        if len(devices) > 1:
            detail += f' (on different devices: {" vs ".join(sorted(map(str, devices)))})'
        figures.append(_figure(
            'augment', f'augmentation share of a {s.big_model}@{s.big_size} b{s.big_batch} step: {policy}',
            share, 'share', AUGMENT_SHARE_TARGET, detail, sorted({source, none_run})))

    cifar = _report(runs, 'input_cifar')
    if cifar:
        gather = _row(cifar, 'ours_device_cache')
        if gather:
            figures.append(_figure('input', f'device-cache gather, CIFAR-sized batches of {cifar["batch_size"]}',
                                   gather['images_per_sec'], 'img/s', GATHER_TARGET,
                                   f'{gather["images"]:,} images in {gather["seconds"]:.2f} s', ['input_cifar']))
    for name, label in (('input_cifar', 'CIFAR-sized'), ('input_caltech', 'Caltech-shaped')):
        report = _report(runs, name)
        if not report:
            continue
        for row_name, cache in (('ours_cached_epoch', 'memory cache'), ('ours_disk_cache_epoch', 'disk cache')):
            row = _row(report, row_name)
            if row:
                figures.append(_figure('input', f'{label} host pipeline, cached epoch ({cache}), '
                                       f'{report["image_size"]} px b{report["batch_size"]}, '
                                       f'{report.get("cpu_count")} cores', row['images_per_sec'], 'img/s',
                                       runs=[name]))
        first = _row(report, 'ours_first_epoch')
        cores_x = (report.get('notes') or {}).get('cores_x_one_thread_decode')
        if first and cores_x:
            figures.append(_figure('input', f'{label} first epoch / (cores x one-thread decode)',
                                   first['images_per_sec'] / cores_x, 'ratio', FIRST_EPOCH_TARGET,
                                   f'{first["images_per_sec"]:,.0f} vs {cores_x:,.0f} img/s on '
                                   f'{report.get("cpu_count")} cores, {first["images"]} images', [name]))
    return figures


def format_table(doc: dict) -> str:
    """The figures as a short text table, with the device each part ran on."""
    lines = [f'{"part":8s} {"figure":82s} {"value":>14s} {"target":>10s}  verdict']
    for f in doc.get('figures', []):
        value = f['value']
        if value is None:
            text = 'n/a'
        elif f['unit'] in ('img/s',):
            text = f'{value:,.0f} img/s'
        elif f['unit'] == 'share':
            text = f'{100 * value:.1f}%'
        elif f['unit'] == 's/epoch':
            text = f'{value:.2f} s'
        else:
            text = f'{value:.3f}'
        verdict = {True: 'meets', False: 'MISSES', None: ''}[f['meets']]
        lines.append(f'{f["part"]:8s} {f["name"]:82s} {text:>14s} {f["target"] or "":>10s}  {verdict}')
        if f['detail']:
            lines.append(f'{"":8s}   {f["detail"]}')
    for part, info in doc.get('parts', {}).items():
        lines.append(f'part {part}: {info.get("status")} in {info.get("wall_s", 0):.0f} s of its '
                     f'{info.get("budget_s", 0):.0f} s on {info.get("hardware", "?")}')
    plan_ = doc.get('budget')
    if plan_:
        parts = ', '.join(f'{k} {v:.0f}' for k, v in plan_['parts_s'].items())
        lines.append(f'device-time plan (full sizes): probe {plan_["probe_s"]:.0f} + {parts} = {plan_["sum_s"]:.0f} s '
                     f'of {plan_["measurement_s"]:.0f} s left after staging ({plan_["staging_s"]:.0f} s) in a '
                     f'{plan_["lease_s"]:.0f}-s lease: {"fits" if plan_["fits"] else "DOES NOT FIT"}')
    bad = [f'{name} ({run["status"]})' for name, run in doc.get('runs', {}).items() if run['status'] != 'ok']
    if bad:
        lines.append('not measured: ' + ', '.join(bad) + ' (see each run\'s log)')
    return '\n'.join(lines)


# ---- Running the parts. ----

def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')


def _tail(path: str, chars: int = 3000) -> str:
    with open(path, 'rb') as f:
        f.seek(max(0, os.path.getsize(path) - chars))
        return f.read().decode('utf-8', 'replace')


def _keep(kind: str, report: dict) -> dict:
    """What the JSON keeps of a run's own report: all of a benchmark's; a training run's timing and score."""
    if kind != 'train':
        return report
    return {k: report.get(k) for k in ('epoch_time', 'top1', 'top5', 'num_examples', 'global_steps',
                                        'optimizer_iterations', 'eval_seconds', 'last_epoch')}


class Figures:
    """The JSON document and the runs that fill it."""

    def __init__(self, cfg: FiguresConfig, argv: list[str]):
        self.cfg = cfg
        self.doc = self._load()
        self.doc['invocations'].append({'command': shlex.join(['python', '-m', 'benchmarks.gpu_figures', *argv]),
                                        'started': _now()})
        self.env = dict(os.environ, KERAS_BACKEND=cfg.backend, TF_CPP_MIN_LOG_LEVEL='2', PYTHONUNBUFFERED='1')
        # Compiled steps are kept across runs and calls (e.g. the same ConvNeXt ceiling in two parts):
        # compilation is never timed, but it eats the parts' budgets.
        self.env.setdefault('JAX_COMPILATION_CACHE_DIR', os.path.join(cfg.work_dir, 'jax_cache'))
        # Every compilation is kept (JAX's default keeps only those over 1 s): the warm-up's one-step
        # program of `--steps_per_execution=auto` comes back in the next run of the same model.
        self.env.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
        self.logs = os.path.join(cfg.work_dir, 'logs')
        os.makedirs(self.logs, exist_ok=True)
        os.makedirs(os.path.join(cfg.work_dir, 'reports'), exist_ok=True)

    def _load(self) -> dict:
        fresh = {'about': 'GPU figures of issues 12 and 22, taken by `python -m benchmarks.gpu_figures`',
                 'smoke': self.cfg.smoke, 'backend': self.cfg.backend, 'hardware': None, 'parts': {},
                 'runs': {}, 'figures': [], 'invocations': [], 'budget': budget_plan()}
        if not os.path.exists(self.cfg.out):
            return fresh
        with open(self.cfg.out) as f:
            doc = json.load(f)
        if doc.get('smoke') != self.cfg.smoke or doc.get('backend') != self.cfg.backend:
            raise ValueError(f'--out={self.cfg.out} holds {"smoke" if doc.get("smoke") else "full"} figures on '
                             f'{doc.get("backend")}; write {"smoke" if self.cfg.smoke else "full"} figures on '
                             f'{self.cfg.backend} to another --out')
        return {**fresh, **doc, 'budget': budget_plan()}

    def write(self) -> None:
        self.doc['figures'] = compute_figures(self.doc['runs'], self.cfg.sizes)
        folder = os.path.dirname(os.path.abspath(self.cfg.out))
        os.makedirs(folder, exist_ok=True)
        partial = self.cfg.out + '.partial'
        with open(partial, 'w') as f:
            json.dump(self.doc, f, indent=1)
        os.replace(partial, self.cfg.out)

    def probe_hardware(self) -> dict:
        """The hardware in a child process (JAX's GPU client must not start in this one)."""
        env = dict(self.env, XLA_PYTHON_CLIENT_PREALLOCATE='false')
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, '-m', 'benchmarks.hardware'], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=300, check=False)
        try:
            hardware = json.loads(proc.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            hardware = {'summary': 'unknown', 'error': proc.stderr[-2000:]}
        hardware['probe_seconds'] = time.perf_counter() - start
        self.doc['hardware'] = hardware
        return hardware

    def run_part(self, part: str, hardware: str, slack_s: float = 0.0) -> float:
        """Runs `part` within its budget plus `slack_s` (what earlier parts left); returns what it leaves."""
        cfg, sizes = self.cfg, self.cfg.sizes
        start = time.perf_counter()
        budget = cfg.part_budget(part) + slack_s
        deadline = start + budget
        info = self.doc['parts'][part] = {'status': 'running', 'started': _now(), 'budget_s': budget,
                                          'hardware': hardware, 'data': {}}
        self.write()
        print(f'[{part}] on {hardware}; budget {budget:.0f} s', flush=True)
        try:
            data = prepare_data(part, sizes, cfg.work_dir)
        except Exception as e:  # pylint: disable=broad-except  # the other parts still run
            info.update(status='failed', error=f'data: {type(e).__name__}: {e}'[:2000],
                        wall_s=time.perf_counter() - start)
            self.write()
            print(f'[{part}] data generation failed: {e}', flush=True)
            return max(0.0, deadline - time.perf_counter())
        info['data'] = {name: d.as_dict() for name, d in data.items()}
        for name, d in data.items():
            print(f'[{part}] data {name}: {d.splits} ({"reused" if d.reused else f"made in {d.seconds:.0f} s"})',
                  flush=True)
        statuses = [self._run(run, deadline, hardware) for run in plan(part, sizes, cfg.work_dir, data)]
        info['status'] = 'done' if all(s == 'ok' for s in statuses) else 'partial'
        info['wall_s'] = time.perf_counter() - start
        self.write()
        return max(0.0, deadline - time.perf_counter())

    def _run(self, run: Run, deadline: float, hardware: str) -> str:
        command = shlex.join([f'KERAS_BACKEND={self.cfg.backend}', 'python', *run.argv])
        previous = self.doc['runs'].get(run.name) or {}
        if (not self.cfg.rerun and previous.get('status') == 'ok' and previous.get('command') == command
                and previous.get('hardware') == hardware):
            print(f'[{run.part}] {run.name}: measured already on this device (--rerun measures again)', flush=True)
            return 'ok'
        record = {'part': run.part, 'command': command, 'cwd': REPO, 'hardware': hardware, 'started': _now()}
        remaining = deadline - time.perf_counter()
        if remaining < max(self.cfg.sizes.min_run_s, 1.0):
            record.update(status='skipped', reason=f'{remaining:.0f} s of the part\'s --budget_s left')
            return self._record(run, record)
        log = os.path.join(self.logs, f'{run.name}.log')
        record['log'] = log
        if run.kind in ('train', 'benchmark'):
            shutil.rmtree(os.path.dirname(run.report), ignore_errors=True)  # a finished run would not rerun
        if os.path.exists(run.report):
            os.remove(run.report)
        start = time.perf_counter()
        with open(log, 'w') as out:
            out.write(command + '\n')
            out.flush()
            try:
                proc = subprocess.run([sys.executable, *run.argv], cwd=REPO, env=self.env, stdout=out,
                                      stderr=subprocess.STDOUT, timeout=remaining, check=False)
                record['returncode'] = proc.returncode
                record['status'] = 'ok' if proc.returncode == 0 else 'failed'
            except subprocess.TimeoutExpired:
                record['status'] = 'timeout'
                record['reason'] = f'killed at the part\'s budget after {remaining:.0f} s'
        record['wall_s'] = time.perf_counter() - start
        if record['status'] == 'ok':
            try:
                with open(run.report) as f:
                    record['report'] = _keep(run.kind, json.load(f))
            except (OSError, json.JSONDecodeError) as e:
                record.update(status='failed', reason=f'no report at {run.report}: {e}')
        if record['status'] != 'ok':
            record['log_tail'] = _tail(log)
        return self._record(run, record)

    def _record(self, run: Run, record: dict) -> str:
        self.doc['runs'][run.name] = record
        self.write()
        wall = f' in {record["wall_s"]:.0f} s' if 'wall_s' in record else ''
        print(f'[{run.part}] {run.name}: {record["status"]}{wall}'
              f'{"" if record["status"] == "ok" else "; " + record.get("reason", record.get("log", ""))}',
              flush=True)
        if record['status'] in ('failed', 'timeout'):
            print('\n'.join(record['log_tail'].splitlines()[-25:]), flush=True)
        return record['status']

    def finish(self) -> None:
        invocation = self.doc['invocations'][-1]
        invocation['finished'] = _now()
        self.write()


def run(cfg: FiguresConfig, argv: list[str]) -> dict:
    """Measures `cfg.parts` into `cfg.out`; returns the JSON document."""
    figures = Figures(cfg, argv)
    start = time.perf_counter()
    hardware = figures.probe_hardware()
    print(f'hardware: {hardware.get("summary")}; {hardware.get("cpu", {}).get("cores")} host cores', flush=True)
    plan_ = figures.doc['budget']
    print(f'device-time plan: {json.dumps(plan_)}', flush=True)
    slack = 0.0
    for part in cfg.parts:
        slack = figures.run_part(part, hardware.get('summary', 'unknown'), slack)
    figures.doc['invocations'][-1]['wall_s'] = time.perf_counter() - start
    figures.finish()
    print(format_table(figures.doc), flush=True)
    print(f'wrote {cfg.out}', flush=True)
    return figures.doc


def config_from_flags(flag_values) -> FiguresConfig:
    parts = PARTS if flag_values.part == 'all' else tuple(p for p in flag_values.part.split(',') if p)
    work_dir = flag_values.work_dir or ('/tmp/gpu_figures_smoke' if flag_values.smoke else '/tmp/gpu_figures')
    return FiguresConfig(out=flag_values.out, parts=parts, smoke=flag_values.smoke, work_dir=work_dir,
                         backend=flag_values.backend, budget_s=flag_values.budget_s, rerun=flag_values.rerun)


def main(argv):
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # before the data generators import TensorFlow
    from absl import flags  # pylint: disable=import-outside-toplevel
    if len(argv) > 1:
        print(f'benchmarks.gpu_figures: error: unexpected arguments {argv[1:]}; every setting is a --flag',
              file=sys.stderr)
        return 2
    try:
        cfg = config_from_flags(flags.FLAGS)
        run(cfg, sys.argv[1:])
    except ValueError as e:
        print(f'benchmarks.gpu_figures: error: {e}', file=sys.stderr)
        return 2
    return 0


def _define_flags():
    from absl import flags  # pylint: disable=import-outside-toplevel
    flags.DEFINE_string('out', None, 'The JSON to write; an existing one is merged into.')
    flags.DEFINE_string('part', 'all', f'all, or one or more (comma-separated) of: {", ".join(PARTS)}.')
    flags.DEFINE_bool('smoke', False, 'Tiny data, few steps, a small net for ConvNeXt-T: a CPU run in minutes.')
    flags.DEFINE_string('work_dir', None, 'Generated data, runs, logs, JAX compilation cache '
                        '(default /tmp/gpu_figures, or /tmp/gpu_figures_smoke with --smoke).')
    flags.DEFINE_string('backend', 'jax', 'Keras backend of the measured runs: jax | tensorflow.')
    flags.DEFINE_float('budget_s', None, 'Seconds each part may take, data generation included; default: '
                       'each part\'s own budget (Sizes.budgets_s), together one device call in a 15-minute lease.')
    flags.DEFINE_bool('rerun', False, 'Measure again the runs --out already holds for this device.')


if __name__ == '__main__':
    from absl import app  # pylint: disable=import-outside-toplevel
    _define_flags()
    sys.exit(app.run(main))
