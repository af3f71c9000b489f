"""From-scratch CIFAR backbones: an airbench-style ResNet-9 and Wide-ResNet-28-10.

Both take already-normalised float pixels (the registry puts the normalisation in front) and return the
last feature map, so any head fits on top.
"""

import keras
from keras import layers


def _conv_bn_act(x, filters, name, activation='gelu'):
    # No conv bias: the BatchNorm right after it has its own offset.
    x = layers.Conv2D(filters, 3, padding='same', use_bias=False, name=f'{name}_conv')(x)
    x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f'{name}_bn')(x)
    return layers.Activation(activation, name=f'{name}_act')(x)


def cifar_resnet9(input_shape: tuple[int, int, int], widths: tuple[int, int, int] = (64, 256, 256),
                  stem_width: int = 32, name: str = 'cifar_resnet9') -> keras.Model:
    """An airbench-style CIFAR net (KellerJordan/cifar10-airbench): fast to train, ~94% on CIFAR-10.

    Stem conv, then three groups of conv -> max-pool(2) -> BN -> GELU -> conv -> BN -> GELU, with a
    residual around the second conv (the 'ResNet' of ResNet-9). Max-pooling early keeps the FLOPs of the
    wide layers small, which is why the net trains in seconds on a GPU.

    Args:
        input_shape: (height, width, 3); each side at least 8 (three halvings).
        widths: channels of the three groups.
        stem_width: channels of the stem conv.
        name: model name.

    Returns:
        A functional model mapping normalised pixels to a (H/8, W/8, widths[-1]) feature map.
    """
    inputs = keras.Input(input_shape, name='normalized_pixels')
    x = _conv_bn_act(inputs, stem_width, 'stem')
    for i, width in enumerate(widths, start=1):
        x = layers.Conv2D(width, 3, padding='same', use_bias=False, name=f'group{i}_conv1')(x)
        x = layers.MaxPooling2D(2, name=f'group{i}_pool')(x)
        x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f'group{i}_bn1')(x)
        x = layers.Activation('gelu', name=f'group{i}_act1')(x)
        residual = _conv_bn_act(x, width, f'group{i}_block')
        x = layers.Add(name=f'group{i}_add')([x, residual])
    return keras.Model(inputs, x, name=name)


def _wide_block(x, filters, stride, name, dropout):
    # Pre-activation block (He et al. 2016), as in Zagoruyko & Komodakis' Wide-ResNet.
    preact = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f'{name}_bn1')(x)
    preact = layers.Activation('relu', name=f'{name}_relu1')(preact)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f'{name}_shortcut')(preact)
    else:
        shortcut = x
    y = layers.Conv2D(filters, 3, strides=stride, padding='same', use_bias=False, name=f'{name}_conv1')(preact)
    y = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f'{name}_bn2')(y)
    y = layers.Activation('relu', name=f'{name}_relu2')(y)
    if dropout:
        y = layers.Dropout(dropout, name=f'{name}_dropout')(y)
    y = layers.Conv2D(filters, 3, padding='same', use_bias=False, name=f'{name}_conv2')(y)
    return layers.Add(name=f'{name}_add')([shortcut, y])


def wide_resnet(input_shape: tuple[int, int, int], depth: int = 28, width: int = 10, dropout: float = 0.0,
                name: str | None = None) -> keras.Model:
    """Wide-ResNet-`depth`-`width` (Zagoruyko & Komodakis 2016); 28-10 has 36.5 M parameters.

    Args:
        input_shape: (height, width, 3); each side at least 8 (two stride-2 groups).
        depth: total conv depth, 6 n + 4.
        width: widening factor k; groups have 16 k, 32 k and 64 k channels.
        dropout: dropout between the two convs of each block (the paper's 0.3 variant), 0 = off.
        name: model name; defaults to 'wide_resnet{depth}_{width}'.

    Returns:
        A functional model mapping normalised pixels to a (H/4, W/4, 64 k) feature map.
    """
    if (depth - 4) % 6:
        raise ValueError(f'Wide-ResNet depth={depth} must be 6 n + 4 (e.g. 16, 22, 28, 40)')
    blocks_per_group = (depth - 4) // 6
    inputs = keras.Input(input_shape, name='normalized_pixels')
    x = layers.Conv2D(16, 3, padding='same', use_bias=False, name='stem_conv')(inputs)
    for group, (filters, stride) in enumerate(((16 * width, 1), (32 * width, 2), (64 * width, 2)), start=1):
        for block in range(blocks_per_group):
            x = _wide_block(x, filters, stride if block == 0 else 1, f'group{group}_block{block}', dropout)
    x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name='final_bn')(x)
    x = layers.Activation('relu', name='final_relu')(x)
    return keras.Model(inputs, x, name=name or f'wide_resnet{depth}_{width}')
