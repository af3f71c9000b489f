"""Augmentation throughput: each policy on the device (compiled, whole batch) versus host-side alternatives.

`[KERAS_BACKEND=jax] python -m benchmarks.augment --augment=seed,flip_crop [--json=PATH]` prints the
backend and images/s per row; rows use the pipeline benchmark's schema {name, images_per_sec, images,
seconds}, warm-up excluded (--json adds each row's backend). The host tf.data and KerasCV / Keras-core
rows run on the TensorFlow backend only: under JAX, Keras ops are JAX arrays, which tf.data cannot map.
"""

import json
import logging
from typing import Callable

from absl import app
from absl import flags
import keras
import numpy as np
import PIL.Image
import tensorflow as tf

from benchmarks import hardware
from benchmarks.timing import time_batches, time_calls
from fastclassify.pipelines import augment

NUM_CLASSES = 1000


def _uint8_batch(batch_size: int, size: int, seed: int) -> np.ndarray:
    # Smooth random images rather than white noise, so interpolation and histograms see photo-like data.
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(batch_size, 8, 8, 3)).astype(np.uint8)
    smooth = np.stack([np.asarray(PIL.Image.fromarray(c).resize((size, size), PIL.Image.BILINEAR), np.float32)
                       for c in coarse])
    return np.clip(smooth + rng.normal(0, 8, smooth.shape), 0, 255).astype(np.uint8)


def _tensorflow_backend() -> bool:
    return keras.backend.backend() == 'tensorflow'


def _compiled_augmenter(cfg: augment.AugmentConfig) -> Callable:
    """(images, labels) -> (images, labels) through an `Augmenter` in one XLA computation per call.

    As in the train step: TensorFlow runs the layer in a jit_compile=True tf.function (the generator
    state is a variable); JAX jits its `stateless_call` and carries the state from call to call.
    The whole batch is returned: a reduced output would let XLA compute only the pixels it needs.
    """
    augmenter = augment.Augmenter(cfg)
    if _tensorflow_backend():
        return tf.function(lambda x, y: augmenter(x, y, training=True), jit_compile=True)
    import jax  # pylint: disable=import-outside-toplevel
    step = jax.jit(lambda variables, x, y: augmenter.stateless_call([], variables, x, y, training=True))
    state = [v.value for v in augmenter.non_trainable_variables]

    def call(x, y):
        nonlocal state
        outputs, state = step(state, x, y)
        return outputs

    return call


def _device_row(cfg: augment.AugmentConfig, images, labels, num_batches: int) -> dict:
    step = _compiled_augmenter(cfg)
    return time_calls(lambda: step(images, labels), num_batches=num_batches, batch_size=images.shape[0],
                      name=f'augment_{cfg.policy}_device')


def _host_row(cfg: augment.AugmentConfig, images: np.ndarray, labels: np.ndarray, num_batches: int) -> dict:
    """The same policy function in a tf.data map on the host CPU (what the pipeline would do without us)."""
    with tf.device('/CPU:0'):
        batches = tf.data.Dataset.from_tensors((images, labels)).repeat(num_batches + 1)
        seeds = tf.data.Dataset.random(seed=cfg.seed).batch(2)
        dataset = tf.data.Dataset.zip(batches, seeds).map(
                lambda xy, s: augment.augment_batch(xy[0], xy[1], tf.cast(s, tf.int32), cfg, training=True),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=False).prefetch(2)
        return time_batches(dataset, name=f'augment_{cfg.policy}_host', min_images=num_batches * images.shape[0])


def _keras_cv_seed_row(images: tf.Tensor, num_batches: int, seed: int) -> dict:
    """The seed policy as three separate KerasCV layers (three warps), on the device, no XLA.

    ImageProjectiveTransformV3, which KerasCV's rotation and translation use, has no XLA kernel.
    """
    import keras_cv  # pylint: disable=import-outside-toplevel
    layers = [
            keras_cv.layers.RandomRotation(30 / 360, fill_mode='nearest', seed=seed),
            keras_cv.layers.RandomTranslation(0.2, 0.2, fill_mode='nearest', seed=seed),
            keras_cv.layers.RandomFlip('horizontal', seed=seed),
    ]

    @tf.function
    def step(x):
        x = tf.cast(x, tf.float32)
        for layer in layers:
            x = layer(x, training=True)
        return x

    return time_calls(lambda: step(images), num_batches=num_batches, batch_size=images.shape[0],
                      name='augment_seed_keras_cv_layers')


def _image_data_generator_row(images: np.ndarray, num_batches: int, seed: int) -> dict | None:
    """The seed report's ImageDataGenerator(rotation 30, shifts 0.2, flip), one image at a time in NumPy.

    Returns None when SciPy (which ImageDataGenerator's warps need) is not installed.
    """
    try:
        import scipy.ndimage  # pylint: disable=import-outside-toplevel,unused-import
    except ImportError:
        logging.warning('augment_seed_imagedatagenerator skipped: ImageDataGenerator needs scipy.')
        return None
    # Keras 3 keeps the class only under its legacy package; it is the same code the seed ran.
    from keras.src.legacy.preprocessing import image as legacy_image  # pylint: disable=import-outside-toplevel
    generator = legacy_image.ImageDataGenerator(rotation_range=30, width_shift_range=0.2,
                                                height_shift_range=0.2, horizontal_flip=True)
    flow = generator.flow(images.astype(np.float32), batch_size=images.shape[0], shuffle=False, seed=seed)
    return time_batches(flow, name='augment_seed_imagedatagenerator', min_images=num_batches * images.shape[0])


def run_augment_benchmark(policies: list[str], *, image_size: int = 224, batch_size: int = 64,
                          num_batches: int = 10, seed: int = 0) -> list[dict]:
    """Measures images/s of each policy on the current device and on the host, plus the seed baselines.

    Args:
        policies: `--augment` values, each a '+'-joined policy (e.g. 'randaugment+mixup').
        image_size: output side in pixels; inputs are cached-size uint8 squares for each policy.
        batch_size: images per batch.
        num_batches: timed batches per row (the host-side baselines run at most 3: they are slow).
        seed: the augmentation seed.

    Returns:
        Rows {name, images_per_sec, images, seconds}: `augment_<policy>_device` and (TensorFlow backend)
        `augment_<policy>_host` per policy, and for 'seed' also (TensorFlow backend)
        `augment_seed_keras_cv_layers` and `augment_seed_imagedatagenerator`.
    """
    rows = []
    labels = np.eye(NUM_CLASSES, dtype=np.float32)[np.arange(batch_size) % NUM_CLASSES]
    for policy in policies:
        cfg = augment.AugmentConfig(policy=policy, image_size=image_size, num_classes=NUM_CLASSES, seed=seed)
        host_images = _uint8_batch(batch_size, augment.cache_size_for(cfg), seed)
        device_images = keras.ops.convert_to_tensor(host_images)
        device_labels = keras.ops.convert_to_tensor(labels)
        rows.append(_device_row(cfg, device_images, device_labels, num_batches))
        if _tensorflow_backend():
            rows.append(_host_row(cfg, host_images, labels, min(num_batches, 3)))
        if policy == 'seed':
            if _tensorflow_backend():
                rows.append(_keras_cv_seed_row(device_images, num_batches, seed))
            generator_row = _image_data_generator_row(host_images, min(num_batches, 3), seed)
            if generator_row is not None:
                rows.append(generator_row)
    return rows


def _library_layers(part: str, image_size: int, seed: int) -> dict[str, Callable]:
    """KerasCV and Keras-core versions of one policy part, as functions (images, labels) -> images."""
    import keras  # pylint: disable=import-outside-toplevel
    import keras_cv  # pylint: disable=import-outside-toplevel

    def chain(*layers):
        def apply(x, y):
            del y
            for layer in layers:
                x = layer(x, training=True)
            return x
        return apply

    def mixing(layer):
        return lambda x, y: layer({'images': x, 'labels': y}, training=True)['images']

    def keras_mixing(layer):
        return lambda x, y: layer({'images': x, 'labels': y}, training=True)['images']

    return {
            'seed': {
                    'keras_cv': chain(keras_cv.layers.RandomRotation(30 / 360, fill_mode='nearest', seed=seed),
                                      keras_cv.layers.RandomTranslation(0.2, 0.2, fill_mode='nearest', seed=seed),
                                      keras_cv.layers.RandomFlip('horizontal', seed=seed)),
                    'keras': chain(keras.layers.RandomRotation(30 / 360, fill_mode='nearest', seed=seed),
                                   keras.layers.RandomTranslation(0.2, 0.2, fill_mode='nearest', seed=seed),
                                   keras.layers.RandomFlip('horizontal', seed=seed)),
            },
            'flip_crop': {
                    'keras_cv': chain(keras.layers.ZeroPadding2D(4),
                                      keras_cv.layers.RandomCrop(image_size, image_size, seed=seed),
                                      keras_cv.layers.RandomFlip('horizontal', seed=seed)),
                    'keras': chain(keras.layers.ZeroPadding2D(4), keras.layers.RandomCrop(image_size, image_size, seed=seed),
                                   keras.layers.RandomFlip('horizontal', seed=seed)),
            },
            'rrc': {
                    'keras_cv': chain(keras_cv.layers.RandomCropAndResize(
                            (image_size, image_size), crop_area_factor=(0.08, 1.0),
                            aspect_ratio_factor=(3 / 4, 4 / 3), seed=seed),
                                      keras_cv.layers.RandomFlip('horizontal', seed=seed)),
            },
            'randaugment': {
                    'keras_cv': chain(keras_cv.layers.RandAugment((0, 255), augmentations_per_image=2, magnitude=0.9,
                                                                  seed=seed)),
                    'keras': chain(keras.layers.RandAugment((0, 255), num_ops=2, factor=0.9, seed=seed)),
            },
            'mixup': {
                    'keras_cv': mixing(keras_cv.layers.MixUp(alpha=0.2, seed=seed)),
                    'keras': keras_mixing(keras.layers.MixUp(alpha=0.2, seed=seed)),
            },
            'cutmix': {
                    'keras_cv': mixing(keras_cv.layers.CutMix(alpha=1.0, seed=seed)),
                    'keras': keras_mixing(keras.layers.CutMix(factor=1.0, seed=seed)),
            },
            'erasing': {
                    'keras': chain(keras.layers.RandomErasing(factor=1.0, value_range=(0, 255), seed=seed)),
            },
    }.get(part, {})


def run_library_comparison(parts: list[str], *, image_size: int = 224, batch_size: int = 64,
                           num_batches: int = 5, seed: int = 0) -> list[dict]:
    """Measures the KerasCV and Keras-core layers for each single-part policy, to choose per layer.

    Rows `augment_<part>_keras_cv` and `augment_<part>_keras` (where the library has the op), run on
    the current device inside a tf.function, with or without XLA, whichever is faster (row key 'xla').
    TensorFlow backend only (KerasCV's layers are TensorFlow code); on JAX, no rows.

    Args:
        parts: single policy names, e.g. ['seed', 'randaugment'].
        image_size: output side in pixels.
        batch_size: images per batch.
        num_batches: timed batches per row.
        seed: layer seed.

    Returns:
        Rows {name, images_per_sec, images, seconds, xla}.
    """
    rows = []
    if not _tensorflow_backend():
        logging.warning('KerasCV / Keras-core comparison skipped: it runs on the TensorFlow backend only.')
        return rows
    labels = tf.one_hot(np.arange(batch_size) % NUM_CLASSES, NUM_CLASSES)
    for part in parts:
        cfg = augment.AugmentConfig(policy=part, image_size=image_size, num_classes=NUM_CLASSES, seed=seed)
        images = tf.cast(tf.constant(_uint8_batch(batch_size, augment.cache_size_for(cfg), seed)), tf.float32)
        for library, apply in _library_layers(part, image_size, seed).items():
            # Keep the faster of XLA and plain graph mode: some layers compile but recompile per call.
            row = None
            for jit in (True, False):
                step = tf.function(apply, jit_compile=jit)
                try:
                    candidate = time_calls(lambda: step(images, labels), num_batches=num_batches,
                                           batch_size=batch_size, name=f'augment_{part}_{library}')
                except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError, ValueError, TypeError) as e:
                    logging.info('%s %s with jit_compile=%s failed: %s', part, library, jit, str(e)[:200])
                    continue
                candidate['xla'] = jit
                if row is None or candidate['images_per_sec'] > row['images_per_sec']:
                    row = candidate
            if row is not None:
                rows.append(row)
    return rows


def main(argv, flag_values: flags.FlagValues | None = None):
    """Runs the benchmark from flags (defined by `define_flags`), prints rows, writes --json."""
    del argv
    flag_values = flags.FLAGS if flag_values is None else flag_values
    policies = [p for p in flag_values.augment.split(',') if p]
    rows = run_augment_benchmark(policies, image_size=flag_values.image_size,
                                 batch_size=flag_values.batch_size, num_batches=flag_values.num_batches,
                                 seed=flag_values.seed)
    if flag_values.compare_libraries:
        parts = sorted({part for policy in policies for part in augment.AugmentConfig(policy=policy).parts})
        rows += run_library_comparison(parts, image_size=flag_values.image_size,
                                       batch_size=flag_values.batch_size, num_batches=flag_values.num_batches,
                                       seed=flag_values.seed)
    backend = keras.backend.backend()
    print(f'backend: {backend}; device: {hardware.summary()}')
    for row in rows:
        xla = '' if 'xla' not in row else (' (XLA)' if row['xla'] else ' (no XLA)')
        print(f"{row['name']:<45} {row['images_per_sec']:>12,.0f} images/s "
              f"({row['images']} images in {row['seconds']:.2f} s){xla}")
    if flag_values.json:
        with open(flag_values.json, 'w') as f:
            json.dump([dict(row, backend=backend) for row in rows], f, indent=2)


def define_flags(flag_values: flags.FlagValues | None = None):
    """Defines this CLI's flags (only when run as a program, never on import)."""
    flag_values = flags.FLAGS if flag_values is None else flag_values
    flags.DEFINE_string('augment', 'seed', "Comma-separated policies, each '+'-joined, e.g. seed,randaugment+mixup.",
                        flag_values=flag_values)
    flags.DEFINE_string('json', None, 'Write the rows as JSON to this path.', flag_values=flag_values)
    flags.DEFINE_integer('image_size', 224, 'Output side in pixels.', flag_values=flag_values)
    flags.DEFINE_integer('batch_size', 64, 'Images per batch.', flag_values=flag_values)
    flags.DEFINE_integer('num_batches', 10, 'Timed batches per device row.', flag_values=flag_values)
    flags.DEFINE_integer('seed', 0, 'Augmentation seed.', flag_values=flag_values)
    flags.DEFINE_bool('compare_libraries', False, 'Also time the KerasCV and Keras-core layers per policy part.',
                      flag_values=flag_values)


if __name__ == '__main__':
    define_flags()
    app.run(main)
