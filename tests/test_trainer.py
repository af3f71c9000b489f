"""The Trainer on the Keras backend in use: device-cache gather, eval view, targets, saved state."""

import h5py
import keras
import numpy as np
import pytest

from fastclassify.pipelines.augment import Augmenter, AugmentConfig
from fastclassify.pipelines.device_cache import DeviceCache
from fastclassify.training.trainer import Trainer

pytestmark = pytest.mark.backends

SIZE, CLASSES = 8, 5


def _classifier():
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.5)(x)
    outputs = keras.layers.Dense(CLASSES, activation='softmax', dtype='float32')(x)
    return keras.Model(inputs, outputs)


def _data(n=12):
    rng = np.random.default_rng(0)
    return (rng.integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8),
            rng.integers(0, CLASSES, (n,), dtype=np.int32))


def _trainer(policy='none', device_cache=None):
    keras.utils.set_random_seed(1)
    cfg = AugmentConfig(policy=policy, image_size=SIZE, num_classes=CLASSES, seed=4)
    trainer = Trainer(_classifier(), Augmenter(cfg), CLASSES, device_cache=device_cache)
    trainer.build()
    trainer.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.CategoricalCrossentropy(),
                    metrics=[keras.metrics.CategoricalAccuracy(name='accuracy')])
    return trainer


def test_index_batches_are_gathered_from_the_device_cache():
    images, labels = _data()
    trainer = _trainer(device_cache=images)
    indices = np.array([7, 2, 9], np.int32)
    probabilities, targets = trainer((indices, labels[indices]), training=True)
    # The 'none' policy leaves pixels alone, so the gathered batch must score like the host batch.
    expected = trainer.classifier(images[indices], training=False)
    np.testing.assert_allclose(np.asarray(trainer((indices, labels[indices]), training=False)[0]),
                               np.asarray(expected), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(targets), np.eye(CLASSES)[labels[indices]])
    assert np.asarray(probabilities).shape == (3, CLASSES)


def test_mixing_targets_reach_the_loss():
    images, labels = _data()
    trainer = _trainer(policy='mixup')
    _, targets = trainer((images, labels), training=True)
    targets = np.asarray(targets)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-5)
    assert np.any((targets > 0) & (targets < 1))  # soft labels, not the one-hot ones
    loss = trainer.compute_loss(y=labels, y_pred=trainer((images, labels), training=True))
    assert np.isfinite(float(loss))


def test_fit_trains_and_evaluation_scores_plain_pixels():
    images, labels = _data(32)
    trainer = _trainer(policy='flip_crop', device_cache=images)
    indices = np.arange(32, dtype=np.int32).reshape(4, 8)
    x = (indices.reshape(-1), labels[indices.reshape(-1)])
    history = trainer.fit(x, labels[indices.reshape(-1)], batch_size=8, epochs=2, verbose=0, shuffle=False)
    assert int(np.asarray(trainer.optimizer.iterations)) == 8
    assert np.all(np.isfinite(history.history['loss']))
    loss, accuracy = trainer.evaluate(images, labels, batch_size=8, verbose=0)
    assert np.isfinite(loss) and 0.0 <= accuracy <= 1.0
    assert trainer.predict(images[:3], verbose=0).shape == (3, CLASSES)


def test_the_device_cache_is_never_saved_but_seed_states_are(tmp_path):
    images, labels = _data()
    trainer = _trainer(policy='flip_crop', device_cache=images)
    trainer((np.arange(4, dtype=np.int32), labels[:4]), training=True)  # advances the augmenter's RNG
    path = str(tmp_path / 'w.weights.h5')
    trainer.save_weights(path)
    with h5py.File(path) as f:
        names = []
        f.visit(names.append)
        sizes = [f[n].size for n in names if isinstance(f[n], h5py.Dataset)]
    assert not [n for n in names if n.startswith('device_cache/vars/')]
    assert max(sizes) < images.size  # no dataset-sized array in the file

    states = [v for v in trainer.non_trainable_variables if v.name == 'seed_generator_state']
    assert len(states) == 2  # the augmenter's and the dropout layer's
    saved = [np.asarray(v.value).copy() for v in states]
    trainer((np.arange(4, dtype=np.int32), labels[:4]), training=True)
    assert any(np.any(np.asarray(v.value) != s) for v, s in zip(states, saved))
    trainer.load_weights(path)
    for v, s in zip(states, saved):
        np.testing.assert_array_equal(np.asarray(v.value), s)


def test_device_cache_layer_gathers_rows():
    images, _ = _data()
    cache = DeviceCache(images)
    assert cache.num_examples == 12
    np.testing.assert_array_equal(np.asarray(cache(np.array([3, 0], np.int32))), images[[3, 0]])
