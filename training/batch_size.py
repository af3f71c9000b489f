"""`--batch_size=auto`: the largest batch whose train step fits the accelerator's memory, found by probing."""

import gc
import logging
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

# Messages of OOMs that do not arrive as ResourceExhaustedError (XLA and some allocators raise
# InternalError / UnknownError carrying the status text instead).
_OOM_MARKERS = ('RESOURCE_EXHAUSTED', 'Out of memory', 'out of memory', 'OOM when allocating')
_JAX_RUNTIME_ERRORS = ('XlaRuntimeError', 'JaxRuntimeError')


def is_out_of_memory(error: BaseException) -> bool:
    """Whether `error` is an accelerator (or host) out-of-memory failure, on either Keras backend.

    JAX reports one as `XlaRuntimeError` (`JaxRuntimeError` in newer releases) with RESOURCE_EXHAUSTED.
    """
    if isinstance(error, (tf.errors.ResourceExhaustedError, MemoryError)):
        return True
    runtime = isinstance(error, tf.errors.OpError) or type(error).__name__ in _JAX_RUNTIME_ERRORS
    return runtime and any(m in str(error) for m in _OOM_MARKERS)


def _default_compile_kwargs() -> dict:
    return dict(optimizer='adam', loss='sparse_categorical_crossentropy')


def fits(build_model_fn: Callable[[], keras.Model], batch_size: int, image_size: int, num_classes: int,
         compile_kwargs: dict | None = None) -> bool:
    """Runs one real train step at `batch_size` on synthetic data; False on out-of-memory.

    The optimizer's slots are created inside that first step, so its peak memory covers training proper.
    The batch is made on the device (no host copy in the probe) from the model's own input shape.
    """
    try:
        model = build_model_fn()
        model.compile(**(compile_kwargs or _default_compile_kwargs()))
        images = np.random.default_rng(0).integers(0, 256, (batch_size, image_size, image_size, 3), np.uint8)
        labels = (np.arange(batch_size) % num_classes).astype(np.int32)
        model.train_on_batch(images, labels)
        return True
    except Exception as e:
        if is_out_of_memory(e):
            return False
        raise
    finally:
        # Frees the probe's model, optimizer slots and compiled step before the next candidate.
        model = None
        keras.backend.clear_session()
        gc.collect()


def find_max_batch_size(build_model_fn: Callable[[], keras.Model], image_size: int, num_classes: int, *,
                        start: int = 1024, minimum: int = 1, compile_kwargs: dict | None = None) -> int:
    """Largest per-replica batch, from `start` halving down, whose train step runs without OOM.

    Halving (not a finer search) keeps the answer a power of two times `start`'s factor and leaves headroom
    for what the probe does not have: the input pipeline's prefetched batches, augmentation buffers and
    allocator fragmentation over a long run. `start` is also the cap, so a CPU run (which rarely OOMs)
    stays fast.

    Args:
        build_model_fn: builds a fresh, uncompiled model (called once per candidate, after the session is
            cleared); build it under the precision policy of the run.
        image_size: side of the square uint8 input.
        num_classes: classes of the labels.
        start: first candidate and largest answer.
        minimum: smallest acceptable batch.
        compile_kwargs: `Model.compile` arguments of the real run (optimizer, loss, jit_compile, ...), since
            XLA and the optimizer change the memory a step needs; defaults to Adam + sparse cross-entropy.

    Returns:
        The batch size found.

    Raises:
        ValueError: `start` < `minimum` or `minimum` < 1.
        RuntimeError: even `minimum` does not fit.
    """
    if minimum < 1 or start < minimum:
        raise ValueError(f'batch-size probe needs 1 <= minimum ({minimum}) <= start ({start})')
    batch_size = start
    while batch_size >= minimum:
        if fits(build_model_fn, batch_size, image_size, num_classes, compile_kwargs):
            logging.info('--batch_size=auto: %d fits', batch_size)
            return batch_size
        logging.info('--batch_size=auto: %d ran out of memory, halving', batch_size)
        batch_size //= 2
    raise RuntimeError(
            f'--batch_size=auto: even a batch of {minimum} runs out of memory at --image_size={image_size}; '
            f'use a smaller model, image size or --precision=mixed_float16')
