"""The Python API's training path next to train.py's, on the same folder of JPEGs, model and batch.

    python -m benchmarks.api_path --work=/tmp/api_bench [--examples=2560] [--repeats=2] [--json=out.json]

Writes a folder of generated JPEGs (class folders) once and prepares it once; then, alternately in fresh
processes (API, train.py, API, train.py... so a drifting machine load hits both alike):
- api: `fastclassify.load(folder, cache='device')` + `AugmentedModel(build_model(...), 'flip_crop')` +
  `fit(data)`; its epochs after the first (compilation) are timed by a callback.
- train.py: the same data, model, policy, batch and cache through `train.py`; its steady-state split
  from results.json: train steps alone, and whole epochs (with its backups, checkpoints, plots).
Prints images/s of each (the best and the median of the repeats) and api over train.py.

`--streams` instead compares, in ONE process on one compiled model, the API's finite epoch-per-iteration
stream (`fit(data)`) with train.py's kind of stream (infinite, `steps_per_epoch`), alternating, so load
drift between processes cannot make the difference.
"""

import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Both timed runs time epochs alike: first `on_epoch_begin` to the last `on_epoch_end`.
_EPOCH_TIMER = r'''
class EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__(); self.seconds = []
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()
    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)
'''

_API_RUN = r'''
import json, sys, time
import fastclassify, keras
folder, data_dir, size, batch, epochs, model_name = sys.argv[1:7]
size, batch, epochs = int(size), int(batch), int(epochs)
data = fastclassify.load(folder, image_size=size, batch_size=batch, cache='device', validation_split=0,
                         data_dir=data_dir)
keras.utils.set_random_seed(0)
model = fastclassify.build_model(model_name, num_classes=data.num_classes, image_size=size)
trainer = fastclassify.AugmentedModel(model, augment='flip_crop', data=data)
trainer.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True), metrics=['accuracy'],
                jit_compile=False)

{epoch_timer}
timer = EpochTimer()
trainer.fit(data, epochs=epochs, verbose=0, callbacks=[timer])
steady = timer.seconds[1:]
print(json.dumps({'steps': data.steps_per_epoch * len(steady), 'seconds': sum(steady)}))
'''.replace('{epoch_timer}', _EPOCH_TIMER)


_STREAMS_RUN = r'''
import json, sys, time
import fastclassify, keras
from fastclassify.augment import _training_batches
folder, data_dir, size, batch, epochs, model_name, repeats = sys.argv[1:8]
size, batch, epochs, repeats = int(size), int(batch), int(epochs), int(repeats)
data = fastclassify.load(folder, image_size=size, batch_size=batch, cache='device', validation_split=0,
                         data_dir=data_dir)
keras.utils.set_random_seed(0)
model = fastclassify.build_model(model_name, num_classes=data.num_classes, image_size=size)
trainer = fastclassify.AugmentedModel(model, augment='flip_crop', data=data)
trainer.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True), jit_compile=False)

{epoch_timer}
trainer.fit(data, epochs=1, verbose=0)  # compiles
rows = {'finite epochs (api)': [], 'infinite stream (train.py)': []}
for _ in range(repeats):
    timer = EpochTimer()
    trainer.fit(data, epochs=epochs, verbose=0, callbacks=[timer])
    rows['finite epochs (api)'].append(data.steps_per_epoch * batch * epochs / sum(timer.seconds))
    timer = EpochTimer()
    keras.Model.fit(trainer, _training_batches(data.train_indices.repeat()), steps_per_epoch=data.steps_per_epoch,
                    epochs=epochs, verbose=0, callbacks=[timer], shuffle=False)
    rows['infinite stream (train.py)'].append(data.steps_per_epoch * batch * epochs / sum(timer.seconds))
print(json.dumps(rows))
'''.replace('{epoch_timer}', _EPOCH_TIMER)


def _write_folder(root: pathlib.Path, examples: int, classes: int, size: int) -> None:
    from fastclassify.pipelines import synthetic  # pylint: disable=import-outside-toplevel
    blobs, labels = synthetic.encoded_examples(examples, classes, size_range=(size, size))
    for i, (blob, label) in enumerate(zip(blobs, labels)):
        target = root / f'class_{label:02d}' / f'{i:06d}.jpg'
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blob)


def _run(command: list[str], env: dict) -> str:
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f'{" ".join(command[:3])} failed:\n{result.stderr[-3000:]}')
    return result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work', type=pathlib.Path, required=True, help='scratch folder (emptied)')
    parser.add_argument('--examples', type=int, default=2560)
    parser.add_argument('--classes', type=int, default=10)
    parser.add_argument('--image_size', type=int, default=32)
    parser.add_argument('--batch_size', type=int, default=64)
    parser.add_argument('--epochs', type=int, default=3, help='per run; the first is not timed')
    parser.add_argument('--model', default='cifar_resnet9')
    parser.add_argument('--repeats', type=int, default=2)
    parser.add_argument('--json', type=pathlib.Path, default=None)
    parser.add_argument('--streams', action='store_true', help='in one process: the two streams, alternating')
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error(f'--epochs={args.epochs}: at least 2 (the first carries compilation and is not timed)')

    shutil.rmtree(args.work, ignore_errors=True)
    folder, data_dir = args.work / 'photos', args.work / 'tfds'
    _write_folder(folder, args.examples, args.classes, args.image_size)
    env = {**os.environ, 'PYTHONPATH': REPO, 'TF_CPP_MIN_LOG_LEVEL': '2'}
    if args.streams:
        with tempfile.NamedTemporaryFile('w', suffix='.py', delete=False) as f:
            f.write(_STREAMS_RUN)
        rows = json.loads(_run([sys.executable, f.name, str(folder), str(data_dir), str(args.image_size),
                                str(args.batch_size), str(args.epochs), args.model, str(args.repeats)],
                               env).strip().splitlines()[-1])
        os.unlink(f.name)
        for name, values in rows.items():
            print(f'{name:28s} median {statistics.median(values):8.1f} img/s   '
                  f'(runs: {", ".join(f"{v:.1f}" for v in values)})')
        if args.json:
            args.json.write_text(json.dumps({'settings': {k: str(v) for k, v in vars(args).items()},
                                             'images_per_sec': rows}, indent=1))
        return
    with tempfile.NamedTemporaryFile('w', suffix='.py', delete=False) as f:
        f.write(_API_RUN)
    api_args = [sys.executable, f.name, str(folder), str(data_dir), str(args.image_size), str(args.batch_size),
                str(args.epochs), args.model]
    rows = {'api': [], 'train.py steps': [], 'train.py epochs': []}
    for repeat in range(args.repeats):
        api = json.loads(_run(api_args, env).strip().splitlines()[-1])
        rows['api'].append(api['steps'] * args.batch_size / api['seconds'])
        model_dir = args.work / f'run{repeat}'
        _run([sys.executable, 'train.py', '--dataset=folder', f'--manual_dir={folder}', f'--data_dir={data_dir}',
              f'--model_dir={model_dir}', f'--model={args.model}', '--weights=none', '--head=gap',
              f'--image_size={args.image_size}', '--augment=flip_crop', f'--batch_size={args.batch_size}',
              f'--epochs={args.epochs}', '--cache=device', '--validation_split=0', '--optimizer=sgd',
              '--learning_rate=0.05', '--weight_decay=0', '--warmup_epochs=0', '--schedule=constant',
              '--precision=float32', '--jit_compile=false'], env)
        steady = json.load(open(model_dir / 'results.json'))['epoch_time']['steady_state']
        rows['train.py steps'].append(args.batch_size / steady['per_step_seconds']['train_steps'])
        rows['train.py epochs'].append(args.batch_size / steady['per_step_seconds']['total'])
    os.unlink(f.name)
    best = {k: max(v) for k, v in rows.items()}
    median = {k: statistics.median(v) for k, v in rows.items()}
    for name, value in best.items():
        print(f'{name:16s} best {value:8.1f} img/s, median {median[name]:8.1f}   '
              f'(runs: {", ".join(f"{v:.1f}" for v in rows[name])})')
    for of in ('train.py steps', 'train.py epochs'):
        print(f'api / {of:15s} = {best["api"] / best[of]:.3f} (best), {median["api"] / median[of]:.3f} (median)')
    if args.json:
        args.json.write_text(json.dumps({'settings': vars(args) | {'work': str(args.work), 'json': str(args.json)},
                                         'images_per_sec': rows, 'best': best, 'median': median}, indent=1))


if __name__ == '__main__':
    main()
