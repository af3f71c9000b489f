"""Builds the classifier of a `ModelConfig`: pixels -> family preprocessing -> backbone -> head."""

import keras

from fastclassify.models import heads
from fastclassify.models import registry
from fastclassify.models import weights as weights_lib
from fastclassify.models.config import ModelConfig


def _backbone(family: registry.ModelFamily, cfg: ModelConfig) -> keras.Model:
    input_shape = (cfg.image_size, cfg.image_size, 3)
    if cfg.weights == 'imagenet':
        model = weights_lib.build_imagenet_backbone(cfg.name, input_shape)
    else:
        model = family.backbone(input_shape, None)
    # Re-wrapped under one fixed name so freezing, loading and summaries find it the same way for every
    # family (Keras applications insist on their own names when they load ImageNet weights).
    return keras.Model(model.inputs[0], model.outputs[0], name='backbone')


def build_model(cfg: ModelConfig) -> keras.Model:
    """Builds the functional classifier described by `cfg`.

    The model takes `(batch, image_size, image_size, 3)` RGB pixels in 0..255, uint8 or float, and does the
    family's own preprocessing inside (so pipelines never need to know the model); its output are softmax
    probabilities in float32 under any global precision policy. The feature extractor is the nested model
    'backbone' (see `set_backbone_trainable`).

    Build under the precision policy you train with: `models.precision.apply_precision` first.

    Args:
        cfg: the validated model config.

    Returns:
        An uncompiled `keras.Model` named '{model}_{head}'.

    Raises:
        models.weights.WeightsError: weights requested but not available or not loadable.
    """
    family = registry.get_family(cfg.name)
    # float32 input whatever the policy: uint8 pixels convert exactly, and the preprocessing layers cast to
    # the compute dtype themselves.
    inputs = keras.Input((cfg.image_size, cfg.image_size, 3), dtype='float32', name='pixels')
    x = family.preprocessing()(inputs) if family.preprocessing else inputs
    features = _backbone(family, cfg)(x)
    outputs = heads.apply_head(cfg.head, features, cfg.num_classes, cfg.dropout)
    model = keras.Model(inputs, outputs, name=f'{cfg.name}_{cfg.head}')
    if cfg.weights not in ('imagenet', 'none'):
        weights_lib.load_weights_file(model, cfg.weights)
    return model


def _all_layers(model: keras.Model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def set_backbone_trainable(model: keras.Model, trainable: bool, *, freeze_batchnorm: bool = True) -> None:
    """Freezes or unfreezes the backbone of a model from `build_model`.

    When unfreezing (fine-tuning after `--freeze_backbone_epochs`), BatchNormalization layers stay frozen:
    a non-trainable Keras 3 BatchNormalization runs in inference mode, so its ImageNet statistics are not
    overwritten by the first small, noisy fine-tuning batches (Keras transfer-learning guide).

    Recompile the model after calling this (Keras fixes the trainable variable list at compile time), with a
    fresh optimizer: the old one has no slots for the newly trainable variables.

    Args:
        model: a model from `build_model`.
        trainable: False to freeze the whole backbone, True to unfreeze it.
        freeze_batchnorm: keep BatchNormalization layers frozen when unfreezing; set False only when the
            backbone was trained from scratch (its statistics must keep adapting).
    """
    backbone = model.get_layer('backbone')
    backbone.trainable = trainable
    if trainable and freeze_batchnorm:
        for layer in _all_layers(backbone):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
