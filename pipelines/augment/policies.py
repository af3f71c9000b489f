"""A policy config turned into one pure batch function: (images, labels, seed) -> (images, labels)."""

import keras
from keras import ops

from fastclassify.pipelines.augment import affine
from fastclassify.pipelines.augment import crops
from fastclassify.pipelines.augment import erasing
from fastclassify.pipelines.augment import mixing
from fastclassify.pipelines.augment import randaugment
from fastclassify.pipelines.augment import rng
from fastclassify.pipelines.augment.config import AugmentConfig


def augment_batch(images, labels, seed, cfg: AugmentConfig, *, training: bool, dtype='float32'):
    """Augments a whole batch the way `cfg.policy` says; pure, so it also runs in a tf.data map.

    Written in `keras.ops` with the counter-based `rng`: the same batch and seed give the same result
    on the TensorFlow and the JAX backend.

    Args:
        images: [B, S, S, 3] uint8 or float pixels 0..255, static S (the cache side).
        labels: [B, num_classes] float one-hot (or already soft) labels.
        seed: [2] integer seed; the same seed gives the same batch.
        cfg: the policy and its parameters.
        training: False gives the deterministic evaluation view (centre crop) and leaves labels alone.
        dtype: the compute dtype of the returned images (a name, or any dtype object Keras knows).

    Returns:
        images [B, image_size, image_size, 3] in `dtype`, values 0..255, and float32 labels.
    """
    dtype = keras.backend.standardize_dtype(dtype)
    images = ops.convert_to_tensor(images)
    labels = ops.cast(labels, 'float32')
    parts = cfg.parts
    out_size = cfg.image_size
    if not training:
        return crops.center(images, out_size, dtype=dtype), labels
    batch = ops.shape(images)[0]
    in_size = images.shape[1]
    root = rng.key(seed)
    geometry_key, randaugment_key, erasing_key, mixing_key = [rng.fold_in(root, i) for i in range(4)]
    if 'seed' in parts:
        transforms = affine.seed_transforms(batch, in_size, out_size, geometry_key)
        x = affine.sample(images, transforms, out_size, dtype=dtype, fill_mode='nearest')
    elif 'rrc' in parts:
        transforms = crops.rrc_transforms(batch, in_size, out_size, geometry_key)
        x = affine.sample(images, transforms, out_size, dtype=dtype, fill_mode='nearest')
    elif 'flip_crop' in parts:
        x = crops.flip_crop(images, out_size, geometry_key, dtype=dtype)
    else:
        x = crops.center(images, out_size, dtype=dtype)
    if 'randaugment' in parts:
        x = randaugment.rand_augment(x, randaugment_key, layers=cfg.randaugment_layers,
                                     magnitude=cfg.randaugment_magnitude, dtype=dtype)
    if 'erasing' in parts:
        x = erasing.erase(x, erasing_key, probability=cfg.erasing_probability)
    x, labels = mixing.mix(x, labels, mixing_key,
                           mixup_alpha=cfg.mixup_alpha if 'mixup' in parts else None,
                           cutmix_alpha=cfg.cutmix_alpha if 'cutmix' in parts else None)
    return x, labels
