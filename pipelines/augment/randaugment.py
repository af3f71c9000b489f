"""RandAugment (Cubuk et al. 2020) for a whole batch: each image draws its own ops, nothing loops per image.

Every image draws `layers` ops from the 14 below. The geometric draws of all layers compose into one
affine warp per image (one bilinear gather for the batch); the colour draws then apply layer by layer,
each as a per-image select over whole-batch ops. Running geometry first differs from the paper's
interleaved order only in how the grey fill and the histogram ops see the borders.
"""

import math

from keras import ops

from fastclassify.pipelines.augment import affine
from fastclassify.pipelines.augment import rng

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


def _select(op, name: str):
    return ops.reshape(ops.equal(op, _INDEX[name]), (-1, 1, 1, 1))


def _grayscale(images):
    return ops.sum(images * ops.convert_to_tensor([0.299, 0.587, 0.114]), axis=-1, keepdims=True)


def _blend(degenerate, images, factor):
    """PIL ImageEnhance: degenerate + factor * (image - degenerate), clipped to 0..255."""
    return ops.clip(degenerate + factor * (images - degenerate), 0.0, 255.0)


def _auto_contrast(images):
    lo = ops.min(images, axis=(1, 2), keepdims=True)
    hi = ops.max(images, axis=(1, 2), keepdims=True)
    scaled = (images - lo) * (255.0 / ops.maximum(hi - lo, 1e-3))
    return ops.where(hi > lo, scaled, images)


def _equalize(images):
    """PIL ImageOps.equalize per image and channel, with one segment-sum histogram for the batch."""
    batch = ops.shape(images)[0]
    height, width, channels = images.shape[1], images.shape[2], images.shape[3]
    values = ops.cast(ops.clip(ops.round(images), 0.0, 255.0), 'int32')  # [B, H, W, C]
    planes = batch * channels
    plane = ops.reshape(ops.arange(planes, dtype='int32'), (-1, 1, 1, channels))
    ids = plane * 256 + values
    flat_ids = ops.reshape(ids, (-1,))
    hist = ops.segment_sum(ops.ones_like(flat_ids, dtype='float32'), flat_ids, num_segments=planes * 256)
    hist = ops.reshape(hist, (-1, 256))
    top = ops.reshape(ops.max(values, axis=(1, 2)), (-1, 1))  # [B*C, 1], row b*C + c like `plane`
    last_count = ops.squeeze(ops.take_along_axis(hist, top, axis=1), 1)
    step = ops.floor((float(height * width) - last_count) / 255.0)
    cumulative = ops.cumsum(hist, axis=1) - hist  # exclusive
    lut = ops.floor((ops.floor(step / 2.0)[:, None] + cumulative) / ops.maximum(step, 1.0)[:, None])
    lut = ops.where(step[:, None] > 0, ops.minimum(lut, 255.0), ops.arange(256, dtype='float32')[None, :])
    return ops.take(ops.reshape(lut, (-1,)), ids, axis=0)


def _sharpness_degenerate(images):
    """PIL's SMOOTH filter (3x3, centre weight 5, /13) inside the image; border pixels stay as they are.

    Written as nine shifted adds rather than a depthwise conv: XLA on CPU ran the conv at ~70
    images/s and fuses the adds (~1,800 images/s).
    """
    height, width = images.shape[1], images.shape[2]
    padded = ops.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]])
    total = 4.0 * images
    for dy in range(3):
        for dx in range(3):
            total = total + padded[:, dy:dy + height, dx:dx + width, :]
    rows = ops.arange(height)[:, None]
    cols = ops.arange(width)[None, :]
    interior = (rows > 0) & (rows < height - 1) & (cols > 0) & (cols < width - 1)
    return ops.where(interior[None, :, :, None], total / 13.0, images)


def _geometry(ops_drawn, signs, magnitude: float, size: int):
    """[B, 3, 3] centred inverse map composing the geometric op of every layer (identity for others)."""
    level = magnitude / 10.0
    layers = ops_drawn.shape[1]
    total = None
    for layer in range(layers):
        op = ops_drawn[:, layer]
        sign = signs[:, layer]
        angle = sign * (MAX_ROTATE_DEGREES * level * math.pi / 180.0)
        shear = sign * (MAX_SHEAR * level)
        shift = sign * (MAX_TRANSLATE_FRACTION * level * size)
        one = ops.ones_like(sign)
        zero = ops.zeros_like(sign)
        is_op = lambda name: ops.equal(op, _INDEX[name])
        cos = ops.where(is_op('rotate'), ops.cos(angle), one)
        sin = ops.where(is_op('rotate'), ops.sin(angle), zero)
        shear_x = ops.where(is_op('shear_x'), shear, zero)
        shear_y = ops.where(is_op('shear_y'), shear, zero)
        shift_x = ops.where(is_op('translate_x'), shift, zero)
        shift_y = ops.where(is_op('translate_y'), shift, zero)
        # At most one of rotation, shear and shift is non-trivial per layer, so one matrix holds it.
        matrix = ops.stack([
                ops.stack([cos, -sin + shear_x, shift_x], axis=1),
                ops.stack([sin + shear_y, cos, shift_y], axis=1),
                ops.stack([zero, zero, one], axis=1),
        ], axis=1)
        # Layer 1 warps first, so its inverse map is applied last: input = M1 . M2 ... output.
        total = matrix if total is None else ops.matmul(total, matrix)
    return total


def rand_augment(images, rng_key, *, layers: int, magnitude: float, dtype: str):
    """Applies RandAugment with `layers` ops of strength `magnitude` (0..10) to every image.

    The colour arithmetic runs in float32 (histograms and lookup tables need exact integers 0..255,
    which bfloat16 cannot hold once blended); the result is cast to `dtype`.

    Args:
        images: [B, S, S, C] pixels 0..255, any dtype, C = 3.
        rng_key: [2] uint32 key from `rng.key`.
        layers: ops per image (N).
        magnitude: strength M on the 0..10 scale.
        dtype: output dtype.

    Returns:
        [B, S, S, C] in `dtype`.
    """
    if layers == 0:
        return affine.to_compute(images, dtype)
    batch = ops.shape(images)[0]
    size = images.shape[1]
    draws = rng.uniform(rng_key, (batch, layers, 2))
    ops_drawn = ops.cast(ops.floor(draws[..., 0] * len(OPS)), 'int32')
    signs = ops.where(draws[..., 1] < 0.5, -1.0, 1.0)
    level = magnitude / 10.0

    transforms = affine.centered(_geometry(ops_drawn, signs, magnitude, size)[:, :2, :], size, size)
    x = affine.sample(images, transforms, size, dtype='float32', fill_mode='constant', fill_value=FILL_VALUE)

    solarize_threshold = 256.0 - 256.0 * level
    posterize_shift = 2.0 ** int(round(MAX_POSTERIZE_BITS_REMOVED * level))
    for layer in range(layers):
        op = ops_drawn[:, layer]
        factor = ops.reshape(1.0 + signs[:, layer] * (MAX_ENHANCE_DELTA * level), (-1, 1, 1, 1))
        x = ops.where(_select(op, 'auto_contrast'), _auto_contrast(x), x)
        x = ops.where(_select(op, 'equalize'), _equalize(x), x)
        x = ops.where(_select(op, 'solarize') & (x >= solarize_threshold), 255.0 - x, x)
        x = ops.where(_select(op, 'posterize'), ops.floor(x / posterize_shift) * posterize_shift, x)
        # The four PIL enhancers differ only in what they blend away from.
        gray = _grayscale(x)
        degenerate = ops.zeros_like(x)  # brightness
        degenerate = ops.where(_select(op, 'color'), gray, degenerate)
        degenerate = ops.where(_select(op, 'contrast'), ops.mean(gray, axis=(1, 2, 3), keepdims=True),
                               degenerate)
        degenerate = ops.where(_select(op, 'sharpness'), _sharpness_degenerate(x), degenerate)
        enhance = (_select(op, 'color') | _select(op, 'contrast') | _select(op, 'brightness')
                   | _select(op, 'sharpness'))
        x = ops.where(enhance, _blend(degenerate, x, factor), x)
    return affine.to_compute(ops.clip(x, 0.0, 255.0), dtype)
