"""`python -m benchmarks.multihost`: one training on 1 process x D devices, then on P processes x D/P devices
(JAX, CPU devices forced by XLA_FLAGS, gloo collectives, a coordinator on loopback): steps/s of each, and what
crosses the process boundary every step (the gradient all-reduce, batch-norm statistics; no input).

Each run is `train.py` itself (synthetic CIFAR-shaped data, device cache); the figure is the `train steps`
ms/step of process 0's epoch-time line (compilation and first steps excluded).

`--stop_lookups=N`: instead, what the shared SIGTERM stop costs each step (training/multiprocess.py
`SharedStop.stops_after`, its one key-value lookup), timed N times in each process of a job of `--processes`.

`--process_cache_compare`: on a generated folder of JPEGs (Caltech-256-like sizes, prepared once), the
P-process job with `--process_cache=whole`, then `share`: each process's seconds from its start to its
inputs being ready (read + decode into its cache), its cache size, and ms/step.
"""

import json
import math
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _run(model_dir: str, *, processes: int, devices: int, args: list[str]) -> float:
    """ms per train step of one job of `processes` x `devices`."""
    port, procs = _port(), []
    for i in range(processes):
        env = dict(os.environ, KERAS_BACKEND='jax', JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='3',
                   PYTHONPATH=ROOT, XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}')
        if processes > 1:
            env.update(KERAS_DISTRIBUTION_JOB_ADDRESSES=f'127.0.0.1:{port}',
                       KERAS_DISTRIBUTION_NUM_PROCESSES=str(processes), KERAS_DISTRIBUTION_PROCESS_ID=str(i))
        procs.append(subprocess.Popen([sys.executable, 'train.py', *args, f'--model_dir={model_dir}'],
                                      cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    outs = [p.communicate(timeout=1800) for p in procs]
    for p, (out, err) in zip(procs, outs):
        if p.returncode:
            raise RuntimeError(f'{processes}x{devices} failed:\n{out[-2000:]}\n{err[-3000:]}')
    return float(re.search(r'train steps \((\d+) ms/step\)', outs[0][0]).group(1))


def _timed_job(args: list[str], *, processes: int, devices: int) -> list[dict]:
    """Runs one job of train.py; per process: its inputs' build time (read + decode into its cache, the
    `data:` line), ms/step, what its cache holds."""
    port, procs, lines = _port(), [], []
    for i in range(processes):
        env = dict(os.environ, KERAS_BACKEND='jax', JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='3',
                   PYTHONPATH=ROOT, XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}',
                   PYTHONUNBUFFERED='1')
        if processes > 1:
            env.update(KERAS_DISTRIBUTION_JOB_ADDRESSES=f'127.0.0.1:{port}',
                       KERAS_DISTRIBUTION_NUM_PROCESSES=str(processes), KERAS_DISTRIBUTION_PROCESS_ID=str(i))
        procs.append(subprocess.Popen([sys.executable, 'train.py', *args], cwd=ROOT, env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        lines.append([])
    start = time.monotonic()

    def read(i):
        for line in procs[i].stdout:
            lines[i].append((time.monotonic() - start, line.rstrip()))
    readers = [threading.Thread(target=read, args=(i,)) for i in range(processes)]
    for r in readers:
        r.start()
    for p, r in zip(procs, readers):
        p.wait(timeout=1800)
        r.join()
        if p.returncode:
            raise RuntimeError('\n'.join(t for _, t in lines[procs.index(p)][-40:]))
    rows = []
    for i in range(processes):
        ready = next(float(re.search(r'inputs ready in ([\d.]+) s', line).group(1))
                     for _, line in lines[i] if line.startswith('data: '))
        ms = re.search(r'train steps \((\d+) ms/step\)', '\n'.join(t for _, t in lines[i]))
        held = next((line.split('gathered from its own cache of ')[1].split(';')[0]
                     for _, line in lines[i] if 'gathered from its own cache of ' in line), 'everything')
        rows.append({'process': i, 'inputs_ready_s': ready, 'ms_per_step': ms and int(ms.group(1)),
                     'holds': held})
    return rows


def compare_process_cache(f) -> dict:
    """The P-process job on a prepared folder of JPEGs, `--process_cache=whole` then `share`."""
    from fastclassify.pipelines import synthetic  # pylint: disable=import-outside-toplevel
    with tempfile.TemporaryDirectory() as tmp:
        photos = os.path.join(tmp, 'photos')
        blobs, labels = synthetic.encoded_examples(f.images, 10, size_range=(200, 500), seed=1)
        for i, (blob, label) in enumerate(zip(blobs, labels)):
            os.makedirs(os.path.join(photos, f'class_{label}'), exist_ok=True)
            with open(os.path.join(photos, f'class_{label}', f'{i:05d}.jpg'), 'wb') as out:
                out.write(blob)
        common = ['--dataset=folder', f'--manual_dir={photos}', f'--data_dir={tmp}/data', '--weights=none',
                  f'--model={f.model}', '--head=gap', f'--image_size={f.image_size}', f'--batch_size={f.batch_size}',
                  f'--steps_per_epoch={f.steps}', '--epochs=1', '--precision=float32', '--cache=memory',
                  '--augment=flip_crop', '--validation_split=0']
        # Prepared once (TFDS), outside the timed jobs.
        _timed_job(common + ['--steps_per_epoch=1', f'--model_dir={tmp}/prepare'], processes=1, devices=1)
        out = {'images': f.images, 'processes': f.processes, 'args': common, 'whole': [], 'share': []}
        # Interleaved (whole, share, share, whole, ...): the machine's speed drifts.
        for k, mode in enumerate(['whole', 'share', 'share', 'whole'] * f.repeats):
            rows = _timed_job(common + [f'--process_cache={mode}', f'--model_dir={tmp}/{mode}{k}'],
                              processes=f.processes, devices=f.devices // f.processes)
            out[mode].append(rows)
            print(json.dumps({mode: rows}), flush=True)
    return out


def _crossing_bytes(model_path: str) -> dict:
    """Per step, per direction, what the processes exchange: gradients and batch-norm batch statistics."""
    import keras  # pylint: disable=import-outside-toplevel
    model = keras.saving.load_model(model_path)
    grads = sum(math.prod(w.shape) for w in model.trainable_weights) * 4
    bn = sum(math.prod(w.shape) for w in model.weights if w.path.endswith('moving_mean'))
    # Mean and variance per channel, forward; their gradients, backward (float32).
    return {'gradient_allreduce_bytes': grads, 'batchnorm_stats_bytes': bn * 2 * 2 * 4,
            'input_bytes': 0}


def _stop_lookups(processes: int, lookups: int) -> list[dict]:
    """Microseconds per step end of `SharedStop.stops_after` (no SIGTERM), in each process of one job."""
    port, procs = _port(), []
    for i in range(processes):
        env = dict(os.environ, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='3', PYTHONPATH=ROOT)
        code = ('from benchmarks.multihost import _time_stop_lookups; '
                f'_time_stop_lookups("127.0.0.1:{port}", {processes}, {i}, {lookups})')
        procs.append(subprocess.Popen([sys.executable, '-c', code], cwd=ROOT, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        if p.returncode:
            raise RuntimeError(f'stop lookups failed:\n{out[-2000:]}\n{err[-3000:]}')
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]


def _time_stop_lookups(coordinator: str, processes: int, process_id: int, lookups: int) -> None:
    """One process of `_stop_lookups`: the job's real start-up (watchdog beating), then the timed step ends."""
    import time  # pylint: disable=import-outside-toplevel
    from jax._src import distributed  # pylint: disable=import-outside-toplevel
    from fastclassify.training import multiprocess  # pylint: disable=import-outside-toplevel
    multiprocess.initialize(multiprocess.Layout(coordinator, processes, process_id))
    stop = multiprocess.shared_stop(last_step=lookups + 1)
    start = time.perf_counter()
    for step in range(1, lookups + 1):
        stop.stops_after(step, False)
    us = (time.perf_counter() - start) / lookups * 1e6
    distributed.global_state.client.wait_at_barrier('stop-lookups-done', 60_000)
    multiprocess.mark_finished()
    print(json.dumps({'process': process_id, 'lookups': lookups, 'us_per_step': round(us, 1)}), flush=True)


def main(argv):
    del argv
    f = flags.FLAGS
    if f.stop_lookups:
        for row in _stop_lookups(f.processes, f.stop_lookups):
            print(json.dumps(row), flush=True)
        return
    if f.process_cache_compare:
        out = compare_process_cache(f)
        if f.json:
            with open(f.json, 'w') as file:
                json.dump(out, file, indent=1)
        return
    args = ['--dataset=cifar100', '--synthetic_data', f'--model={f.model}', '--weights=none', '--head=gap',
            f'--batch_size={f.batch_size}', f'--steps_per_epoch={f.steps}', '--epochs=1',
            '--precision=float32', '--cache=device', '--augment=flip_crop', '--validation_split=0']
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for processes in (1, f.processes):
            devices = f.devices // processes
            ms = _run(os.path.join(tmp, f'{processes}x{devices}'), processes=processes, devices=devices,
                      args=args)
            rows.append({'processes': processes, 'devices_per_process': devices, 'ms_per_step': ms,
                         'steps_per_s': round(1000 / ms, 2), 'images_per_s': round(f.batch_size * 1000 / ms)})
            print(json.dumps(rows[-1]), flush=True)
        crossing = _crossing_bytes(os.path.join(tmp, f'1x{f.devices}', 'model.keras'))
    print(json.dumps(crossing), flush=True)
    if f.json:
        with open(f.json, 'w') as out:
            json.dump({'runs': rows, 'per_step_across_processes': crossing, 'args': args}, out, indent=1)


if __name__ == '__main__':
    flags.DEFINE_integer('devices', 4, 'CPU devices in all (1 x devices, then processes x devices/processes).')
    flags.DEFINE_integer('processes', 2, 'processes of the multi-process run.')
    flags.DEFINE_integer('steps', 30, 'train steps per run.')
    flags.DEFINE_integer('batch_size', 64, 'global batch.')
    flags.DEFINE_string('model', 'cifar_resnet9', 'model family (train.py --model).')
    flags.DEFINE_string('json', '', 'also write the rows here.')
    flags.DEFINE_integer('stop_lookups', 0, 'time this many step ends of the shared SIGTERM stop instead.')
    flags.DEFINE_bool('process_cache_compare', False, 'compare --process_cache=whole and share on a '
                      'generated folder of JPEGs instead (each process: inputs ready, ms/step).')
    flags.DEFINE_integer('images', 3000, '--process_cache_compare: JPEGs in the generated folder.')
    flags.DEFINE_integer('repeats', 1, '--process_cache_compare: rounds of (whole, share, share, whole).')
    flags.DEFINE_integer('image_size', 64, '--process_cache_compare: the cache\'s side in pixels.')
    app.run(main)
