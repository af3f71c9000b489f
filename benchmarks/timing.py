"""The one timing loop of the benchmarks, and the one row schema their JSON shares.

Every row is {name, images_per_sec, images, seconds}, warm-up excluded. Two ways to time, because there
are two kinds of thing timed: an iterator that hands over finished batches (tf.data, Keras loaders,
service streams: pulling one means it is done), and a device step that returns before its work is done
(so only the last output is waited for; device ops run in order).
"""

import time
from typing import Callable, Iterable


def row(name: str, images: int, seconds: float, **extra) -> dict:
    """One result row in the benchmarks' JSON schema."""
    return {'name': name, 'images_per_sec': images / seconds, 'images': images, 'seconds': seconds, **extra}


def time_batches(batches: Iterable, *, name: str, warmup: int = 1, min_seconds: float = 0.0,
                 min_images: int = 0, max_images: int | None = None) -> dict:
    """Pulls batches from an iterable: `warmup` untimed, then until both minimums are reached.

    Each batch is (images, ...) or images; its leading dimension is counted. Stops early if the iterator
    ends (a finite input) or `max_images` is reached.
    """
    it = iter(batches)
    for _ in range(warmup):
        next(it)
    images, start = 0, time.perf_counter()
    for batch in it:
        first = batch[0] if isinstance(batch, (tuple, list)) else batch
        images += int(first.shape[0])
        elapsed = time.perf_counter() - start
        if (elapsed >= min_seconds and images >= min_images) or (max_images and images >= max_images):
            break
    return row(name, images, time.perf_counter() - start)


def time_calls(step: Callable, *, num_batches: int, batch_size: int, name: str) -> dict:
    """Times `num_batches` calls of `step` after one warm-up call (tracing, compiling).

    Syncs once, on the last output: reading one element waits for every call queued before it.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel  # the iterator timing needs none

    # float() reads a TensorFlow tensor and a JAX array alike (for JAX, it waits for the value).
    first_pixel = lambda out: float(tf.nest.flatten(out)[0][0, 0, 0, 0])
    first_pixel(step())
    start = time.perf_counter()
    last = None
    for _ in range(num_batches):
        last = step()
    first_pixel(last)
    return row(name, num_batches * batch_size, time.perf_counter() - start)
