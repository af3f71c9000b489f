"""XLA: every part of every policy compiles (TF jit_compile=True, jax.jit), alone and inside a Keras train step."""

import keras
from keras import ops
import numpy as np
import pytest

from fastclassify.pipelines import augment

pytestmark = pytest.mark.backends  # CI runs these under TensorFlow and JAX

# The combined policy holds every part that seed and flip_crop do not; compiling each part alone
# again would triple this file's time (RandAugment's unrolled layers take ~10 s to compile on CPU).
XLA_POLICIES = ['seed', 'flip_crop', 'rrc+randaugment+erasing+mixup+cutmix']


def _batch(cfg, batch=4):
    size = augment.cache_size_for(cfg)
    images = np.random.default_rng(0).integers(0, 256, size=(batch, size, size, 3)).astype(np.uint8)
    labels = np.eye(cfg.num_classes, dtype=np.float32)[np.arange(batch) % cfg.num_classes]
    return images, labels


def _xla(fn):
    """fn compiled whole by XLA on the current backend."""
    if keras.backend.backend() == 'jax':
        import jax  # pylint: disable=import-outside-toplevel
        return jax.jit(fn)
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    return tf.function(fn, jit_compile=True)


@pytest.mark.parametrize('policy', XLA_POLICIES)
def test_every_policy_compiles_with_xla_and_matches_eager(policy):
    cfg = augment.AugmentConfig(policy=policy, image_size=32, num_classes=5)
    images, labels = _batch(cfg)
    layer = augment.Augmenter(cfg)
    state = [ops.convert_to_numpy(v) for v in layer.non_trainable_variables]
    # stateless_call: the generator state goes in and comes out, as in a compiled train step.
    step = _xla(lambda variables, x, y: layer.stateless_call([], variables, x, y, training=True))
    (out, soft), new_state = step(state, images, labels)
    out, soft = ops.convert_to_numpy(out), ops.convert_to_numpy(soft)
    assert out.shape == (4, 32, 32, 3) and 0.0 <= out.min() and out.max() <= 255.0
    assert not np.array_equal(ops.convert_to_numpy(new_state[0]), state[0])  # one draw per call
    # The counter-based draws are the same compiled and eager, so the eager layer gives this batch too.
    eager_out, eager_soft = layer(images, labels, training=True)
    np.testing.assert_allclose(ops.convert_to_numpy(eager_out), out, atol=1e-2)
    np.testing.assert_allclose(ops.convert_to_numpy(eager_soft), soft, atol=1e-5)
    np.testing.assert_array_equal(ops.convert_to_numpy(layer.non_trainable_variables[0]),
                                  ops.convert_to_numpy(new_state[0]))


class TinyTrainModel(keras.Model):
    """The lead's pattern: augment inside `call(training=True)`, the mixed targets in `compute_loss`."""

    def __init__(self, cfg):
        super().__init__()
        self.augmenter = augment.Augmenter(cfg)
        self.net = keras.Sequential([keras.layers.Rescaling(1 / 255), keras.layers.GlobalAveragePooling2D(),
                                     keras.layers.Dense(cfg.num_classes),
                                     keras.layers.Activation('softmax', dtype='float32')])

    def call(self, inputs, training=False):
        images, targets = self.augmenter(inputs['images'], inputs['labels'], training=training)
        return {'probs': self.net(images, training=training), 'targets': targets}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        del x, y, sample_weight, training
        return ops.mean(keras.losses.categorical_crossentropy(y_pred['targets'], y_pred['probs']))


@pytest.mark.parametrize('precision', ['float32', 'mixed_bfloat16'])
def test_runs_inside_a_jit_compiled_keras_train_step(precision):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        cfg = augment.AugmentConfig(policy='flip_crop+mixup', image_size=16, num_classes=3, seed=2)
        size = augment.cache_size_for(cfg)
        images = np.random.default_rng(0).integers(0, 256, (8, size, size, 3)).astype(np.uint8)
        labels = np.eye(3, dtype=np.float32)[np.arange(8) % 3]
        model = TinyTrainModel(cfg)
        model.compile(optimizer='sgd', jit_compile=True)
        before = ops.convert_to_numpy(model.augmenter.seed_generator.state).copy()
        history = model.fit({'images': images, 'labels': labels}, batch_size=4, epochs=1, verbose=0)
        assert model.augmenter.compute_dtype == ('bfloat16' if precision == 'mixed_bfloat16' else 'float32')
        assert np.isfinite(history.history['loss']).all()
        after = ops.convert_to_numpy(model.augmenter.seed_generator.state)
        np.testing.assert_array_equal(after - before, [0, 2])  # one draw per train step
        assert model.predict({'images': images, 'labels': labels}, verbose=0)['probs'].shape == (8, 3)
    finally:
        keras.config.set_dtype_policy(previous)
