"""Random data of a dataset's shape: decoded uint8 tensors (`--synthetic_data`) and encoded JPEG/PNG records."""

import io

import numpy as np
import tensorflow as tf
from PIL import Image

from fastclassify.pipelines import cache as cache_lib

# Training examples of `--synthetic_data` (validation is carved from them): enough for a few epochs of
# steps at any preset batch, little enough to generate in a second.
TRAIN_EXAMPLES = 2048


def random_examples(num_examples: int, image_size: int, num_classes: int, *,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, S, S, 3] 64-byte aligned, labels int32 [N] cycling over every class)."""
    rng = np.random.default_rng(seed)
    images = cache_lib.aligned_empty((num_examples, image_size, image_size, 3))
    # Filled in chunks: one `integers` call for 3.7 GB would allocate a second full-size temporary.
    for start in range(0, num_examples, 256):
        chunk = images[start:start + 256]
        chunk[...] = rng.integers(0, 256, chunk.shape, dtype=np.uint8)
    labels = (np.arange(num_examples) % num_classes).astype(np.int32)
    rng.shuffle(labels)
    return images, labels


def photo_like(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A uint8 [H, W, 3] image with photo-like statistics: smooth gradients, a few shapes, sensor noise.

    Pure noise compresses (and decodes) far slower than photos, flat colour far faster; this sits near
    real photos so decode timings mean something.
    """
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    base = rng.uniform(0, 255, 3).astype(np.float32)
    slope = rng.uniform(-120, 120, (2, 3)).astype(np.float32)
    image = base + slope[0] * y + slope[1] * x
    for _ in range(rng.integers(3, 8)):
        cy, cx = rng.uniform(0, 1, 2)
        r = rng.uniform(0.05, 0.3)
        mask = ((y - cy) ** 2 + (x - cx) ** 2) < r * r
        image = np.where(mask, rng.uniform(0, 255, 3).astype(np.float32), image)
    image += rng.normal(0, 8, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def encoded_examples(num_examples: int, num_classes: int, *, fmt: str = 'jpeg', size_range=(200, 500),
                     seed: int = 0, grayscale_every: int = 0) -> tuple[list[bytes], np.ndarray]:
    """Encoded images with Caltech-256-like sizes (or fixed size when size_range is (s, s)), and labels.

    Args:
        num_examples: how many.
        num_classes: labels cycle over 0..num_classes-1.
        fmt: 'jpeg' or 'png'.
        size_range: inclusive (min, max) side in pixels; each side drawn independently.
        seed: for the pixels and sizes.
        grayscale_every: every k-th image is single-channel (Caltech-256 has some); 0 = none.
    """
    rng = np.random.default_rng(seed)
    # Rendering is the slow part, so a small pool of rendered scenes is cut into differently sized and
    # placed crops; each crop still encodes to its own bytes, like distinct photos.
    side = size_range[1]
    pool = [photo_like(rng, side, side) for _ in range(min(num_examples, 16))]
    blobs = []
    for i in range(num_examples):
        h, w = (int(v) for v in rng.integers(size_range[0], size_range[1] + 1, 2))
        y, x = (int(v) for v in rng.integers(0, [side - h + 1, side - w + 1]))
        image = Image.fromarray(pool[i % len(pool)][y:y + h, x:x + w])
        if grayscale_every and i % grayscale_every == grayscale_every - 1:
            image = image.convert('L')
        buf = io.BytesIO()
        image.save(buf, format='JPEG' if fmt == 'jpeg' else 'PNG', quality=90)
        blobs.append(buf.getvalue())
    labels = (np.arange(num_examples) % num_classes).astype(np.int64)
    return blobs, labels


def records_dataset(blobs: list[bytes], labels: np.ndarray) -> tf.data.Dataset:
    """The `sources.read_split` element format: {'image': encoded tf.string, 'label': tf.int64}."""
    return tf.data.Dataset.from_tensor_slices({'image': tf.constant(blobs, tf.string),
                                               'label': tf.constant(labels, tf.int64)})
