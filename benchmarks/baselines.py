"""What users feed models with today, timed on our data: for the side-by-side benchmark."""

import os
import time

import numpy as np
import tensorflow as tf

from benchmarks.timing import row
from fastclassify.pipelines import decode

# ImageDataGenerator settings of the seed report's Caltech-256 run.
SEED_POLICY = {'rotation_range': 30, 'width_shift_range': 0.2, 'height_shift_range': 0.2, 'horizontal_flip': True}


def write_image_folder(blobs: list[bytes], labels: np.ndarray, root: str) -> str:
    """Writes encoded records as `root/<label>/<i>.jpg|png` (the layout `*_from_directory` reads).

    The bytes are written unchanged, so the baselines decode exactly the files our pipeline decodes.
    """
    for i, (blob, label) in enumerate(zip(blobs, labels)):
        ext = 'jpg' if blob[:2] == b'\xff\xd8' else 'png'
        folder = os.path.join(root, f'{int(label):03d}')
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f'{i:06d}.{ext}'), 'wb') as f:
            f.write(blob)
    return root


def naive_tf_data(blobs: list[bytes], labels: np.ndarray, image_size: int, batch_size: int) -> tf.data.Dataset:
    """The tutorial chain: map(decode + resize), batch. No cache, and no parallelism at all.

    tf.data would parallelise the map on its own (`map_parallelization`); it is switched off so this row is
    also the one-thread decode + resize rate the first-epoch target is measured against.
    """
    decoder = decode.make_decoder(image_size)
    records = tf.data.Dataset.from_tensor_slices({'image': blobs, 'label': labels})
    options = tf.data.Options()
    options.experimental_optimization.map_parallelization = False
    options.autotune.enabled = False
    return records.map(decoder).batch(batch_size).with_options(options)


def image_dataset_from_directory(root: str, image_size: int, batch_size: int) -> tf.data.Dataset:
    """Keras' directory loader as a user calls it (shuffle on, no augmentation, no cache)."""
    import keras  # pylint: disable=import-outside-toplevel  # only this baseline needs Keras
    return keras.utils.image_dataset_from_directory(root, image_size=(image_size, image_size),
                                                    batch_size=batch_size, shuffle=True, seed=0, verbose=False)


def imagedatagenerator_seed_policy(root: str, image_size: int, batch_size: int):
    """The seed report's feeder: legacy `ImageDataGenerator` with its augmentation, `flow_from_directory`.

    Raises:
        ImportError: naming SciPy, which Keras' affine transforms need and which is not installed.
    """
    try:
        import scipy.ndimage  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    except ImportError as e:
        raise ImportError('the ImageDataGenerator baseline needs SciPy (pip install scipy)') from e
    # Keras 3 no longer exports it publicly; it lives on in the legacy package.
    from keras.src.legacy.preprocessing.image import ImageDataGenerator  # pylint: disable=import-outside-toplevel
    generator = ImageDataGenerator(**SEED_POLICY)
    return generator.flow_from_directory(root, target_size=(image_size, image_size), batch_size=batch_size,
                                         class_mode='sparse', shuffle=True, seed=0)


def memory_bandwidth_limit(images: np.ndarray, batch_size: int, *, min_seconds: float, seed: int = 0) -> dict:
    """The ceiling: one thread gathering random batches of cached uint8 images into a reused buffer.

    No framework at all: NumPy `take` into preallocated memory, i.e. what copying the bytes costs.
    """
    rng = np.random.default_rng(seed)
    out = np.empty((batch_size,) + images.shape[1:], images.dtype)
    n = images.shape[0]
    for _ in range(3):  # warm-up: touch the pages and the buffer
        np.take(images, rng.integers(0, n, batch_size), axis=0, out=out)
    count, start = 0, time.perf_counter()
    while True:
        perm = rng.permutation(n)
        for s in range(0, n - batch_size + 1, batch_size):
            np.take(images, perm[s:s + batch_size], axis=0, out=out)
            count += batch_size
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return row('memory_bandwidth_limit', count, elapsed)
