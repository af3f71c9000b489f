"""Model-side benchmark (`train.py --benchmark`): train-step ceiling vs real end-to-end training.

The ceiling feeds the compiled train step from batches already on the device (only a few bytes of
indices cross per step); end-to-end feeds it from the configured pipeline. Their ratio says whether
the run is input-bound.
"""

import json
import os
import platform
import time

import keras
import numpy as np
import tensorflow as tf

from models.builder import build_model
from models.precision import resolve_jit_compile, resolve_precision
from pipelines.augment import Augmenter
from training import loop
from training.config import TrainConfig
from training.optimizers import build_optimizer
from training.trainer import Trainer

_INPUT_BOUND_BELOW = 0.97  # end-to-end under 97% of the ceiling counts as input-bound


class OnDeviceBatches:
    """A few random batches resident on the device, gathered by index like the device cache."""

    def __init__(self, num_examples: int, size: int, num_classes: int, seed: int):
        rng = np.random.default_rng(seed)
        with tf.device(_device_name()):
            self.images = tf.constant(rng.integers(0, 256, (num_examples, size, size, 3), np.uint8))
            self.labels = tf.constant(rng.integers(0, num_classes, (num_examples,), np.int32))

    def gather(self, indices):
        return tf.gather(self.images, indices), tf.gather(self.labels, indices)


class _StepTimer(keras.callbacks.Callback):
    """Wall time of the steps after `warmup` (compilation and pipeline start-up excluded)."""

    def __init__(self, warmup: int):
        super().__init__()
        self.warmup = warmup
        self.start = None
        self.end = None
        self.steps = 0

    def on_train_batch_end(self, batch, logs=None):
        if batch + 1 == self.warmup:
            self.start = time.perf_counter()
        elif batch + 1 > self.warmup:
            self.end = time.perf_counter()
            self.steps = batch + 1 - self.warmup


def _device_name() -> str:
    gpus = tf.config.list_logical_devices('GPU')
    return gpus[0].name if gpus else '/cpu:0'


def _device_description() -> str:
    gpus = tf.config.list_physical_devices('GPU')
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f'{len(gpus)} x {details.get("device_name", "GPU")}'
    return f'CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()})'


def _measure(cfg: TrainConfig, train_data, device_cache, steps: int, warmup: int,
             jit_compile: bool) -> dict:
    batch = cfg.pipeline.batch_size
    classifier = build_model(cfg.model)
    trainer = Trainer(classifier, Augmenter(cfg.augment), cfg.model.num_classes,
                      device_cache=device_cache)
    optimizer = build_optimizer(cfg.optimizer, steps_per_epoch=steps + warmup, epochs=1,
                                global_batch_size=batch)
    loop.compile_trainer(trainer, cfg, optimizer, jit_compile)
    timer = _StepTimer(warmup)
    trainer.fit(train_data, epochs=1, steps_per_epoch=warmup + steps, callbacks=[timer], verbose=0,
                shuffle=False)
    seconds = timer.end - timer.start
    images = timer.steps * batch
    return {'images_per_sec': images / seconds, 'images': images, 'seconds': seconds}


def run(cfg: TrainConfig, *, steps: int = 0, warmup: int = 3, json_path: str | None = None) -> dict:
    """Measures and prints the ceiling, the end-to-end rate, their ratio and the verdict.

    Args:
      cfg: the resolved training config (its pipeline, model, augmentation and precision).
      steps: timed steps per measurement; 0 = `--steps_per_epoch` or 20.
      warmup: untimed steps first (tracing, XLA compilation, pipeline start-up, cache fill).
      json_path: also write the report there (default: `--model_dir/benchmark.json`).
    """
    steps = steps or cfg.run.steps_per_epoch or 20
    keras.utils.set_random_seed(cfg.run.seed)
    precision = resolve_precision(cfg.run.precision)
    keras.mixed_precision.set_global_policy(precision)
    jit_compile = resolve_jit_compile(cfg.run.jit_compile)
    inputs = loop.load_inputs(cfg)
    batch = cfg.pipeline.batch_size
    size = cfg.pipeline.cache_size

    pool = OnDeviceBatches(4 * batch, size, cfg.model.num_classes, cfg.run.seed)
    indices = tf.data.Dataset.range(4 * batch).repeat().shuffle(4 * batch, seed=cfg.run.seed).map(
        lambda i: (tf.cast(i, tf.int32), tf.constant(0, tf.int32))).batch(batch, drop_remainder=True)
    ceiling = _measure(cfg, indices.prefetch(4), pool, steps, warmup, jit_compile)
    # Warm-up covers the first pass that fills an in-memory cache only if the epoch is short; the
    # pipeline benchmark reports first-epoch rates separately.
    end_to_end = _measure(cfg, inputs.train, inputs.device_cache, steps, warmup, jit_compile)
    ratio = end_to_end['images_per_sec'] / ceiling['images_per_sec']
    waiting = max(0.0, 1.0 - ratio)
    report = {
        'dataset': cfg.source.dataset, 'model': cfg.model.name, 'image_size': cfg.model.image_size,
        'batch_size': batch, 'precision': precision, 'jit_compile': jit_compile,
        'augment': cfg.augment.policy, 'cache': inputs.cache_decision,
        'synthetic_data': cfg.run.synthetic_data, 'cpu_count': os.cpu_count(),
        'device': _device_description(), 'tensorflow': tf.__version__, 'keras': keras.__version__,
        'results': [{'name': 'train_step_ceiling_on_device', **ceiling},
                    {'name': 'train_end_to_end', **end_to_end}],
        'end_to_end_over_ceiling': ratio,
        'input_wait_share': waiting,
        'input_bound': ratio < _INPUT_BOUND_BELOW,
    }
    print(f'{"name":32s} {"images/s":>12s} {"images":>8s} {"seconds":>8s}')
    for row in report['results']:
        print(f'{row["name"]:32s} {row["images_per_sec"]:12,.1f} {row["images"]:8d} '
              f'{row["seconds"]:8.2f}')
    print(f'end-to-end / ceiling = {ratio:.3f}; input-bound: {"yes" if report["input_bound"] else "no"} '
          f'(~{100 * waiting:.1f}% of step time waiting for input)', flush=True)
    json_path = json_path or os.path.join(cfg.run.model_dir, 'benchmark.json')
    os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
    with open(json_path, 'w') as f:
        json.dump(report, f, indent=2)
    print(f'wrote {json_path}')
    return report
