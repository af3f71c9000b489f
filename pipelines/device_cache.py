"""The device cache: a whole cached training split resident on the accelerator, gathered by index."""

import keras
from keras import ops


class DeviceCache(keras.layers.Layer):
    """A whole cached training split resident on the accelerator; batches are gathered there by index.

    The pixels live in one non-trainable uint8 variable: Keras hands it to the compiled step as state
    (JAX: an argument, donated and aliased, never a baked-in constant; TensorFlow: a resource), and a
    distribution replicates it per device (tf.distribute mirrors it; JAX `DataParallel` lays it out
    replicated), so every replica gathers locally. It is never written into a checkpoint: saving and
    loading skip it (gigabytes that the next run rebuilds from the data anyway).

    Args:
      images: uint8 [N, S, S, 3] (NumPy or any tensor).
    """

    def __init__(self, images, **kwargs):
        super().__init__(**kwargs)
        self.pixels = self.add_weight(shape=tuple(images.shape), dtype='uint8', trainable=False,
                                      initializer=_constant(images), name='pixels')
        self.built = True

    @property
    def num_examples(self) -> int:
        return int(self.pixels.shape[0])

    def call(self, indices):
        # One gather per batch: a slice copy in device memory, no host-to-device transfer.
        return ops.take(self.pixels, ops.cast(indices, 'int32'), axis=0)

    def save_own_variables(self, store):
        del store  # derived data: never checkpointed

    def load_own_variables(self, store):
        del store


def _constant(value):
    def init(shape, dtype=None):
        del shape, dtype
        return value
    return init
