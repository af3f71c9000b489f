"""Mixup and CutMix over a whole batch: each image mixes with its mirror in the batch, labels follow pixels."""

import math

import tensorflow as tf


def _gamma(shape, alpha: float, seed: tf.Tensor, candidates: int = 8) -> tf.Tensor:
    """Gamma(alpha, 1) draws by Marsaglia-Tsang, with the rejection loop unrolled into candidates.

    `tf.random.stateless_gamma` has no XLA kernel, and a rejection `while` loop would be a per-draw
    loop; instead every draw gets `candidates` proposals at once and keeps the first accepted one.
    Each is accepted with probability >= 0.95, so all 8 fail about once in 10^10 draws (then the
    mode is used). alpha < 1 uses Gamma(alpha + 1) * U^(1 / alpha).
    """
    boosted = alpha + 1.0 if alpha < 1.0 else alpha
    d = boosted - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    seeds = tf.random.experimental.stateless_split(seed, 3)
    z = tf.random.stateless_normal(shape + [candidates], seeds[0], dtype=tf.float32)
    u = tf.random.stateless_uniform(shape + [candidates], seeds[1], dtype=tf.float32)
    v = (1.0 + c * z) ** 3
    safe_v = tf.where(v > 0.0, v, 1.0)
    accepted = (v > 0.0) & (tf.math.log(u) < 0.5 * z * z + d - d * safe_v + d * tf.math.log(safe_v))
    first = tf.argmax(tf.cast(accepted, tf.int32), axis=-1, output_type=tf.int32)
    chosen = tf.gather(safe_v, first, axis=-1, batch_dims=len(shape))
    draws = d * tf.where(tf.reduce_any(accepted, axis=-1), chosen, 1.0)
    if alpha < 1.0:
        boost = tf.random.stateless_uniform(shape, seeds[2], dtype=tf.float32)
        draws = draws * boost ** (1.0 / alpha)
    return draws


def beta(shape, alpha: float, seed: tf.Tensor) -> tf.Tensor:
    """Beta(alpha, alpha) draws as a ratio of two gamma draws, XLA-compatible."""
    seeds = tf.random.experimental.stateless_split(seed, 2)
    a = _gamma(shape, alpha, seeds[0])
    b = _gamma(shape, alpha, seeds[1])
    return a / tf.maximum(a + b, 1e-30)


def _partners(t: tf.Tensor) -> tf.Tensor:
    # The reversed batch: no shuffle op, and no image is its own partner unless B is odd (the middle one).
    return tf.reverse(t, axis=[0])


def mix(images: tf.Tensor, labels: tf.Tensor, seed: tf.Tensor, *, mixup_alpha: float | None,
        cutmix_alpha: float | None) -> tuple[tf.Tensor, tf.Tensor]:
    """Mixes each image with its partner by mixup, CutMix, or (both given) one of them at random.

    Labels get the weight of the pixels actually taken from each image, so they sum to 1 and match
    the pixel proportions, including CutMix boxes clipped at the border.

    Args:
        images: [B, H, W, C] float pixels in the compute dtype.
        labels: [B, K] float32 one-hot or soft labels.
        seed: [2] int32 stateless seed.
        mixup_alpha: Beta parameter for mixup, or None to not use mixup.
        cutmix_alpha: Beta parameter for CutMix, or None to not use CutMix.

    Returns:
        (images, labels) with the same shapes and dtypes.
    """
    if mixup_alpha is None and cutmix_alpha is None:
        return images, labels
    batch = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    seeds = tf.random.experimental.stateless_split(seed, 4)
    # keep[b, y, x] is the weight of image b itself at each pixel; 1 - keep comes from its partner.
    keep = None
    if mixup_alpha is not None:
        lam = beta([batch], mixup_alpha, seeds[0])
        keep_mixup = tf.broadcast_to(lam[:, None, None], [batch, height, width])
        keep = keep_mixup
    if cutmix_alpha is not None:
        lam = beta([batch], cutmix_alpha, seeds[1])
        centre = tf.random.stateless_uniform([batch, 2], seeds[2], dtype=tf.float32)
        cut_h = tf.sqrt(1.0 - lam) * height
        cut_w = tf.sqrt(1.0 - lam) * width
        cy = centre[:, 0] * height
        cx = centre[:, 1] * width
        # Integer box bounds so the mask and the label weight count the same pixels.
        top = tf.clip_by_value(tf.round(cy - cut_h / 2), 0.0, float(height))
        bottom = tf.clip_by_value(tf.round(cy + cut_h / 2), 0.0, float(height))
        left = tf.clip_by_value(tf.round(cx - cut_w / 2), 0.0, float(width))
        right = tf.clip_by_value(tf.round(cx + cut_w / 2), 0.0, float(width))
        rows = tf.range(height, dtype=tf.float32)[None, :, None]
        cols = tf.range(width, dtype=tf.float32)[None, None, :]
        in_box = ((rows >= top[:, None, None]) & (rows < bottom[:, None, None])
                  & (cols >= left[:, None, None]) & (cols < right[:, None, None]))
        keep_cutmix = 1.0 - tf.cast(in_box, tf.float32)
        if keep is None:
            keep = keep_cutmix
        else:
            use_cutmix = tf.random.stateless_uniform([batch], seeds[3], dtype=tf.float32) < 0.5
            keep = tf.where(use_cutmix[:, None, None], keep_cutmix, keep)
    weight = tf.reduce_mean(keep, axis=[1, 2])  # [B] share of the image's own pixels
    keep_c = tf.cast(keep[..., None], images.dtype)
    mixed = images * keep_c + _partners(images) * (1 - keep_c)
    # Float rounding can land a blend of 255s a hair above 255.
    mixed = tf.clip_by_value(mixed, tf.cast(0, images.dtype), tf.cast(255, images.dtype))
    labels = tf.cast(labels, tf.float32)
    mixed_labels = weight[:, None] * labels + (1.0 - weight[:, None]) * _partners(labels)
    return mixed, mixed_labels
