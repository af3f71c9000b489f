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
        placed = _replicated_on_jax_devices(images)
        if placed is not None:
            self.pixels = keras.Variable(placed, dtype='uint8', trainable=False, name='pixels')
        else:
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


def _replicated_on_jax_devices(images):
    """Under JAX `DataParallel`: the pixels copied to each of this process's devices as one replicated
    array, which Keras then takes as the variable's value as it is; else None (Keras places them).

    Keras' own placement of a host array does worse here: `jax.device_put` onto devices of several
    processes first all-gathers the whole array to check it is the same everywhere (the cache's bytes
    through the network, once per process), and a value of 250 MB or more is made by a compiled
    initializer that holds it as a constant. With `--process_cache=share` each process's copy holds its
    own share (`pipelines/pipeline.py`, `_device_share`): only the row-local gathers ever read it.
    """
    if keras.backend.backend() != 'jax':
        return None
    distribution = keras.distribution.distribution()
    if not isinstance(distribution, keras.distribution.DataParallel):
        return None
    import jax  # pylint: disable=import-outside-toplevel
    import numpy as np  # pylint: disable=import-outside-toplevel
    from jax.sharding import NamedSharding, PartitionSpec  # pylint: disable=import-outside-toplevel
    images = np.asarray(images)
    everywhere = NamedSharding(distribution.device_mesh.backend_mesh, PartitionSpec())
    devices = list(everywhere.addressable_devices_indices_map(images.shape))
    return jax.make_array_from_single_device_arrays(images.shape, everywhere,
                                                    [jax.device_put(images, d) for d in devices])


def _constant(value):
    def init(shape, dtype=None):
        del shape, dtype
        return value
    return init
