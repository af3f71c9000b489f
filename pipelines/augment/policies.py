"""A policy config turned into one pure batch function: (images, labels, seed) -> (images, labels)."""

import tensorflow as tf

from pipelines.augment import affine
from pipelines.augment import crops
from pipelines.augment import erasing
from pipelines.augment import mixing
from pipelines.augment import randaugment
from pipelines.augment.config import AugmentConfig

# Parts whose ops have no XLA kernel on some device; empty since every part is built from gathers,
# segment sums, stateless draws and elementwise ops. Kept as the one place to name an exception.
NOT_JITTABLE: frozenset[str] = frozenset()


def augment_batch(images: tf.Tensor, labels: tf.Tensor, seed: tf.Tensor, cfg: AugmentConfig, *,
                  training: bool, dtype: tf.DType = tf.float32) -> tuple[tf.Tensor, tf.Tensor]:
    """Augments a whole batch the way `cfg.policy` says; pure, so it also runs in a tf.data map.

    Args:
        images: [B, S, S, 3] uint8 or float pixels 0..255, static S (the cache side).
        labels: [B, num_classes] float one-hot (or already soft) labels.
        seed: [2] int32 stateless seed; the same seed gives the same batch.
        cfg: the policy and its parameters.
        training: False gives the deterministic evaluation view (centre crop) and leaves labels alone.
        dtype: the compute dtype of the returned images.

    Returns:
        images [B, image_size, image_size, 3] in `dtype`, values 0..255, and float32 labels.
    """
    labels = tf.cast(labels, tf.float32)
    parts = cfg.parts
    out_size = cfg.image_size
    if not training:
        return crops.center(images, out_size, dtype=dtype), labels
    batch = tf.shape(images)[0]
    in_size = images.shape[1]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int32), 5)
    seeds = tf.cast(seeds, tf.int32)
    if 'seed' in parts:
        transforms = affine.seed_transforms(batch, in_size, out_size, seeds[0])
        x = affine.sample(images, transforms, out_size, dtype=dtype, fill_mode='nearest')
    elif 'rrc' in parts:
        transforms = crops.rrc_transforms(batch, in_size, out_size, seeds[0])
        x = affine.sample(images, transforms, out_size, dtype=dtype, fill_mode='nearest')
    elif 'flip_crop' in parts:
        x = crops.flip_crop(images, out_size, seeds[0], dtype=dtype)
    else:
        x = crops.center(images, out_size, dtype=dtype)
    if 'randaugment' in parts:
        x = randaugment.rand_augment(x, seeds[1], layers=cfg.randaugment_layers,
                                     magnitude=cfg.randaugment_magnitude, dtype=dtype)
    if 'erasing' in parts:
        x = erasing.erase(x, seeds[2], probability=cfg.erasing_probability)
    x, labels = mixing.mix(x, labels, seeds[3],
                           mixup_alpha=cfg.mixup_alpha if 'mixup' in parts else None,
                           cutmix_alpha=cfg.cutmix_alpha if 'cutmix' in parts else None)
    return x, labels


def supports_jit(cfg: AugmentConfig) -> bool:
    """Whether every part of the policy compiles with XLA (jit_compile=True in the train step)."""
    return not (set(cfg.parts) & NOT_JITTABLE)
