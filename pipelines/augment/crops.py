"""Batched crops: CIFAR pad-and-crop with flip, Inception random-resized crop, and the eval centre crop."""

import math

from keras import ops

from fastclassify.pipelines.augment import affine
from fastclassify.pipelines.augment import rng


def flip_crop(images, out_size: int, rng_key, *, dtype: str, padding: int = 4):
    """CIFAR standard: zero-pad by `padding`, take a random out_size square, flip half the images.

    Integer offsets need no interpolation, so this is one batched gather of whole pixels instead of a
    bilinear warp; padding is a mask on the gathered indices, never a padded copy of the batch.

    Args:
        images: [B, S, S, C] pixels, any dtype.
        out_size: side of the output; the crop window moves within the padded S + 2 * padding.
        rng_key: [2] uint32 key from `rng.key`.
        dtype: output dtype.
        padding: zero border on each side, in pixels.

    Returns:
        [B, out_size, out_size, C] in `dtype`.
    """
    batch = ops.shape(images)[0]
    size, channels = images.shape[1], images.shape[3]
    span = size + 2 * padding - out_size + 1  # number of possible offsets per axis
    draws = rng.uniform(rng_key, (batch, 3))
    offset_y = ops.cast(ops.floor(draws[:, 0] * span), 'int32') - padding
    offset_x = ops.cast(ops.floor(draws[:, 1] * span), 'int32') - padding
    grid = ops.arange(out_size, dtype='int32')[None, :]
    rows = offset_y[:, None] + grid  # [B, out]
    cols = ops.where(draws[:, 2:3] < 0.5, offset_x[:, None] + (out_size - 1 - grid), offset_x[:, None] + grid)
    inside = ((rows >= 0) & (rows < size))[:, :, None] & ((cols >= 0) & (cols < size))[:, None, :]
    base = ops.reshape(ops.arange(batch, dtype='int32'), (-1, 1, 1)) * (size * size)
    index = base + ops.clip(rows, 0, size - 1)[:, :, None] * size + ops.clip(cols, 0, size - 1)[:, None, :]
    out = affine.to_compute(ops.take(ops.reshape(images, (-1, channels)), index, axis=0), dtype)
    return ops.where(inside[..., None], out, ops.zeros((), dtype))


def rrc_transforms(batch, in_size: int, out_size: int, rng_key, *,
                   area_range: tuple[float, float] = (0.08, 1.0),
                   ratio_range: tuple[float, float] = (3 / 4, 4 / 3),
                   attempts: int = 10):
    """Inception random-resized crop + horizontal flip, as one inverse affine per image.

    Like torchvision's RandomResizedCrop: `attempts` (area, log-aspect) draws per image, the first
    that fits is used, else the central square. All attempts are drawn at once for the whole batch.

    Args:
        batch: number of images (int, or a scalar tensor for a dynamic batch).
        in_size: side of the cached input squares.
        out_size: side of the output.
        rng_key: [2] uint32 key from `rng.key`.
        area_range: crop area as a fraction of the input area.
        ratio_range: crop width / height.
        attempts: draws per image before falling back to the central square.

    Returns:
        [B, 6] float32 transforms for `affine.sample`.
    """
    # One draw for all attempts and the flip (its last column).
    all_draws = rng.uniform(rng_key, (batch, attempts * 4 + 1))
    draws = ops.reshape(all_draws[:, :attempts * 4], (-1, attempts, 4))
    area = (area_range[0] + draws[..., 0] * (area_range[1] - area_range[0])) * float(in_size * in_size)
    log_lo, log_hi = math.log(ratio_range[0]), math.log(ratio_range[1])
    ratio = ops.exp(log_lo + draws[..., 1] * (log_hi - log_lo))
    width = ops.sqrt(area * ratio)
    height = ops.sqrt(area / ratio)
    fits = (width <= in_size) & (height <= in_size)
    # One-hot of the first fitting attempt (all zero when none fits): a masked sum picks its values.
    fits_int = ops.cast(fits, 'int32')
    first = ops.cast(ops.equal(ops.cumsum(fits_int, axis=1), 1) & fits, 'float32')
    any_fit = ops.any(fits, axis=1)
    pick = lambda t: ops.sum(t * first, axis=1)
    width = ops.where(any_fit, pick(width), float(in_size))
    height = ops.where(any_fit, pick(height), float(in_size))
    left = ops.where(any_fit, pick(draws[..., 2]) * (in_size - width), 0.0)
    top = ops.where(any_fit, pick(draws[..., 3]) * (in_size - height), 0.0)
    flip = all_draws[:, -1] < 0.5
    # Output pixel centre (x + 0.5) / out maps to left + (x + 0.5) * width / out in the input, minus 0.5.
    scale_x = width / out_size
    scale_y = height / out_size
    offset_x = left + 0.5 * scale_x - 0.5
    offset_y = top + 0.5 * scale_y - 0.5
    # Flipping: x -> out - 1 - x, folded into the same map.
    a0 = ops.where(flip, -scale_x, scale_x)
    a2 = ops.where(flip, offset_x + scale_x * (out_size - 1), offset_x)
    zeros = ops.zeros_like(a0)
    return ops.stack([a0, zeros, a2, zeros, scale_y, offset_y], axis=1)


def center(images, out_size: int, *, dtype: str):
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
    # Upscaling as tf.image.resize (half-pixel centres, edges repeated), through our own warp so every
    # backend resizes the same way.
    scale = size / out_size
    offset = 0.5 * scale - 0.5
    row = ops.convert_to_tensor([[scale, 0.0, offset, 0.0, scale, offset]], dtype='float32')
    transforms = ops.repeat(row, ops.shape(images)[0], axis=0)
    return affine.sample(images, transforms, out_size, dtype=dtype, fill_mode='nearest')
