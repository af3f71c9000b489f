"""`train.py --benchmark` (and `python -m benchmarks.throughput`'s ceilings): the training loop itself, timed part by part, next to its train-step ceiling.

End to end is `loop.run` -- Keras `fit` with the run's real callbacks and real input -- for two short
epochs in a scratch folder; the second (the first carries tracing, compilation and cache fill) is split
into input wait, step, callbacks and validation (training/time_split.py). The ceiling feeds the same
compiled step from batches resident on the device (a DeviceCache: only indices cross per step); end to
end over ceiling says whether training is input-bound.
"""

import dataclasses
import json
import os
import shutil
import time

import keras
import numpy as np
import tensorflow as tf

from fastclassify.models.builder import build_model
from fastclassify.models.precision import resolve_jit_compile, resolve_precision
from fastclassify.pipelines.augment import Augmenter
from fastclassify.training import execution, hardware, loop
from fastclassify.training.config import TrainConfig
from fastclassify.training.optimizers import build_optimizer
from fastclassify.training.trainer import Trainer, training_stream

_INPUT_BOUND_BELOW = 0.97  # end-to-end under 97% of the ceiling counts as input-bound
_SCRATCH = 'benchmark-run'  # the measured run's folder under --model_dir, removed afterwards


class _StepTimer(keras.callbacks.Callback):
    """Wall time of the steps after `warmup` (compilation and pipeline start-up excluded).

    Called once per execution: timing starts at the end of the first call that reaches `warmup` steps.
    """

    def __init__(self, warmup: int):
        super().__init__()
        self.warmup = warmup
        self.start = None
        self.end = None
        self.steps = 0

    def on_train_batch_end(self, batch, logs=None):
        if self.start is None:
            if batch + 1 >= self.warmup:
                self.start, self._started_at = time.perf_counter(), batch + 1
        else:
            self.end = time.perf_counter()
            self.steps = batch + 1 - self._started_at


def measure_ceiling(cfg: TrainConfig, strategy, *, steps: int, warmup: int) -> dict:
    """Images/s of the compiled train step fed from batches already on the device.

    A pool of 4 batches of random pixels sits in a DeviceCache; the stream carries only indices and
    labels, so the step never waits for the host. Same model, augmentation, optimizer, precision and
    compilation as the run, and the same steps per execution (`auto`: measured here the way the run does).
    """
    batch = cfg.pipeline.batch_size
    size = cfg.pipeline.cache_size
    rng = np.random.default_rng(cfg.run.seed)
    pixels = rng.integers(0, 256, (4 * batch, size, size, 3), np.uint8)
    labels = rng.integers(0, cfg.model.num_classes, (4 * batch,), np.int32)
    indices = (tf.data.Dataset.from_tensor_slices((np.arange(4 * batch, dtype=np.int32), labels))
               .repeat().shuffle(4 * batch, seed=cfg.run.seed).batch(batch, drop_remainder=True)
               .prefetch(4))
    with strategy.scope():
        trainer = Trainer(build_model(cfg.model), Augmenter(cfg.augment), cfg.model.num_classes,
                          device_cache=pixels)
        optimizer = build_optimizer(cfg.optimizer, steps_per_epoch=steps + warmup, epochs=1,
                                    global_batch_size=batch)
        loop.compile_trainer(trainer, cfg, optimizer, resolve_jit_compile(cfg.run.jit_compile))
        k = execution.resolve(trainer, cfg.run.steps_per_execution, steps_per_epoch=steps, checkpoint_every_steps=0,
                              batch=execution.dummy_batch(batch, size, device_cache=True))
        execution.apply(trainer, k)
    # Whole calls of k steps: the warm-up rounded up to one, then `steps` (a multiple of k).
    warmup = -(-warmup // k) * k
    timer = _StepTimer(warmup)
    trainer.fit(training_stream(indices), epochs=1, steps_per_epoch=warmup + steps,
                callbacks=[timer], verbose=0, shuffle=False)
    seconds = timer.end - timer.start
    images = timer.steps * batch
    return {'images_per_sec': images / seconds, 'images': images, 'seconds': seconds}


def measure_training(cfg: TrainConfig, strategy, *, steps: int) -> dict:
    """Runs the real training loop for 2 epochs of `steps` in a scratch folder; its `epoch_time`.

    Everything a run does happens here (callbacks, validation, checkpoints, the final test evaluation);
    the split of the second epoch is the steady state a long run repeats.
    """
    scratch = os.path.join(cfg.run.model_dir, _SCRATCH)
    shutil.rmtree(scratch, ignore_errors=True)
    run_cfg = dataclasses.replace(cfg, run=dataclasses.replace(
        cfg.run, model_dir=scratch, epochs=2, steps_per_epoch=steps, benchmark=False))
    try:
        outcome = loop.run(run_cfg, strategy=strategy)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return outcome.results['epoch_time']


def run(cfg: TrainConfig, *, strategy=None, steps: int = 0, warmup: int = 3,
        json_path: str | None = None) -> dict:
    """Measures and prints the ceiling, the real loop's per-step split, their ratio and the verdict.

    Args:
      cfg: the resolved training config (its pipeline, model, augmentation and precision).
      strategy: the run's distribution strategy (default: TensorFlow's current one).
      steps: steps per epoch of the measured run and timed ceiling steps; 0 = `--steps_per_epoch`
        or 20.
      warmup: untimed ceiling steps first (tracing, XLA compilation).
      json_path: also write the report there (default: `--model_dir/benchmark.json`).
    """
    steps = steps or cfg.run.steps_per_epoch or 20
    strategy = strategy or tf.distribute.get_strategy()
    batch = cfg.pipeline.batch_size
    keras.utils.set_random_seed(cfg.run.seed)
    precision = resolve_precision(cfg.run.precision)
    keras.mixed_precision.set_global_policy(precision)
    ceiling = measure_ceiling(cfg, strategy, steps=steps, warmup=warmup)
    epoch_time = measure_training(cfg, strategy, steps=steps)
    steady = epoch_time['steady_state']
    per_step = steady['per_step_seconds']
    train_step = per_step['train_steps']  # the step as the run sees it: input wait included
    end_to_end = {'images_per_sec': batch / train_step, 'images': steady['steps'] * batch,
                  'seconds': steady['seconds']['train_steps']}
    epoch_rate = {'images_per_sec': batch / per_step['total'], 'images': steady['steps'] * batch,
                  'seconds': steady['epoch_seconds']}
    ratio = end_to_end['images_per_sec'] / ceiling['images_per_sec']
    report = {
        'dataset': cfg.source.dataset, 'model': cfg.model.name, 'image_size': cfg.model.image_size,
        'batch_size': batch, 'steps_per_epoch': steps, 'precision': precision,
        'jit_compile': resolve_jit_compile(cfg.run.jit_compile), 'augment': cfg.augment.policy,
        'cache': cfg.pipeline.cache, 'synthetic_data': cfg.run.synthetic_data,
        'backend': keras.backend.backend(), 'cpu_count': os.cpu_count(),
        'device': hardware.summary(), 'tensorflow': tf.__version__, 'keras': keras.__version__,
        'results': [{'name': 'train_step_ceiling_on_device', **ceiling},
                    {'name': 'train_end_to_end', **end_to_end},
                    {'name': 'epoch_end_to_end', **epoch_rate}],
        # One steady-state step of the real loop, part by part (validation and per-epoch callbacks
        # spread over the epoch's steps); the parts add up to `total`.
        'per_step_seconds': {
            'input_wait': per_step['input_wait'], 'step': per_step['compute'],
            'callbacks': per_step['callbacks'], 'validation': per_step['validation'],
            'other': per_step['other'], 'total': per_step['total']},
        'epoch_time': epoch_time,
        'end_to_end_over_ceiling': ratio,
        'input_wait_share': (per_step['input_wait'] / train_step
                             if per_step['input_wait'] is not None else None),
        'input_bound': ratio < _INPUT_BOUND_BELOW,
    }
    _print(report)
    json_path = json_path or os.path.join(cfg.run.model_dir, 'benchmark.json')
    os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
    with open(json_path, 'w') as f:
        json.dump(report, f, indent=2)
    print(f'wrote {json_path}')
    return report


def _print(report: dict) -> None:
    print(f'{"name":32s} {"images/s":>12s} {"images":>8s} {"seconds":>8s}')
    for row in report['results']:
        print(f'{row["name"]:32s} {row["images_per_sec"]:12,.1f} {row["images"]:8d} '
              f'{row["seconds"]:8.2f}')
    parts = report['per_step_seconds']
    shown = ', '.join(f'{k.replace("_", " ")} {1000 * v:.1f}' for k, v in parts.items()
                      if v is not None)
    print(f'one steady-state step of the real loop, ms: {shown}')
    wait = report['input_wait_share']
    wait_text = 'not measured' if wait is None else f'{100 * wait:.1f}% of the train step'
    print(f'end-to-end / ceiling = {report["end_to_end_over_ceiling"]:.3f}; input-bound: '
          f'{"yes" if report["input_bound"] else "no"} (measured input wait: {wait_text})',
          flush=True)
