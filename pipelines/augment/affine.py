"""Batched affine warps as one bilinear gather per batch (XLA-friendly), and the seed policy's fused affine."""

import math

import tensorflow as tf

# Per-image transforms are [B, 6] rows (a0, a1, a2, b0, b1, b2) mapping an output pixel (x, y) to the
# input point x_in = a0*x + a1*y + a2, y_in = b0*x + b1*y + b2 (pixel centres at integer coordinates),
# i.e. the inverse map, like ImageProjectiveTransformV3 but without its missing XLA kernel.


def to_compute(images: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    """Casts pixels (uint8 or float, 0..255) to the compute dtype."""
    return images if images.dtype == dtype else tf.cast(images, dtype)


def sample(images: tf.Tensor, transforms: tf.Tensor, out_size: int, *, dtype: tf.DType,
           fill_mode: str = 'nearest', fill_value: float = 0.0) -> tf.Tensor:
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
    batch = tf.shape(images)[0]
    height, width, channels = images.shape[1], images.shape[2], images.shape[3]
    # Coordinates stay float32 whatever the compute dtype: bfloat16 cannot tell pixel 200 from 201.
    t = tf.cast(transforms, tf.float32)
    grid = tf.range(out_size, dtype=tf.float32)
    xs = grid[None, None, :]
    ys = grid[None, :, None]
    a0, a1, a2, b0, b1, b2 = [tf.reshape(t[:, i], [-1, 1, 1]) for i in range(6)]
    x_in = a0 * xs + a1 * ys + a2
    y_in = b0 * xs + b1 * ys + b2
    if fill_mode == 'nearest':
        x_in = tf.clip_by_value(x_in, 0.0, width - 1.0)
        y_in = tf.clip_by_value(y_in, 0.0, height - 1.0)
    x0 = tf.floor(x_in)
    y0 = tf.floor(y_in)
    wx = x_in - x0
    wy = y_in - y0
    x0 = tf.cast(x0, tf.int32)
    y0 = tf.cast(y0, tf.int32)
    corners_x = tf.stack([x0, x0 + 1, x0, x0 + 1], axis=-1)  # [B, out, out, 4]
    corners_y = tf.stack([y0, y0, y0 + 1, y0 + 1], axis=-1)
    weights = tf.stack([(1 - wx) * (1 - wy), wx * (1 - wy), (1 - wx) * wy, wx * wy], axis=-1)
    if fill_mode == 'constant':
        inside = ((corners_x >= 0) & (corners_x < width) & (corners_y >= 0) & (corners_y < height))
    cx = tf.clip_by_value(corners_x, 0, width - 1)
    cy = tf.clip_by_value(corners_y, 0, height - 1)
    base = tf.range(batch, dtype=tf.int32)[:, None, None, None] * (height * width)
    flat = tf.reshape(images, [-1, channels])
    pixels = to_compute(tf.gather(flat, base + cy * width + cx), dtype)  # [B, out, out, 4, C]
    if fill_mode == 'constant':
        pixels = tf.where(inside[..., None], pixels, tf.cast(fill_value, dtype))
    out = tf.reduce_sum(pixels * tf.cast(weights, dtype)[..., None], axis=3)
    # Rounding in float16/bfloat16 can push a blend of 255s just past 255.
    return tf.clip_by_value(out, tf.cast(0, dtype), tf.cast(255, dtype))


def compose(outer: tf.Tensor, inner: tf.Tensor) -> tf.Tensor:
    """The [B, 6] inverse map of 'warp by inner, then by outer' (output -> outer -> inner -> input)."""
    def mat(t):
        rows = tf.reshape(t, [-1, 2, 3])
        last = tf.broadcast_to(tf.constant([[0.0, 0.0, 1.0]]), [tf.shape(t)[0], 3])[:, None, :]
        return tf.concat([rows, last], axis=1)
    product = tf.matmul(mat(inner), mat(outer))
    return tf.reshape(product[:, :2, :], [-1, 6])


def centered(matrices: tf.Tensor, in_size: int, out_size: int) -> tf.Tensor:
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
    return tf.stack([a[:, 0], a[:, 1], a2, b[:, 0], b[:, 1], b2], axis=1)


def seed_transforms(batch: tf.Tensor, in_size: int, out_size: int, seed: tf.Tensor, *,
                    rotation_degrees: float = 30.0, shift_fraction: float = 0.2) -> tf.Tensor:
    """The seed policy as one inverse affine per image: rotation, shift and horizontal flip fused.

    Same distribution as ImageDataGenerator(rotation_range=30, width_shift_range=0.2,
    height_shift_range=0.2, horizontal_flip=True): angle uniform in +-30 degrees about the centre, shift
    uniform in +-0.2 of each side, flip with probability 1/2. A cache larger than the output is
    resized in the same map.

    Args:
        batch: number of images (scalar int tensor).
        in_size: side of the input squares.
        out_size: side of the output squares.
        seed: [2] int32 stateless seed.
        rotation_degrees: the largest rotation either way.
        shift_fraction: the largest shift either way, as a fraction of the side.

    Returns:
        [B, 6] float32 transforms for `sample`.
    """
    draws = tf.random.stateless_uniform([batch, 4], seed, dtype=tf.float32)
    theta = (2.0 * draws[:, 0] - 1.0) * (rotation_degrees * math.pi / 180.0)
    shift_x = (2.0 * draws[:, 1] - 1.0) * shift_fraction * in_size
    shift_y = (2.0 * draws[:, 2] - 1.0) * shift_fraction * in_size
    flip = tf.where(draws[:, 3] < 0.5, -1.0, 1.0)
    scale = in_size / out_size
    cos = tf.cos(theta) * scale
    sin = tf.sin(theta) * scale
    # As ImageDataGenerator: input = R(theta) . ((flip * x_out, y_out) * scale + shift) about the
    # centres, so the shift is in the output frame and moves the picture by at most 0.2 per axis.
    matrices = tf.stack([
            tf.stack([cos * flip, -sin, cos / scale * shift_x - sin / scale * shift_y], axis=1),
            tf.stack([sin * flip, cos, sin / scale * shift_x + cos / scale * shift_y], axis=1),
    ], axis=1)
    return centered(matrices, in_size, out_size)
