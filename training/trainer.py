"""The model that trains: device-cache gather -> on-device augmentation -> classifier, on any Keras backend.

Everything here runs inside Keras' own compiled train step (TensorFlow or JAX) through public hooks:
`call` gathers and augments, `compute_loss` / `compute_metrics` read the mixed targets that `call`
returns next to the probabilities. No per-backend `train_step`.
"""

import keras
from keras import ops

from fastclassify.pipelines.device_cache import DeviceCache


def _multi_worker_tf(model) -> bool:
    if keras.backend.backend() != 'tensorflow':
        return False
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    return isinstance(model.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy)


class Trainer(keras.Model):
    """Wraps a classifier so the training-only parts run inside the compiled step.

    Training batches arrive as `x = (pixels or indices, labels), y = labels` (see `training_stream`);
    `call(x, training=True)` gathers the pixels from the device cache when given indices, augments
    pixels and one-hot labels together (mixup/cutmix mix both), and returns `(probabilities, targets)`;
    `compute_loss` and `compute_metrics` score the probabilities against those targets. Evaluation and
    prediction batches are plain pixels: `call` then applies the deterministic eval view and returns
    probabilities, scored against one-hot labels. The classifier stays a plain functional model (what
    gets exported).

    Args:
      classifier: functional model, pixels 0..255 in, float32 probabilities out.
      augmenter: a layer called as `augmenter(images, one_hot, training=...)`.
      num_classes: width of the one-hot labels.
      device_cache: optional `DeviceCache` (or uint8 array to make one); training batches are then
        index batches.
    """

    def __init__(self, classifier, augmenter, num_classes, device_cache=None, **kwargs):
        super().__init__(**kwargs)
        self.classifier = classifier
        self.augmenter = augmenter
        self.num_classes = num_classes
        if device_cache is not None and not isinstance(device_cache, DeviceCache):
            device_cache = DeviceCache(device_cache, name='device_cache')
        self.device_cache = device_cache

    def build(self, input_shape=None):
        # The classifier is built when constructed and the augmenter owns no shape-dependent weights.
        if not self.augmenter.built:
            self.augmenter.build(None)
        self.built = True

    def call(self, inputs, training=False):
        if isinstance(inputs, (tuple, list)):
            pixels, labels = inputs
            if self.device_cache is not None and len(pixels.shape) == 1:
                pixels = self.device_cache(pixels)
            images, targets = self.augmenter(pixels, self._one_hot(labels), training=training)
            return self.classifier(images, training=training), targets
        images, _ = self.augmenter(inputs, ops.zeros((ops.shape(inputs)[0], self.num_classes)),
                                   training=False)
        return self.classifier(images, training=training)

    def _one_hot(self, labels):
        return ops.one_hot(ops.cast(labels, 'int32'), self.num_classes, dtype='float32')

    def _scored(self, y, y_pred):
        if isinstance(y_pred, (tuple, list)):
            return y_pred  # (probabilities, augmented targets) from a training batch
        return y_pred, self._one_hot(y)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        probabilities, targets = self._scored(y, y_pred)
        return super().compute_loss(x=x, y=targets, y_pred=probabilities,
                                    sample_weight=sample_weight, training=training)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        probabilities, targets = self._scored(y, y_pred)
        logs = super().compute_metrics(x, targets, probabilities, sample_weight)
        if _multi_worker_tf(self):
            # Keras MEAN-reduces logs across workers along axis 0, which fails on scalars
            # (tensorflow/tensorflow#72388); shape [1] reduces to the scalar Keras expects.
            logs = {k: ops.reshape(v, (1,)) for k, v in logs.items()}
        return logs

    def _seed_states(self):
        # Every `keras.random.SeedGenerator` of the model (the augmenter's, dropout's) keeps its
        # state in a variable of this name; Keras' weight files leave them out.
        return [v for v in self.non_trainable_variables if v.name == 'seed_generator_state']

    def save_own_variables(self, store):
        # Saved with the weights so a resumed run draws the same augmentations and dropout masks
        # as an uninterrupted one (bit-identical weights after a kill). The Trainer owns no other
        # variables: its layers save their own.
        for i, state in enumerate(self._seed_states()):
            store[f'seed_state_{i}'] = ops.convert_to_numpy(state.value)

    def load_own_variables(self, store):
        for i, state in enumerate(self._seed_states()):
            if f'seed_state_{i}' in store:
                state.assign(store[f'seed_state_{i}'])

    def compile(self, *args, **kwargs):
        super().compile(*args, **kwargs)
        self.build_compiled_state()

    def build_compiled_state(self) -> None:
        """Builds the optimizer, loss and metric state on a dummy batch, then resets the metrics.

        Keras would otherwise build them lazily from the first batch of `fit`, which on the JAX
        backend (and TensorFlow under a strategy) takes that batch off the stream: the run would
        then train on a stream shifted by one batch per `fit` call, and resume would not be exact.
        Called by `compile`.
        """
        probabilities = ops.full((1, self.num_classes), 1.0 / self.num_classes)
        targets = self._one_hot(ops.zeros((1,), 'int32'))
        self.compute_loss(y=targets, y_pred=(probabilities, targets))
        self.compute_metrics(None, targets, (probabilities, targets))
        self.reset_metrics()
        if self.optimizer is not None and not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # The one private hook left, TensorFlow backend under a tf.distribute strategy only: Keras'
        # version takes a batch off the iterator (shifting the stream, so a resumed run would not see
        # the batches an uninterrupted one sees) and MEAN-reduces it across replicas, which fails for
        # uint8 images. `build_compiled_state` builds what it would build, from a dummy batch.
        del iterator, data_batch
        with self.distribute_strategy.scope():
            self.build_compiled_state()


def training_stream(dataset):
    """Maps a stream of `(pixels or indices, labels)` batches to the Trainer's training format."""
    return dataset.map(lambda inputs, labels: ((inputs, labels), labels))
