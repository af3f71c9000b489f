"""Geometry of the seed, flip_crop and rrc policies, read back from marker and coordinate images."""

import math

from keras import ops
import numpy as np
import pytest

from fastclassify.pipelines import augment
from fastclassify.pipelines.augment import crops

pytestmark = pytest.mark.backends  # CI runs these under TensorFlow and JAX


def _augment(policy, images, image_size, seed=0, training=True):
    cfg = augment.AugmentConfig(policy=policy, image_size=image_size, num_classes=2, seed=seed)
    labels = np.eye(2, dtype=np.float32)[np.zeros(images.shape[0], np.int64)]
    out, _ = augment.Augmenter(cfg)(images, labels, training=training)
    return ops.convert_to_numpy(out)


def _centroid(channel):
    """[B, H, W] -> [B, 2] intensity-weighted (x, y)."""
    ys, xs = np.mgrid[:channel.shape[1], :channel.shape[2]]
    mass = channel.sum(axis=(1, 2))
    return np.stack([(channel * xs).sum(axis=(1, 2)) / mass, (channel * ys).sum(axis=(1, 2)) / mass], axis=1)


def test_seed_policy_rotates_within_30_degrees_and_shifts_within_a_fifth():
    size, batch, offset = 96, 256, 20
    image = np.zeros((size, size, 3), np.uint8)
    image[47:49, 47:49, 0] = 255  # marker A (red) on the centre 47.5
    image[47:49, 47 + offset:49 + offset, 1] = 255  # marker B (green) 20 px to its right
    out = _augment('seed', np.repeat(image[None], batch, axis=0), size)
    a = _centroid(out[..., 0])
    b = _centroid(out[..., 1])
    shift = a - 47.5
    vector = b - a
    angle = np.degrees(np.arctan2(np.abs(vector[:, 1]), np.abs(vector[:, 0])))
    flipped = vector[:, 0] < 0
    np.testing.assert_allclose(np.hypot(*vector.T), offset, atol=0.5)  # rigid: no scaling
    assert angle.max() <= 30.5
    assert angle.max() > 25.0  # the range is used, not just respected
    assert np.abs(shift).max() <= 0.2 * size + 0.5
    assert np.abs(shift).max() > 0.15 * size
    assert 0.35 < flipped.mean() < 0.65


def test_seed_policy_fills_by_repeating_edges():
    # A constant image stays constant under any warp only if outside points take the nearest edge.
    images = np.full((16, 32, 32, 3), 77, np.uint8)
    out = _augment('seed', images, 32)
    np.testing.assert_allclose(out, 77.0, atol=1e-3)


def _coordinate_image(size, plus=0):
    ys, xs = np.mgrid[:size, :size]
    return np.stack([xs + plus, ys + plus, np.zeros_like(xs)], axis=-1).astype(np.uint8)


def test_flip_crop_takes_a_shifted_window_of_the_zero_padded_image():
    size, batch = 32, 128
    images = np.repeat(_coordinate_image(size, plus=1)[None], batch, axis=0)  # 0 marks padding
    out = _augment('flip_crop', images, size).astype(np.int64)
    offsets_x, offsets_y, flips = [], [], []
    for image in out:
        row = image[size // 2, :, 0]
        col = image[:, size // 2, 1]
        real_x = np.nonzero(row)[0]
        step = np.diff(row[real_x])
        assert np.all(step == step[0]) and abs(step[0]) == 1  # contiguous, no interpolation
        flipped = step[0] < 0
        flips.append(flipped)
        j = real_x[0]
        offsets_x.append(row[j] - 1 - ((size - 1 - j) if flipped else j))
        real_y = np.nonzero(col)[0]
        offsets_y.append(col[real_y[0]] - 1 - real_y[0])
        # Padding only in the outer 4 pixels.
        assert size - len(real_x) <= 4 and size - len(real_y) <= 4
    for offsets in (np.array(offsets_x), np.array(offsets_y)):
        assert offsets.min() == -4 and offsets.max() == 4
    assert 0.35 < np.mean(flips) < 0.65


def test_rrc_crops_inside_the_cached_image_with_inception_area_and_aspect():
    cfg = augment.AugmentConfig(policy='rrc', image_size=224)
    cache = augment.cache_size_for(cfg)
    assert cache == 256
    batch = 64
    out = _augment('rrc', np.repeat(_coordinate_image(cache)[None], batch, axis=0), 224)
    x, y = out[..., 0], out[..., 1]
    width = np.abs(x[:, 0, -1] - x[:, 0, 0]) * 224 / 223  # centre-to-centre span covers 223/224 of the crop
    height = (y[:, -1, 0] - y[:, 0, 0]) * 224 / 223
    area = width * height / cache ** 2
    ratio = width / height
    assert np.all(area > 0.08 - 0.01) and np.all(area <= 1.0 + 1e-3)
    assert np.all(ratio > 0.75 - 0.02) and np.all(ratio < 4 / 3 + 0.02)
    assert area.min() < 0.3 and area.max() > 0.6
    flipped = x[:, 0, -1] < x[:, 0, 0]
    assert 0.25 < flipped.mean() < 0.75
    assert x.min() >= 0 and x.max() <= cache - 1


def test_evaluation_is_a_deterministic_centre_crop():
    image = _coordinate_image(256)
    images = np.repeat(image[None], 2, axis=0)
    out = _augment('rrc', images, 224, training=False)
    np.testing.assert_array_equal(out, images[:, 16:240, 16:240].astype(np.float32))
    seed_out = _augment('seed+mixup', images[:, :64, :64], 64, training=False)
    np.testing.assert_array_equal(seed_out, images[:, :64, :64].astype(np.float32))


def test_centre_resizes_when_the_cache_is_smaller():
    images = np.full([1, 16, 16, 3], 200, np.uint8)
    out = crops.center(ops.convert_to_tensor(images), 32, dtype='float32')
    assert out.shape == (1, 32, 32, 3)
    np.testing.assert_allclose(ops.convert_to_numpy(out), 200.0, atol=1e-3)


@pytest.mark.parametrize('policy', ['seed', 'rrc'])
def test_warps_are_smooth_maps_without_index_jumps(policy):
    # A coordinate image through the warp must be a smooth map: neighbouring outputs differ by the
    # local scale, never by a jump (which would mean a wrong flat index in the gather).
    size = 64
    cfg = augment.AugmentConfig(policy=policy, image_size=size)
    cache = augment.cache_size_for(cfg)
    out = _augment(policy, np.repeat(_coordinate_image(cache)[None], 8, axis=0), size)
    dx = np.abs(np.diff(out[..., 0], axis=2))
    assert dx.max() <= math.ceil(cache / size * 4.5 * 1.2)


def test_centre_upscale_is_half_pixel_bilinear_like_tf_image_resize():
    ramp = np.arange(16, dtype=np.float64) * 15.0  # 0..225 along x
    images = np.broadcast_to(ramp[None, None, :, None], (1, 16, 16, 3)).astype(np.uint8)
    out = ops.convert_to_numpy(crops.center(ops.convert_to_tensor(images), 32, dtype='float32'))
    # Half-pixel centres, edges repeated: output x samples input (x + 0.5) / 2 - 0.5.
    expected = np.interp((np.arange(32) + 0.5) / 2 - 0.5, np.arange(16), ramp)
    np.testing.assert_allclose(out[0, 5, :, 0], expected, atol=1e-3)
    np.testing.assert_allclose(out[0, :, 7, 1], out[0, 0, 7, 1], atol=1e-3)  # rows untouched
