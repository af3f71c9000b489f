"""Batched crops: CIFAR pad-and-crop with flip, Inception random-resized crop, and the eval centre crop."""

import math

import tensorflow as tf

from pipelines.augment import affine


def flip_crop(images: tf.Tensor, out_size: int, seed: tf.Tensor, *, dtype: tf.DType,
              padding: int = 4) -> tf.Tensor:
    """CIFAR standard: zero-pad by `padding`, take a random out_size square, flip half the images.

    Integer offsets need no interpolation, so this is two batched gathers (rows, then columns) instead
    of a bilinear warp; padding is a mask on the gathered indices, never a padded copy of the batch.

    Args:
        images: [B, S, S, C] pixels, any dtype.
        out_size: side of the output; the crop window moves within the padded S + 2 * padding.
        seed: [2] int32 stateless seed.
        dtype: output dtype.
        padding: zero border on each side, in pixels.

    Returns:
        [B, out_size, out_size, C] in `dtype`.
    """
    batch = tf.shape(images)[0]
    size = images.shape[1]
    span = size + 2 * padding - out_size + 1  # number of possible offsets per axis
    draws = tf.random.stateless_uniform([batch, 3], seed, dtype=tf.float32)
    offset_y = tf.cast(tf.floor(draws[:, 0] * span), tf.int32) - padding
    offset_x = tf.cast(tf.floor(draws[:, 1] * span), tf.int32) - padding
    grid = tf.range(out_size, dtype=tf.int32)[None, :]
    rows = offset_y[:, None] + grid  # [B, out]
    cols = offset_x[:, None] + grid
    cols = tf.where(draws[:, 2:3] < 0.5, tf.reverse(cols, axis=[1]), cols)
    out = tf.gather(images, tf.clip_by_value(rows, 0, size - 1), axis=1, batch_dims=1)
    out = tf.gather(out, tf.clip_by_value(cols, 0, size - 1), axis=2, batch_dims=1)
    inside = (((rows >= 0) & (rows < size))[:, :, None] & ((cols >= 0) & (cols < size))[:, None, :])
    out = affine.to_compute(out, dtype)
    return tf.where(inside[..., None], out, tf.zeros([], dtype))


def rrc_transforms(batch: tf.Tensor, in_size: int, out_size: int, seed: tf.Tensor, *,
                   area_range: tuple[float, float] = (0.08, 1.0),
                   ratio_range: tuple[float, float] = (3 / 4, 4 / 3),
                   attempts: int = 10) -> tf.Tensor:
    """Inception random-resized crop + horizontal flip, as one inverse affine per image.

    Like torchvision's RandomResizedCrop: `attempts` (area, log-aspect) draws per image, the first
    that fits is used, else the central square. All attempts are drawn at once for the whole batch.

    Args:
        batch: number of images (scalar int tensor).
        in_size: side of the cached input squares.
        out_size: side of the output.
        seed: [2] int32 stateless seed.
        area_range: crop area as a fraction of the input area.
        ratio_range: crop width / height.
        attempts: draws per image before falling back to the central square.

    Returns:
        [B, 6] float32 transforms for `affine.sample`.
    """
    draws = tf.random.stateless_uniform([batch, attempts, 4], seed, dtype=tf.float32)
    area = (area_range[0] + draws[..., 0] * (area_range[1] - area_range[0])) * float(in_size * in_size)
    log_lo, log_hi = math.log(ratio_range[0]), math.log(ratio_range[1])
    ratio = tf.exp(log_lo + draws[..., 1] * (log_hi - log_lo))
    width = tf.sqrt(area * ratio)
    height = tf.sqrt(area / ratio)
    fits = (width <= in_size) & (height <= in_size)
    first = tf.argmax(tf.cast(fits, tf.int32), axis=1, output_type=tf.int32)  # 0 when none fits
    any_fit = tf.reduce_any(fits, axis=1)
    pick = lambda t: tf.gather(t, first, axis=1, batch_dims=1)
    width = tf.where(any_fit, pick(width), float(in_size))
    height = tf.where(any_fit, pick(height), float(in_size))
    left = pick(draws[..., 2]) * (in_size - width)
    top = pick(draws[..., 3]) * (in_size - height)
    left = tf.where(any_fit, left, 0.0)
    top = tf.where(any_fit, top, 0.0)
    flip = tf.random.stateless_uniform([batch], seed + 1, dtype=tf.float32) < 0.5
    # Output pixel centre (x + 0.5) / out maps to left + (x + 0.5) * width / out in the input, minus 0.5.
    scale_x = width / out_size
    scale_y = height / out_size
    offset_x = left + 0.5 * scale_x - 0.5
    offset_y = top + 0.5 * scale_y - 0.5
    # Flipping: x -> out - 1 - x, folded into the same map.
    a0 = tf.where(flip, -scale_x, scale_x)
    a2 = tf.where(flip, offset_x + scale_x * (out_size - 1), offset_x)
    zeros = tf.zeros_like(a0)
    return tf.stack([a0, zeros, a2, zeros, scale_y, offset_y], axis=1)


def center(images: tf.Tensor, out_size: int, *, dtype: tf.DType) -> tf.Tensor:
    """The deterministic evaluation view: central out_size square, or a bilinear resize if smaller.

    Args:
        images: [B, S, S, C] pixels, any dtype.
        out_size: side of the output.
        dtype: output dtype.

    Returns:
        [B, out_size, out_size, C] in `dtype`.
    """
    size = images.shape[1]
    if size == out_size:
        return affine.to_compute(images, dtype)
    if size > out_size:
        start = (size - out_size) // 2
        return affine.to_compute(images[:, start:start + out_size, start:start + out_size, :], dtype)
    resized = tf.image.resize(tf.cast(images, tf.float32), [out_size, out_size], method='bilinear')
    return affine.to_compute(tf.clip_by_value(resized, 0.0, 255.0), dtype)
