"""Mixup and CutMix over a whole batch: each image mixes with its mirror in the batch, labels follow pixels."""

from keras import ops

from fastclassify.pipelines.augment import rng


def beta(shape, alpha: float, rng_key):
    """Beta(alpha, alpha) draws of `shape`, XLA-compatible (see `rng.gamma`)."""
    return rng.beta(rng_key, shape, alpha)


def _partners(t):
    # The reversed batch: no shuffle op, and no image is its own partner unless B is odd (the middle one).
    return ops.flip(t, axis=0)


def mix(images, labels, rng_key, *, mixup_alpha: float | None, cutmix_alpha: float | None):
    """Mixes each image with its partner by mixup, CutMix, or (both given) one of them at random.

    Labels get the weight of the pixels actually taken from each image, so they sum to 1 and match
    the pixel proportions, including CutMix boxes clipped at the border.

    Args:
        images: [B, H, W, C] float pixels in the compute dtype.
        labels: [B, K] float32 one-hot or soft labels.
        rng_key: [2] uint32 key from `rng.key`.
        mixup_alpha: Beta parameter for mixup, or None to not use mixup.
        cutmix_alpha: Beta parameter for CutMix, or None to not use CutMix.

    Returns:
        (images, labels) with the same shapes and dtypes.
    """
    if mixup_alpha is None and cutmix_alpha is None:
        return images, labels
    batch = ops.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    # keep[b, y, x] is the weight of image b itself at each pixel; 1 - keep comes from its partner.
    keep = None
    if mixup_alpha is not None:
        lam = beta((batch,), mixup_alpha, rng.fold_in(rng_key, 0))
        keep = ops.broadcast_to(lam[:, None, None], ops.shape(images)[:3])
    if cutmix_alpha is not None:
        lam = beta((batch,), cutmix_alpha, rng.fold_in(rng_key, 1))
        centre = rng.uniform(rng.fold_in(rng_key, 2), (batch, 2))
        cut_h = ops.sqrt(1.0 - lam) * height
        cut_w = ops.sqrt(1.0 - lam) * width
        cy = centre[:, 0] * height
        cx = centre[:, 1] * width
        # Integer box bounds so the mask and the label weight count the same pixels.
        top = ops.clip(ops.round(cy - cut_h / 2), 0.0, float(height))
        bottom = ops.clip(ops.round(cy + cut_h / 2), 0.0, float(height))
        left = ops.clip(ops.round(cx - cut_w / 2), 0.0, float(width))
        right = ops.clip(ops.round(cx + cut_w / 2), 0.0, float(width))
        rows = ops.arange(height, dtype='float32')[None, :, None]
        cols = ops.arange(width, dtype='float32')[None, None, :]
        in_box = ((rows >= top[:, None, None]) & (rows < bottom[:, None, None])
                  & (cols >= left[:, None, None]) & (cols < right[:, None, None]))
        keep_cutmix = 1.0 - ops.cast(in_box, 'float32')
        if keep is None:
            keep = keep_cutmix
        else:
            use_cutmix = rng.uniform(rng.fold_in(rng_key, 3), (batch,)) < 0.5
            keep = ops.where(use_cutmix[:, None, None], keep_cutmix, keep)
    weight = ops.mean(keep, axis=(1, 2))  # [B] share of the image's own pixels
    keep_c = ops.cast(keep[..., None], images.dtype)
    mixed = images * keep_c + _partners(images) * (1 - keep_c)
    # Float rounding can land a blend of 255s a hair above 255.
    mixed = ops.clip(mixed, ops.cast(0, images.dtype), ops.cast(255, images.dtype))
    labels = ops.cast(labels, 'float32')
    mixed_labels = weight[:, None] * labels + (1.0 - weight[:, None]) * _partners(labels)
    return mixed, mixed_labels
