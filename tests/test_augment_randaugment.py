"""RandAugment's ops against PIL's reference implementations, and the whole policy's contracts."""

import numpy as np
import PIL.Image
import PIL.ImageEnhance
import PIL.ImageOps
import pytest
import tensorflow as tf

from pipelines.augment import randaugment


def _photo(seed=0, size=24):
    rng = np.random.default_rng(seed)
    coarse = rng.integers(30, 200, size=(4, 4, 3)).astype(np.float32)
    smooth = tf.image.resize(coarse[None], [size, size]).numpy()[0]
    return np.clip(smooth + rng.normal(0, 10, smooth.shape), 0, 255).astype(np.uint8)


def test_equalize_matches_pil():
    images = np.stack([_photo(i) for i in range(3)])
    ours = randaugment._equalize(tf.constant(images, tf.float32)).numpy()
    for image, result in zip(images, ours):
        np.testing.assert_array_equal(result, np.asarray(PIL.ImageOps.equalize(PIL.Image.fromarray(image))))


def test_auto_contrast_matches_pil():
    image = _photo(5)
    ours = randaugment._auto_contrast(tf.constant(image[None], tf.float32)).numpy()[0]
    theirs = np.asarray(PIL.ImageOps.autocontrast(PIL.Image.fromarray(image)))
    np.testing.assert_allclose(ours, theirs, atol=1.0)


@pytest.mark.parametrize('factor', [0.1, 1.9])
def test_sharpness_matches_pil(factor):
    image = _photo(6)
    x = tf.constant(image[None], tf.float32)
    ours = randaugment._blend(randaugment._sharpness_degenerate(x), x, factor).numpy()[0]
    theirs = np.asarray(PIL.ImageEnhance.Sharpness(PIL.Image.fromarray(image)).enhance(factor))
    # PIL rounds the smoothed image to uint8 before blending; we blend in float.
    np.testing.assert_allclose(ours, theirs, atol=1.5)


@pytest.mark.parametrize('factor', [0.1, 1.9])
def test_color_matches_pil(factor):
    image = _photo(7)
    x = tf.constant(image[None], tf.float32)
    ours = randaugment._blend(randaugment._grayscale(x), x, factor).numpy()[0]
    theirs = np.asarray(PIL.ImageEnhance.Color(PIL.Image.fromarray(image)).enhance(factor))
    np.testing.assert_allclose(ours, theirs, atol=1.5)


def test_each_image_draws_its_own_ops_and_zero_layers_is_identity():
    images = tf.constant(np.stack([_photo(0, 32)] * 32))
    out = randaugment.rand_augment(images, tf.constant([1, 2]), layers=2, magnitude=9.0,
                                   dtype=tf.float32).numpy()
    changed = np.abs(out - images.numpy()).mean(axis=(1, 2, 3))
    distinct = {round(float(c), 3) for c in changed}
    assert len(distinct) > 10  # identical inputs, different outputs: per-image draws
    assert out.min() >= 0.0 and out.max() <= 255.0
    same = randaugment.rand_augment(images, tf.constant([1, 2]), layers=0, magnitude=9.0, dtype=tf.float32)
    np.testing.assert_array_equal(same.numpy(), images.numpy().astype(np.float32))


def test_magnitude_zero_leaves_all_but_the_histogram_ops_alone():
    image = _photo(3, 32)
    images = tf.constant(np.stack([image] * 64))
    out = randaugment.rand_augment(images, tf.constant([3, 4]), layers=1, magnitude=0.0,
                                   dtype=tf.float32).numpy()
    unchanged = np.abs(out - image.astype(np.float32)).max(axis=(1, 2, 3)) < 1e-3
    # Only auto_contrast and equalize (2 of 14 ops) ignore the magnitude.
    assert 0.6 < unchanged.mean() < 1.0


def test_geometric_ops_compose_into_the_expected_matrix():
    rotate = randaugment.OPS.index('rotate')
    shift = randaugment.OPS.index('translate_x')
    ops = tf.constant([[rotate, shift]])
    matrix = randaugment._geometry(ops, tf.constant([[1.0, 1.0]]), 10.0, 100).numpy()[0]
    angle = np.radians(30.0)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    trans = np.array([[1, 0, 45.0], [0, 1, 0], [0, 0, 1]])
    np.testing.assert_allclose(matrix, rot @ trans, atol=1e-4)
