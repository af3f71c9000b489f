"""The one table of model families: how to build each backbone, its preprocessing, sizes and weights."""

import dataclasses
import types
from typing import Callable, Mapping

import keras

from fastclassify.models import cifar_nets

_KERAS_APPLICATIONS_URL = 'https://storage.googleapis.com/tensorflow/keras-applications/'

# ImageNet statistics in the 0..255 pixel scale.
_IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)
# CIFAR-100 training-set statistics (0..1 scale); the from-scratch nets normalise with them.
_CIFAR_MEAN = (0.5071, 0.4865, 0.4409)
_CIFAR_STD = (0.2673, 0.2564, 0.2762)


@keras.saving.register_keras_serializable(package='models')
class CaffePreprocessing(keras.layers.Layer):
    """ResNet50's 'caffe' preprocessing as a layer: RGB 0..255 -> BGR minus the ImageNet mean.

    A registered layer rather than a `Lambda` so models save to `.keras` and load with safe_mode on.
    """

    def call(self, inputs):
        bgr = keras.ops.flip(keras.ops.cast(inputs, self.compute_dtype), axis=-1)
        return bgr - keras.ops.convert_to_tensor(_IMAGENET_BGR_MEAN, dtype=self.compute_dtype)


def _cifar_normalization() -> keras.layers.Layer:
    # One layer on the 0..255 scale instead of Rescaling + Normalization: one pass over the batch.
    return keras.layers.Normalization(
            mean=[m * 255.0 for m in _CIFAR_MEAN], variance=[(s * 255.0)**2 for s in _CIFAR_STD],
            name='preprocessing')


@dataclasses.dataclass(frozen=True)
class ModelFamily:
    """One `--model` value.

    Attributes:
        name: the `--model` value.
        backbone: `fn(input_shape, weights) -> keras.Model`, the headless feature extractor; `weights` is
            None or 'imagenet'. Keras applications get `include_top=False`.
        preprocessing: factory of the layer that maps 0..255 RGB pixels to what the backbone expects, or
            None when the backbone carries its own (ConvNeXt, EfficientNetV2: `include_preprocessing`).
        min_image_size: smallest input side the backbone accepts (its total downsampling).
        default_image_size: the resolution the family was designed / pre-trained at.
        application: the `keras.applications` constructor, or None for from-scratch nets.
        imagenet_weights_file: basename of the headless ImageNet weights Keras downloads into
            `$KERAS_HOME/models/`, or None when the family has no pre-trained weights.
        published_params: parameter count with the 1000-class ImageNet top, as the keras.io applications
            table publishes it (millions, one decimal), or None.
        large: building and stepping it takes long on a CPU (tests mark these slow).
    """

    name: str
    backbone: Callable[[tuple[int, int, int], str | None], keras.Model]
    preprocessing: Callable[[], keras.layers.Layer] | None
    min_image_size: int
    default_image_size: int
    application: Callable[..., keras.Model] | None = None
    imagenet_weights_file: str | None = None
    published_params: float | None = None
    large: bool = False

    @property
    def imagenet_weights_url(self) -> str | None:
        """Where Keras downloads `imagenet_weights_file` from."""
        if self.imagenet_weights_file is None:
            return None
        folder = {'convnext': 'convnext', 'efficientnetv2': 'efficientnet_v2', 'resnet50': 'resnet'}
        return _KERAS_APPLICATIONS_URL + folder[self.name.split('_')[0]] + '/' + self.imagenet_weights_file


def _application(constructor, **kwargs):

    def build(input_shape, weights):
        return constructor(include_top=False, weights=weights, input_shape=input_shape, **kwargs)

    return build


def _keras_family(name, constructor, size, params, weights_file, large=False):
    """A keras.applications family that carries its own preprocessing (`include_preprocessing`)."""
    return ModelFamily(
            name=name,
            backbone=_application(constructor, include_preprocessing=True),
            preprocessing=None,
            min_image_size=32,
            default_image_size=size,
            application=constructor,
            imagenet_weights_file=weights_file,
            published_params=params,
            large=large)


def _convnext(name, constructor, size, params, large=False):
    return _keras_family(name, constructor, size, params, f'{name}_notop.h5', large)


def _efficientnetv2(name, constructor, size, params, large=False):
    variant = name.split('_')[1]  # 'b0' .. 'l'
    return _keras_family(name, constructor, size, params, f'efficientnetv2-{variant}_notop.h5', large)


_apps = keras.applications
FAMILIES: Mapping[str, ModelFamily] = types.MappingProxyType({f.name: f for f in (
        _convnext('convnext_tiny', _apps.ConvNeXtTiny, 224, 28.6),
        _convnext('convnext_small', _apps.ConvNeXtSmall, 224, 50.2, large=True),
        _convnext('convnext_base', _apps.ConvNeXtBase, 224, 88.5, large=True),
        _convnext('convnext_large', _apps.ConvNeXtLarge, 224, 197.7, large=True),
        _convnext('convnext_xlarge', _apps.ConvNeXtXLarge, 224, 350.1, large=True),
        # Sizes: the resolution each variant was trained at (Keras' default input shape).
        _efficientnetv2('efficientnetv2_b0', _apps.EfficientNetV2B0, 224, 7.2),
        _efficientnetv2('efficientnetv2_b1', _apps.EfficientNetV2B1, 240, 8.2, large=True),
        _efficientnetv2('efficientnetv2_b2', _apps.EfficientNetV2B2, 260, 10.2, large=True),
        _efficientnetv2('efficientnetv2_b3', _apps.EfficientNetV2B3, 300, 14.5, large=True),
        _efficientnetv2('efficientnetv2_s', _apps.EfficientNetV2S, 384, 21.6, large=True),
        _efficientnetv2('efficientnetv2_m', _apps.EfficientNetV2M, 480, 54.4, large=True),
        _efficientnetv2('efficientnetv2_l', _apps.EfficientNetV2L, 480, 119.0, large=True),
        ModelFamily(
                name='resnet50',
                backbone=_application(_apps.ResNet50),
                preprocessing=lambda: CaffePreprocessing(name='preprocessing'),
                min_image_size=32,
                default_image_size=224,
                application=_apps.ResNet50,
                imagenet_weights_file='resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5',
                published_params=25.6),
        ModelFamily(
                name='cifar_resnet9',
                backbone=lambda input_shape, weights: cifar_nets.cifar_resnet9(input_shape),
                preprocessing=_cifar_normalization,
                min_image_size=8,
                default_image_size=32),
        ModelFamily(
                name='wide_resnet28_10',
                backbone=lambda input_shape, weights: cifar_nets.wide_resnet(input_shape, depth=28, width=10),
                preprocessing=_cifar_normalization,
                min_image_size=8,
                default_image_size=32,
                large=True),
)})


def get_family(name: str) -> ModelFamily:
    """Returns the family registered as `name`; raises ValueError naming --model and the valid names."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f'--model={name!r} is not a known model; valid: {", ".join(FAMILIES)}') from None
