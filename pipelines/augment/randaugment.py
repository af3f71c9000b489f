"""RandAugment (Cubuk et al. 2020) for a whole batch: each image draws its own ops, nothing loops per image.

Every image draws `layers` ops from the 14 below. The geometric draws of all layers compose into one
affine warp per image (one bilinear gather for the batch); the colour draws then apply layer by layer,
each as a per-image select over whole-batch ops. Running geometry first differs from the paper's
interleaved order only in how the grey fill and the histogram ops see the borders.
"""

import math

import tensorflow as tf

from pipelines.augment import affine

OPS = ('identity', 'auto_contrast', 'equalize', 'rotate', 'solarize', 'color', 'posterize', 'contrast',
       'brightness', 'sharpness', 'shear_x', 'shear_y', 'translate_x', 'translate_y')
_INDEX = {name: i for i, name in enumerate(OPS)}

# Strength at magnitude 10 (timm's `_LEVEL_DENOM` scale; the op grows linearly from 0 at magnitude 0).
MAX_ROTATE_DEGREES = 30.0
MAX_SHEAR = 0.3
MAX_TRANSLATE_FRACTION = 0.45
MAX_ENHANCE_DELTA = 0.9  # colour/contrast/brightness/sharpness factor 1 +- this
MAX_POSTERIZE_BITS_REMOVED = 4
FILL_VALUE = 128.0  # timm's grey for pixels a warp brings in from outside


def _select(op: tf.Tensor, name: str) -> tf.Tensor:
    return tf.reshape(tf.equal(op, _INDEX[name]), [-1, 1, 1, 1])


def _grayscale(images: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(images * tf.constant([0.299, 0.587, 0.114]), axis=-1, keepdims=True)


def _blend(degenerate: tf.Tensor, images: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """PIL ImageEnhance: degenerate + factor * (image - degenerate), clipped to 0..255."""
    return tf.clip_by_value(degenerate + factor * (images - degenerate), 0.0, 255.0)


def _auto_contrast(images: tf.Tensor) -> tf.Tensor:
    lo = tf.reduce_min(images, axis=[1, 2], keepdims=True)
    hi = tf.reduce_max(images, axis=[1, 2], keepdims=True)
    scaled = (images - lo) * (255.0 / tf.maximum(hi - lo, 1e-3))
    return tf.where(hi > lo, scaled, images)


def _equalize(images: tf.Tensor) -> tf.Tensor:
    """PIL ImageOps.equalize per image and channel, with one segment-sum histogram for the batch."""
    batch = tf.shape(images)[0]
    height, width, channels = images.shape[1], images.shape[2], images.shape[3]
    values = tf.cast(tf.clip_by_value(tf.round(images), 0.0, 255.0), tf.int32)  # [B, H, W, C]
    plane = tf.range(batch * channels, dtype=tf.int32)
    plane = tf.reshape(plane, [batch, 1, 1, channels])
    ids = plane * 256 + values
    hist = tf.math.unsorted_segment_sum(tf.ones_like(ids, tf.float32), ids, batch * channels * 256)
    hist = tf.reshape(hist, [batch * channels, 256])
    top = tf.reshape(tf.reduce_max(values, axis=[1, 2]), [-1])  # [B*C], row b*C + c like `plane`
    last_count = tf.gather(hist, top, axis=1, batch_dims=1)
    step = tf.floor((float(height * width) - last_count) / 255.0)
    cumulative = tf.cumsum(hist, axis=1, exclusive=True)
    lut = tf.floor((tf.floor(step / 2.0)[:, None] + cumulative) / tf.maximum(step, 1.0)[:, None])
    lut = tf.where(step[:, None] > 0, tf.minimum(lut, 255.0), tf.range(256, dtype=tf.float32)[None, :])
    flat_lut = tf.reshape(lut, [-1])
    return tf.gather(flat_lut, ids)


def _sharpness_degenerate(images: tf.Tensor) -> tf.Tensor:
    """PIL's SMOOTH filter (3x3, centre weight 5, /13) inside the image; border pixels stay as they are.

    Written as nine shifted adds rather than a depthwise conv: XLA on CPU ran the conv at ~70
    images/s and fuses the adds (~1,800 images/s).
    """
    height, width = images.shape[1], images.shape[2]
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]])
    total = 4.0 * images
    for dy in range(3):
        for dx in range(3):
            total = total + padded[:, dy:dy + height, dx:dx + width, :]
    rows = tf.range(height)[:, None]
    cols = tf.range(width)[None, :]
    interior = (rows > 0) & (rows < height - 1) & (cols > 0) & (cols < width - 1)
    return tf.where(interior[None, :, :, None], total / 13.0, images)


def _geometry(ops: tf.Tensor, signs: tf.Tensor, magnitude: float, size: int) -> tf.Tensor:
    """[B, 3, 3] centred inverse map composing the geometric op of every layer (identity for others)."""
    level = magnitude / 10.0
    layers = ops.shape[1]
    batch = tf.shape(ops)[0]
    total = tf.eye(3, batch_shape=[batch])
    for layer in range(layers):
        op = ops[:, layer]
        sign = signs[:, layer]
        angle = sign * (MAX_ROTATE_DEGREES * level * math.pi / 180.0)
        shear = sign * (MAX_SHEAR * level)
        shift = sign * (MAX_TRANSLATE_FRACTION * level * size)
        one = tf.ones_like(sign)
        zero = tf.zeros_like(sign)
        is_op = lambda name: tf.equal(op, _INDEX[name])
        cos = tf.where(is_op('rotate'), tf.cos(angle), one)
        sin = tf.where(is_op('rotate'), tf.sin(angle), zero)
        shear_x = tf.where(is_op('shear_x'), shear, zero)
        shear_y = tf.where(is_op('shear_y'), shear, zero)
        shift_x = tf.where(is_op('translate_x'), shift, zero)
        shift_y = tf.where(is_op('translate_y'), shift, zero)
        # At most one of rotation, shear and shift is non-trivial per layer, so one matrix holds it.
        matrix = tf.stack([
                tf.stack([cos, -sin + shear_x, shift_x], axis=1),
                tf.stack([sin + shear_y, cos, shift_y], axis=1),
                tf.stack([zero, zero, one], axis=1),
        ], axis=1)
        # Layer 1 warps first, so its inverse map is applied last: input = M1 . M2 ... output.
        total = tf.matmul(total, matrix)
    return total


def rand_augment(images: tf.Tensor, seed: tf.Tensor, *, layers: int, magnitude: float,
                 dtype: tf.DType) -> tf.Tensor:
    """Applies RandAugment with `layers` ops of strength `magnitude` (0..10) to every image.

    The colour arithmetic runs in float32 (histograms and lookup tables need exact integers 0..255,
    which bfloat16 cannot hold once blended); the result is cast to `dtype`.

    Args:
        images: [B, S, S, C] pixels 0..255, any dtype, C = 3.
        seed: [2] int32 stateless seed.
        layers: ops per image (N).
        magnitude: strength M on the 0..10 scale.
        dtype: output dtype.

    Returns:
        [B, S, S, C] in `dtype`.
    """
    if layers == 0:
        return affine.to_compute(images, dtype)
    batch = tf.shape(images)[0]
    size = images.shape[1]
    seeds = tf.random.experimental.stateless_split(seed, 2)
    ops = tf.random.stateless_uniform([batch, layers], seeds[0], 0, len(OPS), dtype=tf.int32)
    signs = tf.where(tf.random.stateless_uniform([batch, layers], seeds[1]) < 0.5, -1.0, 1.0)
    level = magnitude / 10.0

    transforms = affine.centered(_geometry(ops, signs, magnitude, size)[:, :2, :], size, size)
    x = affine.sample(images, transforms, size, dtype=tf.float32, fill_mode='constant',
                      fill_value=FILL_VALUE)

    solarize_threshold = 256.0 - 256.0 * level
    posterize_shift = 2.0 ** int(round(MAX_POSTERIZE_BITS_REMOVED * level))
    for layer in range(layers):
        op = ops[:, layer]
        factor = tf.reshape(1.0 + signs[:, layer] * (MAX_ENHANCE_DELTA * level), [-1, 1, 1, 1])
        x = tf.where(_select(op, 'auto_contrast'), _auto_contrast(x), x)
        x = tf.where(_select(op, 'equalize'), _equalize(x), x)
        x = tf.where(_select(op, 'solarize') & (x >= solarize_threshold), 255.0 - x, x)
        x = tf.where(_select(op, 'posterize'), tf.floor(x / posterize_shift) * posterize_shift, x)
        # The four PIL enhancers differ only in what they blend away from.
        gray = _grayscale(x)
        degenerate = tf.zeros_like(x)  # brightness
        degenerate = tf.where(_select(op, 'color'), gray, degenerate)
        degenerate = tf.where(_select(op, 'contrast'), tf.reduce_mean(gray, axis=[1, 2, 3], keepdims=True),
                              degenerate)
        degenerate = tf.where(_select(op, 'sharpness'), _sharpness_degenerate(x), degenerate)
        enhance = (_select(op, 'color') | _select(op, 'contrast') | _select(op, 'brightness')
                   | _select(op, 'sharpness'))
        x = tf.where(enhance, _blend(degenerate, x, factor), x)
    return affine.to_compute(tf.clip_by_value(x, 0.0, 255.0), dtype)
