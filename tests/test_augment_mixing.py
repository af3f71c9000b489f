"""Mixup, CutMix and random erasing: labels follow the pixels, boxes are boxes, draws have the right law."""

from keras import ops
import numpy as np
import pytest

from fastclassify.pipelines import augment
from fastclassify.pipelines.augment import erasing
from fastclassify.pipelines.augment import mixing
from fastclassify.pipelines.augment import rng

pytestmark = pytest.mark.backends  # CI runs these under TensorFlow and JAX

BATCH = 16


def _constant_batch(size=32):
    # Image i is the constant 10 * i + 5 and has class i: every pixel says whose it is.
    values = 10.0 * np.arange(BATCH) + 5.0
    images = np.broadcast_to(values[:, None, None, None], (BATCH, size, size, 3)).astype(np.uint8)
    labels = np.eye(BATCH, dtype=np.float32)
    return images, labels, values


def _key(a, b):
    return rng.key(np.array([a, b], np.int32))


@pytest.mark.parametrize('policy', ['mixup', 'cutmix', 'mixup+cutmix'])
def test_labels_sum_to_one_and_match_the_mixed_pixel_proportions(policy):
    images, labels, values = _constant_batch()
    cfg = augment.AugmentConfig(policy=policy, image_size=32, num_classes=BATCH, seed=3)
    out, soft = augment.Augmenter(cfg)(images, labels, training=True)
    out, soft = ops.convert_to_numpy(out), ops.convert_to_numpy(soft)
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, atol=1e-5)
    partner = values[::-1]
    own_weight = soft[np.arange(BATCH), np.arange(BATCH)]
    partner_weight = soft[np.arange(BATCH), np.arange(BATCH)[::-1]]
    np.testing.assert_allclose(own_weight + partner_weight, 1.0, atol=1e-5)
    # Each pixel is own * k + partner * (1 - k); the image mean therefore fixes the mean k.
    mean_keep = (out.mean(axis=(1, 2, 3)) - partner) / (values - partner)
    np.testing.assert_allclose(mean_keep, own_weight, atol=1e-3)
    assert np.ptp(own_weight) > 0.05  # weights vary per image, they are drawn


def test_cutmix_pastes_one_rectangle_of_the_partner():
    images, labels, values = _constant_batch(size=40)
    cfg = augment.AugmentConfig(policy='cutmix', image_size=40, num_classes=BATCH, seed=1)
    out, _ = augment.Augmenter(cfg)(images, labels, training=True)
    out = ops.convert_to_numpy(out)[..., 0]
    for i in range(BATCH):
        pasted = np.isclose(out[i], values[::-1][i])
        if not pasted.any():
            continue
        rows = np.nonzero(pasted.any(axis=1))[0]
        cols = np.nonzero(pasted.any(axis=0))[0]
        assert pasted.sum() == len(rows) * len(cols)  # a full rectangle, nothing else
        assert np.all(np.diff(rows) == 1) and np.all(np.diff(cols) == 1)


@pytest.mark.parametrize('alpha', [0.2, 1.0, 2.5])
def test_beta_draws_have_the_beta_mean_and_variance(alpha):
    draws = ops.convert_to_numpy(mixing.beta((20000,), alpha, _key(4, 2)))
    assert draws.min() >= 0.0 and draws.max() <= 1.0
    variance = 1.0 / (4.0 * (2.0 * alpha + 1.0))  # Beta(a, a)
    assert abs(draws.mean() - 0.5) < 0.015
    assert abs(draws.var() - variance) < 0.1 * variance


def test_erasing_replaces_one_box_of_the_documented_area_per_image():
    images = ops.full((64, 48, 48, 3), 0.5)  # not an integer, so noise never equals it
    out = ops.convert_to_numpy(erasing.erase(images, _key(1, 2), probability=1.0))
    for image in out:
        erased = image[..., 0] != 0.5
        rows = np.nonzero(erased.any(axis=1))[0]
        cols = np.nonzero(erased.any(axis=0))[0]
        assert erased.sum() == len(rows) * len(cols)
        area = erased.mean()
        assert 0.015 <= area <= 1 / 3 + 0.03
    noise = out[out != 0.5]
    assert noise.min() >= 0.0 and noise.max() <= 255.0 and abs(noise.mean() - 127.5) < 5.0


def test_erasing_probability_is_honoured():
    images = ops.full((400, 16, 16, 3), 0.5)
    out = ops.convert_to_numpy(erasing.erase(images, _key(7, 7), probability=0.25))
    touched = (out != 0.5).any(axis=(1, 2, 3))
    assert 0.18 < touched.mean() < 0.32
    untouched = ops.convert_to_numpy(erasing.erase(images, _key(7, 7), probability=0.0))
    np.testing.assert_array_equal(untouched, ops.convert_to_numpy(images))


def test_hash_noise_is_uniform_and_depends_on_the_seed():
    a = ops.convert_to_numpy(erasing.hash_noise((256, 256), _key(0, 1)))
    b = ops.convert_to_numpy(erasing.hash_noise((256, 256), _key(0, 2)))
    counts = np.bincount(a.astype(np.int64).ravel(), minlength=256)
    assert counts.min() > 150 and counts.max() < 370  # 256 expected per value
    assert (a != b).mean() > 0.9
