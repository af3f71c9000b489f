"""TensorFlow and JAX train the same: same initial weights, data and seed give the same loss curve.

Each backend runs in its own process (Keras fixes the backend at import); the TensorFlow run writes the
initial weights the JAX run loads, so only the backends differ.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE, CLASSES, BATCH, STEPS = 16, 4, 16, 6


def _curve(init_path: str) -> list[float]:
    """Trains a small conv net through the real Trainer for STEPS steps; returns the per-step losses."""
    import keras
    from fastclassify.pipelines import pipeline
    from fastclassify.pipelines.augment import Augmenter, AugmentConfig
    from fastclassify.pipelines.cache import host_cache_from_arrays
    from fastclassify.training.trainer import Trainer, training_stream

    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(8, 3, activation='relu')(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(CLASSES, activation='softmax', dtype='float32')(x)
    classifier = keras.Model(inputs, outputs)
    if os.path.exists(init_path):
        classifier.load_weights(init_path)
    else:
        classifier.save_weights(init_path)

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, SIZE, SIZE, 3), dtype=np.uint8)
    labels = rng.integers(0, CLASSES, (64,), dtype=np.int32)
    host = host_cache_from_arrays(images, labels)
    stream = pipeline.train_from_host_cache(host, BATCH, seed=5, deterministic=True)
    cfg = AugmentConfig(policy='flip_crop', image_size=SIZE, num_classes=CLASSES, seed=9)
    trainer = Trainer(classifier, Augmenter(cfg), CLASSES)
    trainer.build()
    trainer.compile(optimizer=keras.optimizers.SGD(0.05), loss=keras.losses.CategoricalCrossentropy(),
                    jit_compile=True)
    losses = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            losses.append(float(logs['loss']))

    trainer.fit(training_stream(stream), epochs=1, steps_per_epoch=STEPS, callbacks=[Record()], verbose=0)
    return losses


def _run(backend: str, init_path) -> list[float]:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL='3', PYTHONPATH=ROOT)
    result = subprocess.run([sys.executable, os.path.abspath(__file__), str(init_path)], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_tensorflow_and_jax_give_the_same_loss_curve(tmp_path):
    init = tmp_path / 'init.weights.h5'
    tf_curve = _run('tensorflow', init)
    jax_curve = _run('jax', init)
    assert len(tf_curve) == len(jax_curve) == STEPS
    np.testing.assert_allclose(jax_curve, tf_curve, rtol=2e-3)
    assert np.ptp(tf_curve) > 1e-3  # the weights moved: the curves are not trivially equal


if __name__ == '__main__':
    print(json.dumps(_curve(sys.argv[1])))
