"""RandAugment's ops against PIL's reference implementations, and the whole policy's contracts."""

from keras import ops
import numpy as np
import PIL.Image
import PIL.ImageEnhance
import PIL.ImageOps
import pytest

from fastclassify.pipelines.augment import randaugment
from fastclassify.pipelines.augment import rng

pytestmark = pytest.mark.backends  # CI runs these under TensorFlow and JAX


def _photo(seed=0, size=24):
    generator = np.random.default_rng(seed)
    coarse = generator.integers(30, 200, size=(4, 4, 3)).astype(np.uint8)
    smooth = np.asarray(PIL.Image.fromarray(coarse).resize((size, size), PIL.Image.BILINEAR), np.float32)
    return np.clip(smooth + generator.normal(0, 10, smooth.shape), 0, 255).astype(np.uint8)


def _f32(images):
    return ops.convert_to_tensor(np.asarray(images, np.float32))


def _key(a, b):
    return rng.key(np.array([a, b], np.int32))


def test_equalize_matches_pil():
    images = np.stack([_photo(i) for i in range(3)])
    ours = ops.convert_to_numpy(randaugment._equalize(_f32(images)))
    for image, result in zip(images, ours):
        np.testing.assert_array_equal(result, np.asarray(PIL.ImageOps.equalize(PIL.Image.fromarray(image))))


def test_auto_contrast_matches_pil():
    image = _photo(5)
    ours = ops.convert_to_numpy(randaugment._auto_contrast(_f32(image[None])))[0]
    theirs = np.asarray(PIL.ImageOps.autocontrast(PIL.Image.fromarray(image)))
    np.testing.assert_allclose(ours, theirs, atol=1.0)


@pytest.mark.parametrize('factor', [0.1, 1.9])
def test_sharpness_matches_pil(factor):
    image = _photo(6)
    x = _f32(image[None])
    ours = ops.convert_to_numpy(randaugment._blend(randaugment._sharpness_degenerate(x), x, factor))[0]
    theirs = np.asarray(PIL.ImageEnhance.Sharpness(PIL.Image.fromarray(image)).enhance(factor))
    # PIL rounds the smoothed image to uint8 before blending; we blend in float.
    np.testing.assert_allclose(ours, theirs, atol=1.5)


@pytest.mark.parametrize('factor', [0.1, 1.9])
def test_color_matches_pil(factor):
    image = _photo(7)
    x = _f32(image[None])
    ours = ops.convert_to_numpy(randaugment._blend(randaugment._grayscale(x), x, factor))[0]
    theirs = np.asarray(PIL.ImageEnhance.Color(PIL.Image.fromarray(image)).enhance(factor))
    np.testing.assert_allclose(ours, theirs, atol=1.5)


def test_each_image_draws_its_own_ops_and_zero_layers_is_identity():
    images = np.stack([_photo(0, 32)] * 32)
    out = ops.convert_to_numpy(randaugment.rand_augment(ops.convert_to_tensor(images), _key(1, 2), layers=2,
                                                        magnitude=9.0, dtype='float32'))
    changed = np.abs(out - images).mean(axis=(1, 2, 3))
    distinct = {round(float(c), 3) for c in changed}
    assert len(distinct) > 10  # identical inputs, different outputs: per-image draws
    assert out.min() >= 0.0 and out.max() <= 255.0
    same = randaugment.rand_augment(ops.convert_to_tensor(images), _key(1, 2), layers=0, magnitude=9.0,
                                    dtype='float32')
    np.testing.assert_array_equal(ops.convert_to_numpy(same), images.astype(np.float32))


def test_magnitude_zero_leaves_all_but_the_histogram_ops_alone():
    image = _photo(3, 32)
    images = ops.convert_to_tensor(np.stack([image] * 64))
    out = ops.convert_to_numpy(randaugment.rand_augment(images, _key(3, 4), layers=1, magnitude=0.0,
                                                        dtype='float32'))
    unchanged = np.abs(out - image.astype(np.float32)).max(axis=(1, 2, 3)) < 1e-3
    # Only auto_contrast and equalize (2 of 14 ops) ignore the magnitude.
    assert 0.6 < unchanged.mean() < 1.0


def test_geometric_ops_compose_into_the_expected_matrix():
    rotate = randaugment.OPS.index('rotate')
    shift = randaugment.OPS.index('translate_x')
    drawn = ops.convert_to_tensor(np.array([[rotate, shift]], np.int32))
    matrix = ops.convert_to_numpy(randaugment._geometry(drawn, _f32([[1.0, 1.0]]), 10.0, 100))[0]
    angle = np.radians(30.0)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    trans = np.array([[1, 0, 45.0], [0, 1, 0], [0, 0, 1]])
    np.testing.assert_allclose(matrix, rot @ trans, atol=1e-4)
