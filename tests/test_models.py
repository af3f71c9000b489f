"""Model registry, builder, heads, freezing and precision: every family builds and trains one step."""

import keras
import numpy as np
import pytest

from fastclassify.models import builder
from fastclassify.models import cifar_nets
from fastclassify.models import precision
from fastclassify.models import registry
from fastclassify.models.config import ModelConfig


@pytest.fixture(autouse=True)
def _fresh_keras():
    keras.mixed_precision.set_global_policy('float32')
    yield
    keras.mixed_precision.set_global_policy('float32')
    keras.backend.clear_session()


def _pixels(batch, size, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)


def _small_size(family):
    return max(family.min_image_size, 16)


# --- config validation -------------------------------------------------------------------------------

def test_unknown_model_names_flag_and_valid_choices():
    with pytest.raises(ValueError,
                       match=r"--model='resnet18' is not a known model; valid: .*convnext_tiny.*cifar_resnet9"):
        ModelConfig('resnet18', 10, 224)


def test_unknown_head_names_flag_and_choices():
    with pytest.raises(ValueError, match=r"--head='mlp'.*gap, seed_caltech, seed_cifar"):
        ModelConfig('cifar_resnet9', 10, 32, head='mlp')


def test_image_size_below_family_minimum_names_model_and_minimum():
    with pytest.raises(ValueError, match=r'--image_size=16 .*--model=convnext_tiny.*minimum is 32'):
        ModelConfig('convnext_tiny', 10, 16)
    with pytest.raises(ValueError, match=r'--image_size=0'):
        ModelConfig('cifar_resnet9', 10, 0)


def test_imagenet_weights_for_from_scratch_net_is_a_clear_error():
    with pytest.raises(ValueError, match=r'--weights=imagenet.*cifar_resnet9.*from scratch'):
        ModelConfig('cifar_resnet9', 10, 32, weights='imagenet')


def test_full_model_h5_refused_at_config_time():
    with pytest.raises(ValueError, match=r'legacy full-model \.h5'):
        ModelConfig('cifar_resnet9', 10, 32, weights='/tmp/model.h5')


def test_registry_has_exactly_the_issue_names():
    expected = {f'convnext_{s}' for s in ('tiny', 'small', 'base', 'large', 'xlarge')}
    expected |= {f'efficientnetv2_{s}' for s in ('b0', 'b1', 'b2', 'b3', 's', 'm', 'l')}
    expected |= {'resnet50', 'cifar_resnet9', 'wide_resnet28_10'}
    assert set(registry.FAMILIES) == expected


# --- every family builds and trains one step -----------------------------------------------------------

def _family_params():
    return [pytest.param(name, marks=[pytest.mark.slow] if family.large else [])
            for name, family in registry.FAMILIES.items()]


@pytest.mark.parametrize('name', _family_params())
def test_every_family_builds_and_trains_one_step(name):
    family = registry.FAMILIES[name]
    size = _small_size(family)
    model = builder.build_model(ModelConfig(name, num_classes=5, image_size=size))
    assert model.input_shape == (None, size, size, 3)
    assert model.output_shape == (None, 5)
    backbone = model.get_layer('backbone')
    before = [w.copy() for w in backbone.get_weights()]
    # Eager: one step of a big graph traces far slower than it runs on a CPU.
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss='sparse_categorical_crossentropy', run_eagerly=True)
    loss = model.train_on_batch(_pixels(2, size), np.array([0, 3]))
    assert np.isfinite(loss)
    changed = [not np.array_equal(a, b) for a, b in zip(before, backbone.get_weights())]
    assert any(changed), 'a train step must update the backbone'


# --- parameter counts against the keras.io applications table ------------------------------------------

# The keras.io applications table (millions, one decimal), written here rather than read from the registry
# so a wrong registry figure or a changed Keras model fails. Exact counts where Keras documents them.
_KERAS_IO_MILLIONS = {
        'convnext_tiny': 28.6, 'convnext_small': 50.2, 'convnext_base': 88.5, 'convnext_large': 197.7,
        'convnext_xlarge': 350.1, 'efficientnetv2_b0': 7.2, 'efficientnetv2_b1': 8.2, 'efficientnetv2_b2': 10.2,
        'efficientnetv2_b3': 14.5, 'efficientnetv2_s': 21.6, 'efficientnetv2_m': 54.4, 'efficientnetv2_l': 119.0,
        'resnet50': 25.6}
_EXACT_PARAMS = {'resnet50': 25_636_712, 'efficientnetv2_b0': 7_200_312}


def _app_params():
    return [pytest.param(name, marks=[pytest.mark.slow] if family.large else [])
            for name, family in registry.FAMILIES.items() if family.application is not None]


@pytest.mark.parametrize('name', _app_params())
def test_parameter_counts_match_published_table(name):
    family = registry.FAMILIES[name]
    assert family.published_params == _KERAS_IO_MILLIONS[name]
    count = family.application(weights=None).count_params()
    if name in _EXACT_PARAMS:
        assert count == _EXACT_PARAMS[name]
    else:
        # keras.io publishes millions with one decimal, some rounded and some truncated.
        assert abs(count / 1e6 - _KERAS_IO_MILLIONS[name]) < 0.1, (name, count)


@pytest.mark.slow
def test_wide_resnet28_10_has_the_papers_36_5m_parameters():
    model = cifar_nets.wide_resnet((32, 32, 3), depth=28, width=10)
    assert abs(model.count_params() / 1e6 - 36.5) < 0.05
    assert model.output_shape == (None, 8, 8, 640)


def test_wide_resnet_rejects_bad_depth():
    with pytest.raises(ValueError, match='6 n \\+ 4'):
        cifar_nets.wide_resnet((32, 32, 3), depth=27)


def test_cifar_resnet9_feature_map_and_small_size():
    model = cifar_nets.cifar_resnet9((32, 32, 3))
    assert model.output_shape == (None, 4, 4, 256)
    assert 1e6 < model.count_params() < 3e6  # airbench-sized, not a ResNet-18


# --- preprocessing inside the model ----------------------------------------------------------------------

def test_uint8_and_float_pixels_give_the_same_predictions():
    size = 16
    model = builder.build_model(ModelConfig('cifar_resnet9', 4, size, dropout=0.0))
    pixels = _pixels(2, size, seed=1)
    np.testing.assert_allclose(model.predict_on_batch(pixels), model.predict_on_batch(pixels.astype('float32')),
                               rtol=1e-6, atol=1e-6)


def test_preprocessing_normalises_pixels_inside_the_model():
    model = builder.build_model(ModelConfig('cifar_resnet9', 4, 16))
    normalise = keras.Model(model.input, model.get_layer('preprocessing').output)
    out = normalise.predict_on_batch(_pixels(8, 16))
    # 0..255 in, roughly zero-mean unit-scale out.
    assert abs(out.mean()) < 0.5 and 0.5 < out.std() < 2.5


def test_resnet50_caffe_preprocessing_flips_to_bgr_and_subtracts_mean():
    layer = registry.CaffePreprocessing()
    pixel = np.array([[[[255.0, 0.0, 10.0]]]], dtype='float32')
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(pixel)),
                               [[[[10.0 - 103.939, 0.0 - 116.779, 255.0 - 123.68]]]], rtol=1e-5)


# --- heads -----------------------------------------------------------------------------------------------

def _layer_types(model, names_from='head'):
    return [type(layer).__name__ for layer in model.layers if layer.name.startswith(names_from)
            or layer.name == 'predictions']


def test_seed_caltech_head_is_flatten_then_softmax():
    model = builder.build_model(ModelConfig('cifar_resnet9', 7, 32, head='seed_caltech'))
    assert _layer_types(model) == ['Flatten', 'Dense']
    # Flatten keeps the 4 x 4 x 256 map: the dense layer sees all of it.
    assert model.get_layer('predictions').kernel.shape == (4 * 4 * 256, 7)


def test_seed_cifar_head_follows_the_report():
    model = builder.build_model(ModelConfig('cifar_resnet9', 7, 32, head='seed_cifar', dropout=0.3))
    assert _layer_types(model) == ['Conv2D', 'BatchNormalization', 'Dropout', 'GlobalAveragePooling2D', 'Dense',
                                   'Dense']
    assert model.get_layer('head_conv').activation.__name__ == 'elu'
    assert model.get_layer('head_dense').activation.__name__ == 'elu'
    assert model.get_layer('head_dropout').rate == 0.3


def test_gap_head_default_and_dropout_zero_drops_the_layer():
    assert _layer_types(builder.build_model(ModelConfig('cifar_resnet9', 7, 16))) == [
            'GlobalAveragePooling2D', 'Dropout', 'Dense']
    assert _layer_types(builder.build_model(ModelConfig('cifar_resnet9', 7, 16, dropout=0.0))) == [
            'GlobalAveragePooling2D', 'Dense']


# --- precision -----------------------------------------------------------------------------------------

@pytest.mark.parametrize('policy', ['mixed_float16', 'mixed_bfloat16'])
@pytest.mark.parametrize('head', ['gap', 'seed_cifar'])
def test_output_is_float32_under_mixed_precision(policy, head):
    precision.apply_precision(policy)
    model = builder.build_model(ModelConfig('cifar_resnet9', 5, 16, head=head))
    assert model.get_layer('head_pool').compute_dtype == policy.split('_')[1]  # the body does run mixed
    assert model.get_layer('predictions').compute_dtype == 'float32'
    assert model.output.dtype == 'float32'
    probabilities = model.predict_on_batch(_pixels(2, 16))
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_mixed_float16_compile_adds_loss_scaling():
    precision.apply_precision('mixed_float16')
    model = builder.build_model(ModelConfig('cifar_resnet9', 5, 16))
    model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', run_eagerly=True)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert np.isfinite(model.train_on_batch(_pixels(2, 16), np.array([1, 2])))


@pytest.mark.parametrize('accelerator, expected', [
        (precision.Accelerator('cpu'), 'float32'),
        (precision.Accelerator('gpu', (8, 0)), 'mixed_bfloat16'),
        (precision.Accelerator('gpu', (9, 0)), 'mixed_bfloat16'),
        (precision.Accelerator('gpu', (7, 0)), 'mixed_float16'),
        (precision.Accelerator('gpu', (6, 1)), 'float32'),
        (precision.Accelerator('tpu'), 'mixed_bfloat16'),
])
def test_auto_precision_per_accelerator(accelerator, expected):
    assert precision.resolve_precision('auto', accelerator) == expected
    assert precision.resolve_precision('float32', accelerator) == 'float32'


def test_precision_and_jit_flags_validated():
    with pytest.raises(ValueError, match=r"--precision='fp16'.*auto, float32, mixed_float16, mixed_bfloat16"):
        precision.resolve_precision('fp16')
    with pytest.raises(ValueError, match=r"--jit_compile='yes'"):
        precision.resolve_jit_compile('yes')


def test_jit_compile_auto_only_on_accelerators():
    assert precision.resolve_jit_compile('auto', precision.Accelerator('gpu', (9, 0))) is True
    assert precision.resolve_jit_compile('auto', precision.Accelerator('tpu')) is True
    assert precision.resolve_jit_compile('auto', precision.Accelerator('cpu')) is False
    assert precision.resolve_jit_compile('true', precision.Accelerator('cpu')) is True
    assert precision.resolve_jit_compile('false', precision.Accelerator('gpu', (9, 0))) is False
    # This machine: whatever it has, auto agrees with the detected device.
    assert precision.resolve_jit_compile('auto') == (precision.detect_accelerator().kind != 'cpu')


# --- freezing ----------------------------------------------------------------------------------------------

def test_frozen_backbone_trains_only_the_head_and_keeps_bn_statistics():
    model = builder.build_model(ModelConfig('cifar_resnet9', 5, 16))
    builder.set_backbone_trainable(model, False)
    backbone = model.get_layer('backbone')
    assert backbone.trainable_weights == []
    before = [w.numpy().copy() for w in backbone.weights]  # includes BatchNorm moving statistics
    head_before = model.get_layer('predictions').kernel.numpy().copy()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss='sparse_categorical_crossentropy', run_eagerly=True)
    model.train_on_batch(_pixels(4, 16), np.array([0, 1, 2, 3]))
    for a, b in zip(before, backbone.weights):
        np.testing.assert_array_equal(a, b.numpy())
    assert not np.array_equal(head_before, model.get_layer('predictions').kernel.numpy())


def test_unfreezing_keeps_batchnorm_in_inference_mode():
    model = builder.build_model(ModelConfig('cifar_resnet9', 5, 16))
    builder.set_backbone_trainable(model, False)
    builder.set_backbone_trainable(model, True)
    backbone = model.get_layer('backbone')
    bns = [layer for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns and all(not bn.trainable for bn in bns)
    assert backbone.get_layer('stem_conv').trainable
    moving_mean = bns[0].moving_mean.numpy().copy()
    kernel = backbone.get_layer('stem_conv').kernel.numpy().copy()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss='sparse_categorical_crossentropy', run_eagerly=True)
    model.train_on_batch(_pixels(4, 16), np.array([0, 1, 2, 3]))
    np.testing.assert_array_equal(moving_mean, bns[0].moving_mean.numpy())
    assert not np.array_equal(kernel, backbone.get_layer('stem_conv').kernel.numpy())


def test_unfreezing_from_scratch_can_train_batchnorm_too():
    model = builder.build_model(ModelConfig('cifar_resnet9', 5, 16))
    builder.set_backbone_trainable(model, True, freeze_batchnorm=False)
    assert model.get_layer('backbone').get_layer('stem_bn').trainable
