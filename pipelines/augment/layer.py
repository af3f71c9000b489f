"""`Augmenter`: the Keras layer the compiled train step calls on each batch, seeded and checkpointed."""

import keras
from keras import ops

from fastclassify.pipelines.augment import policies
from fastclassify.pipelines.augment.config import AugmentConfig


class Augmenter(keras.layers.Layer):
    """Augments (images, one-hot labels) on the device, a whole batch at a time.

    Randomness comes from a `keras.random.SeedGenerator` the layer owns: one seed draw per call, so
    the state is a tracked variable (saved with checkpoints, advanced inside XLA) and two layers built
    with the same `cfg.seed` produce the same batches.

    Args:
        cfg: the policy and its parameters.
        **kwargs: passed to `keras.layers.Layer` (e.g. `dtype` for a mixed-precision policy).
    """

    def __init__(self, cfg: AugmentConfig, **kwargs):
        super().__init__(**kwargs)
        self.cfg = cfg
        self.seed_generator = keras.random.SeedGenerator(cfg.seed, name='augment_seed')
        # Labels must stay float32 (Keras would cast every float argument to the compute dtype), and
        # uint8 images are cast by the policy itself, after the gathers that read them.
        self._convert_input_args = False
        # NumPy batches (tests, notebooks) are accepted as well as tensors.
        self._allow_non_tensor_positional_args = True
        # Its only state, the generator, exists already: built, so `stateless_call` works before a call.
        self.built = True

    def call(self, images, labels, training=False):
        """Returns augmented (images in the compute dtype, float32 labels); see `augment_batch`."""
        if not training:
            return policies.augment_batch(images, labels, (0, 0), self.cfg, training=False,
                                          dtype=self.compute_dtype)
        seed = ops.cast(self.seed_generator.next(), 'int32')
        if keras.backend.backend() == 'tensorflow':
            seed = seed + _tf_replica_offset()
        return policies.augment_batch(images, labels, seed, self.cfg, training=True, dtype=self.compute_dtype)

    def compute_output_spec(self, images, labels, training=False):
        size = self.cfg.image_size
        return (keras.KerasTensor((images.shape[0], size, size, images.shape[-1]), dtype=self.compute_dtype),
                keras.KerasTensor(labels.shape, dtype='float32'))

    def get_config(self):
        config = super().get_config()
        config.update({'cfg': dict(vars(self.cfg))})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        cfg = AugmentConfig(**config.pop('cfg'))
        return cls(cfg, **config)


def _tf_replica_offset():
    """[2] int32 added to the seed on replica r of a multi-replica tf.distribute strategy: (r, 0).

    Replicas share the generator; without this they would draw the same boxes, angles and mixing
    weights for their different shards. The generator only advances the second word. JAX's
    DataParallel runs one program over the whole global batch, so it needs no offset.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    replica = tf.distribute.get_replica_context()
    if replica is None or replica.num_replicas_in_sync == 1:
        return tf.zeros([2], tf.int32)
    return tf.stack([tf.cast(replica.replica_id_in_sync_group, tf.int32), tf.constant(0, tf.int32)])
