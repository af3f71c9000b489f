"""The compiled train step: device-cache gather -> on-device augmentation -> classifier -> loss."""

import keras
import tensorflow as tf


class Trainer(keras.Model):
    """Wraps a classifier so augmentation runs inside the compiled (XLA-able) train step.

    The classifier stays a plain functional model (what gets exported); this wrapper owns the parts
    that exist only while training: the augmenter (with its seeded RNG state, checkpointed) and the
    optional device-resident dataset that batches are gathered from by index.

    Args:
      classifier: functional model, pixels 0..255 in, float32 probabilities out.
      augmenter: a layer called as `augmenter(images, one_hot, training=...)`; it also does the
        deterministic eval transform (e.g. center crop) when `training=False`.
      num_classes: width of the one-hot labels.
      device_cache: optional object whose `gather(indices)` returns `(images, labels)` already on
        the accelerator; training batches are then index batches. Kept out of Keras tracking so the
        cached dataset is never written into checkpoints.
    """

    def __init__(self, classifier, augmenter, num_classes, device_cache=None, **kwargs):
        super().__init__(**kwargs)
        self.classifier = classifier
        self.augmenter = augmenter
        self.num_classes = num_classes
        object.__setattr__(self, '_device_cache', device_cache)

    def build(self, input_shape=None):
        # The classifier is built when constructed and the augmenter owns no shape-dependent weights.
        if not self.augmenter.built:
            self.augmenter.build(None)
        self.built = True

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras' version takes a batch off the iterator (it is lost) and MEAN-reduces it across
        # workers, which fails for uint8 images; the build below needs only fixed shapes.
        del iterator, data_batch
        with self.distribute_strategy.scope():
            self._symbolic_build()

    def _symbolic_build(self, iterator=None, data_batch=None):
        # Keras builds loss and metrics from a raw batch (int labels, or indices for the device
        # cache); the step only sees (images, one-hot) after the gather and the augmenter.
        size = self.classifier.input_shape[1]
        del iterator, data_batch
        super()._symbolic_build(data_batch=(tf.zeros([1, size, size, 3], tf.uint8),
                                            tf.zeros([1, self.num_classes], tf.float32)))

    def call(self, images, training=False):
        return self.classifier(images, training=training)

    def _one_hot(self, labels):
        return tf.one_hot(tf.cast(labels, tf.int32), self.num_classes, dtype=tf.float32)

    def train_step(self, data):
        inputs, labels = data
        if self._device_cache is not None:
            # Index batches in, pixels gathered where they live: no host-to-device copy per step.
            inputs, labels = self._device_cache.gather(inputs)
        images, targets = self.augmenter(inputs, self._one_hot(labels), training=True)
        return self._cross_worker_logs(super().train_step((images, targets)))

    def test_step(self, data):
        images, labels = data
        images, targets = self.augmenter(images, self._one_hot(labels), training=False)
        return self._cross_worker_logs(super().test_step((images, targets)))

    def _cross_worker_logs(self, logs):
        # Keras MEAN-reduces logs across workers along axis 0, which fails on scalars
        # (tensorflow/tensorflow#72388); shape [1] reduces to the scalar Keras expects.
        if isinstance(self.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return {k: tf.reshape(v, [1]) for k, v in logs.items()}
        return logs

    def predict_step(self, data):
        images = data[0] if isinstance(data, (tuple, list)) else data
        images, _ = self.augmenter(images, tf.zeros([tf.shape(images)[0], self.num_classes]),
                                   training=False)
        return self(images, training=False)
