"""Input side: TFDS sources, cached tf.data pipelines, on-device augmentation, benchmarks."""
