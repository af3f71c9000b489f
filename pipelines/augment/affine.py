"""Batched affine warps as one bilinear gather per batch (XLA-friendly), and the seed policy's fused affine."""

import math

import keras
from keras import ops

from fastclassify.pipelines.augment import rng

# Per-image transforms are [B, 6] rows (a0, a1, a2, b0, b1, b2) mapping an output pixel (x, y) to the
# input point x_in = a0*x + a1*y + a2, y_in = b0*x + b1*y + b2 (pixel centres at integer coordinates),
# i.e. the inverse map, like ImageProjectiveTransformV3 but without its missing XLA kernel.


def to_compute(images, dtype: str):
    """Casts pixels (uint8 or float, 0..255) to the compute dtype."""
    if keras.backend.standardize_dtype(images.dtype) == dtype:
        return images
    return ops.cast(images, dtype)


def sample(images, transforms, out_size: int, *, dtype: str, fill_mode: str = 'nearest',
           fill_value: float = 0.0):
    """Warps every image of a batch by its own affine map, with bilinear interpolation.

    One gather of the four neighbours for the whole batch: no per-image loop, and the gather reads the
    input in its own dtype (uint8 stays 1 byte per pixel until it is blended).

    Args:
        images: [B, H, W, C] pixels, any dtype, static H, W, C.
        transforms: [B, 6] float32 inverse maps, see the module comment.
        out_size: side of the square output.
        dtype: dtype of the output and of the blend (the layer's compute dtype).
        fill_mode: 'nearest' repeats the edge pixels (ImageDataGenerator's default); 'constant' uses
            `fill_value` for points outside the image.
        fill_value: the constant for 'constant' mode.

    Returns:
        [B, out_size, out_size, C] in `dtype`.
    """
    if fill_mode not in ('nearest', 'constant'):
        raise ValueError(f'fill_mode={fill_mode!r}: must be one of nearest, constant.')
    batch = ops.shape(images)[0]
    height, width, channels = images.shape[1], images.shape[2], images.shape[3]
    # Coordinates stay float32 whatever the compute dtype: bfloat16 cannot tell pixel 200 from 201.
    t = ops.cast(transforms, 'float32')
    grid = ops.arange(out_size, dtype='float32')
    xs = grid[None, None, :]
    ys = grid[None, :, None]
    a0, a1, a2, b0, b1, b2 = [ops.reshape(t[:, i], (-1, 1, 1)) for i in range(6)]
    x_in = a0 * xs + a1 * ys + a2
    y_in = b0 * xs + b1 * ys + b2
    if fill_mode == 'nearest':
        x_in = ops.clip(x_in, 0.0, width - 1.0)
        y_in = ops.clip(y_in, 0.0, height - 1.0)
    x0 = ops.floor(x_in)
    y0 = ops.floor(y_in)
    wx = x_in - x0
    wy = y_in - y0
    x0 = ops.cast(x0, 'int32')
    y0 = ops.cast(y0, 'int32')
    base = ops.reshape(ops.arange(batch, dtype='int32'), (-1, 1, 1)) * (height * width)
    flat = ops.reshape(images, (-1, channels))
    out = None
    # One gather per corner rather than one of the four stacked: XLA on JAX inlined the per-image
    # transform (and its random draws) into the stacked kernel once per corner, and compiled for minutes.
    for dx, dy, weight in ((0, 0, (1 - wx) * (1 - wy)), (1, 0, wx * (1 - wy)), (0, 1, (1 - wx) * wy),
                           (1, 1, wx * wy)):
        cx, cy = x0 + dx, y0 + dy
        index = base + ops.clip(cy, 0, height - 1) * width + ops.clip(cx, 0, width - 1)
        pixels = to_compute(ops.take(flat, index, axis=0), dtype)  # [B, out, out, C]
        if fill_mode == 'constant':
            inside = (cx >= 0) & (cx < width) & (cy >= 0) & (cy < height)
            pixels = ops.where(inside[..., None], pixels, ops.cast(fill_value, dtype))
        term = pixels * ops.cast(weight, dtype)[..., None]
        out = term if out is None else out + term
    # Rounding in float16/bfloat16 can push a blend of 255s just past 255.
    return ops.clip(out, ops.cast(0, dtype), ops.cast(255, dtype))


def centered(matrices, in_size: int, out_size: int):
    """Turns [B, 2, 3] maps between centred coordinates into [B, 6] pixel-coordinate maps.

    Args:
        matrices: [B, 2, 3]; maps (x - c_out, y - c_out, 1) to (x_in - c_in, y_in - c_in).
        in_size: side of the input; its centre c_in = (in_size - 1) / 2.
        out_size: side of the output.

    Returns:
        [B, 6] float32 transforms for `sample`.
    """
    c_in = (in_size - 1) / 2.0
    c_out = (out_size - 1) / 2.0
    a = matrices[:, 0, :]
    b = matrices[:, 1, :]
    a2 = a[:, 2] + c_in - c_out * (a[:, 0] + a[:, 1])
    b2 = b[:, 2] + c_in - c_out * (b[:, 0] + b[:, 1])
    return ops.stack([a[:, 0], a[:, 1], a2, b[:, 0], b[:, 1], b2], axis=1)


def seed_transforms(batch, in_size: int, out_size: int, rng_key, *, rotation_degrees: float = 30.0,
                    shift_fraction: float = 0.2):
    """The seed policy as one inverse affine per image: rotation, shift and horizontal flip fused.

    Same distribution as ImageDataGenerator(rotation_range=30, width_shift_range=0.2,
    height_shift_range=0.2, horizontal_flip=True): angle uniform in +-30 degrees about the centre, shift
    uniform in +-0.2 of each side, flip with probability 1/2. A cache larger than the output is
    resized in the same map.

    Args:
        batch: number of images (int, or a scalar tensor for a dynamic batch).
        in_size: side of the input squares.
        out_size: side of the output squares.
        rng_key: [2] uint32 key from `rng.key`.
        rotation_degrees: the largest rotation either way.
        shift_fraction: the largest shift either way, as a fraction of the side.

    Returns:
        [B, 6] float32 transforms for `sample`.
    """
    draws = rng.uniform(rng_key, (batch, 4))
    theta = (2.0 * draws[:, 0] - 1.0) * (rotation_degrees * math.pi / 180.0)
    shift_x = (2.0 * draws[:, 1] - 1.0) * shift_fraction * in_size
    shift_y = (2.0 * draws[:, 2] - 1.0) * shift_fraction * in_size
    flip = ops.where(draws[:, 3] < 0.5, -1.0, 1.0)
    scale = in_size / out_size
    cos = ops.cos(theta) * scale
    sin = ops.sin(theta) * scale
    # As ImageDataGenerator: input = R(theta) . ((flip * x_out, y_out) * scale + shift) about the
    # centres, so the shift is in the output frame and moves the picture by at most 0.2 per axis.
    matrices = ops.stack([
            ops.stack([cos * flip, -sin, cos / scale * shift_x - sin / scale * shift_y], axis=1),
            ops.stack([sin * flip, cos, sin / scale * shift_x + cos / scale * shift_y], axis=1),
    ], axis=1)
    return centered(matrices, in_size, out_size)
