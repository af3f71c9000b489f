"""Classifier heads by name; each ends in a float32 softmax whatever the global precision policy."""

from typing import Callable

import keras
from keras import layers


def _predictions(x, num_classes):
    # float32 output: softmax and the loss in float16 lose precision and can overflow (Keras mixed
    # precision guide); this layer alone also keeps the logits matmul in float32.
    return layers.Dense(num_classes, activation='softmax', dtype='float32', name='predictions')(x)


def gap_head(features, num_classes: int, dropout: float):
    """Global average pooling, dropout, dense softmax: the default head."""
    x = layers.GlobalAveragePooling2D(name='head_pool')(features)
    if dropout:
        x = layers.Dropout(dropout, name='head_dropout')(x)
    return _predictions(x, num_classes)


def seed_caltech_head(features, num_classes: int, dropout: float):
    """Flatten + dense softmax, as the Caltech-256 report put on ConvNeXt-XL (`dropout` unused there).

    Flatten keeps the spatial layout, so the dense layer grows with the feature map (7 x 7 x 2048 inputs
    for ConvNeXt-XL at 224 px: 25.8 M weights for 257 classes).
    """
    del dropout  # the report had none; keeping its head exact makes its numbers comparable
    x = layers.Flatten(name='head_flatten')(features)
    return _predictions(x, num_classes)


# Widths of the CIFAR-100 report's extra layers; the report does not state them, these are ours.
SEED_CIFAR_FILTERS = 256
SEED_CIFAR_UNITS = 256


def seed_cifar_head(features, num_classes: int, dropout: float):
    """Conv2D (elu) -> BatchNorm -> Dropout -> GAP -> Dense (elu) -> Dense softmax, as the CIFAR-100 report."""
    x = layers.Conv2D(SEED_CIFAR_FILTERS, 3, padding='same', activation='elu', name='head_conv')(features)
    x = layers.BatchNormalization(name='head_bn')(x)
    if dropout:
        x = layers.Dropout(dropout, name='head_dropout')(x)
    x = layers.GlobalAveragePooling2D(name='head_pool')(x)
    x = layers.Dense(SEED_CIFAR_UNITS, activation='elu', name='head_dense')(x)
    return _predictions(x, num_classes)


HEADS: dict[str, Callable] = {
        'gap': gap_head,
        'seed_caltech': seed_caltech_head,
        'seed_cifar': seed_cifar_head,
}


def apply_head(name: str, features, num_classes: int, dropout: float):
    """Applies the head `name` to a 4-D feature map; raises ValueError naming --head and the choices."""
    try:
        head = HEADS[name]
    except KeyError:
        raise ValueError(f'--head={name!r} is not a known head; valid: {", ".join(HEADS)}') from None
    return head(features, num_classes, dropout)
