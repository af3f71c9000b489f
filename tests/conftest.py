"""Test session setup and the harness tests share: the repository root, `run_train` with the small
settings, and the tiny model the backup tests train. Quiet TensorFlow; the repo root importable."""

import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# A run that finishes in seconds on a CPU: synthetic CIFAR-shaped data, the small from-scratch net,
# 2 epochs of 3 steps, float32 (mixed precision on a CPU is slow and changes nothing tested here).
SMALL = ['--dataset=cifar100', '--synthetic_data', '--model=cifar_resnet9', '--weights=none',
         '--batch_size=16', '--steps_per_epoch=3', '--epochs=2', '--precision=float32', '--head=gap']


def long_test(seconds: int):
    """Marks a test that takes minutes on CI's 2 cores: it runs with FASTCLASSIFY_LONG_TESTS=1 only, which
    keeps the README's whole-suite command inside CI's 40-minute budget. Run them before changing what
    they cover."""
    import pytest  # pylint: disable=import-outside-toplevel
    return pytest.mark.skipif(not os.environ.get('FASTCLASSIFY_LONG_TESTS'),
                              reason=f'~{seconds} s; FASTCLASSIFY_LONG_TESTS=1 runs it (CI time budget)')


def run_train(*args):
    """Runs train.main in-process with `args` parsed as the command line (global flags restored after)."""
    from absl import flags  # pylint: disable=import-outside-toplevel
    from absl.testing import flagsaver  # pylint: disable=import-outside-toplevel

    import train  # pylint: disable=import-outside-toplevel  # defines the flags on import

    with flagsaver.flagsaver():
        flags.FLAGS.unparse_flags()
        flags.FLAGS(['train.py', *args])
        train.main(['train.py'])


def run_train_recording_ids(model_dir: str, record: str, args: list[str]) -> None:
    """Runs train.py's main (as a subprocess's script) with its device-cache stream appending
    `[position, example ids]` per batch to `record`: under several processes this process's rows, and under
    --process_cache=share the ids counted from the split's start, not from the process's first example."""
    import json  # pylint: disable=import-outside-toplevel

    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from absl import app  # pylint: disable=import-outside-toplevel

    import train  # pylint: disable=import-outside-toplevel
    from fastclassify.pipelines import pipeline  # pylint: disable=import-outside-toplevel

    original = pipeline.train_indices_for_device

    def recording(host, batch_size, *, start_step=0, **kwargs):
        share, num_examples = kwargs.get('share'), kwargs.get('num_examples') or host.num_examples
        first = share.train_examples(num_examples, batch_size).start if share else 0

        def write(position, indices):
            with open(record, 'a') as f:
                f.write(json.dumps([int(position), (indices.numpy() + first).tolist()]) + '\n')
            return indices

        def tap(position, batch):
            indices, labels = batch
            shape = indices.shape
            indices = tf.py_function(write, [position, indices], tf.int32)
            indices.set_shape(shape)
            return indices, labels

        stream = original(host, batch_size, start_step=start_step, **kwargs)
        return stream.enumerate(start=start_step).map(tap)

    pipeline.train_indices_for_device = recording
    sys.argv = ['train.py', *args, f'--model_dir={model_dir}']
    app.run(train.main)


def tiny_model(learning_rate: float = 0.1, *, build_optimizer: bool = True):
    """Dense 4 -> 3, compiled with Adam and MSE: enough state (weights + optimizer slots) to back up."""
    import keras  # pylint: disable=import-outside-toplevel

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    model.compile(keras.optimizers.Adam(learning_rate), 'mse')
    if build_optimizer:
        model.optimizer.build(model.trainable_variables)
    return model


def compile_with_nan_loss_from(step: int, original):
    """A `loop.compile_trainer` stand-in: compiles as `original`, then makes the loss NaN from `step` on.

    The loss is multiplied by a factor that is 1 before `step`, NaN after (tf.where on the loss itself
    would leak NaN gradients from the branch not taken).
    """
    import numpy as np
    import tensorflow as tf

    def compile_trainer(trainer, cfg, optimizer, jit_compile):
        original(trainer, cfg, optimizer, jit_compile)
        base = trainer.loss

        def loss(y_true, y_pred):
            factor = tf.where(optimizer.iterations >= step, np.nan, 1.0)
            return base(y_true, y_pred) * tf.cast(factor, y_pred.dtype)

        trainer.compile(optimizer=optimizer, loss=loss, metrics=['accuracy'], jit_compile=False)

    return compile_trainer
