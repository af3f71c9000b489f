"""Large JPEGs are decoded at the DCT scale the cache needs: pixels close to a full decode, small ones untouched."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from fastclassify.pipelines import decode
from fastclassify.pipelines import pipeline
from fastclassify.pipelines import synthetic
from fastclassify.pipelines.caltech256 import make_dummy_data
from fastclassify.pipelines.folder import images

# Mean absolute difference (0..255 units) allowed between a scaled and a full decode, after the resize to
# the cache: about what one JPEG re-encode at quality 90 moves a photo; measured 0.9-1.9 here (decode.MARGIN).
MEAN_ABS_BOUND = 2.0


def _jpeg(height: int, width: int, seed: int = 0, quality: int = 90) -> bytes:
    pixels = synthetic.photo_like(np.random.default_rng(seed), height, width)
    # Fine texture too: the case where a low-pass decode could drift furthest from a full one.
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    pixels = np.clip(pixels + (30 * np.sin(x / 3.0) * np.sin(y / 5.0))[..., None], 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format='JPEG', quality=quality)
    return out.getvalue()


def _cached(blob: bytes, size: int, scaled: bool) -> np.ndarray:
    record = {'image': tf.constant(blob), 'label': tf.constant(0)}
    return decode.make_decoder(size, scaled_jpeg=scaled)(record)[0].numpy()


@pytest.mark.parametrize('height,width,expected', [
        (64, 64, 0), (126, 500, 0), (127, 127, 1), (250, 300, 1), (253, 256, 2), (500, 2000, 2),
        (505, 512, 3), (3024, 4032, 3)])
def test_ratio_is_the_largest_that_keeps_both_sides_at_least_the_cache(height, width, expected):
    index = int(decode.jpeg_ratio_index(tf.constant(height), tf.constant(width), 64))
    assert index == expected
    ratio = decode.JPEG_RATIOS[index]
    assert -(-height // ratio) >= 64 and -(-width // ratio) >= 64


@pytest.mark.parametrize('height,width,size', [(1200, 1600, 64), (900, 700, 96), (3024, 4032, 224)])
def test_scaled_decode_stays_within_the_bound_of_a_full_decode(height, width, size):
    blob = _jpeg(height, width)
    full, scaled = _cached(blob, size, False), _cached(blob, size, True)
    assert scaled.shape == full.shape == (size, size, 3)
    diff = np.abs(scaled.astype(np.int32) - full.astype(np.int32))
    assert 0 < diff.mean() <= MEAN_ABS_BOUND, diff.mean()  # > 0: the scaled path did run
    assert np.percentile(diff, 99) <= 8


@pytest.mark.parametrize('height,width', [(100, 150), (126, 900), (64, 64), (40, 30)])
def test_images_too_small_to_scale_are_bit_identical(height, width):
    blob = _jpeg(height, width, seed=1)
    np.testing.assert_array_equal(_cached(blob, 64, True), _cached(blob, 64, False))


def test_non_jpeg_takes_the_normal_path():
    out = io.BytesIO()
    Image.fromarray(synthetic.photo_like(np.random.default_rng(2), 600, 800)).save(out, format='PNG')
    np.testing.assert_array_equal(_cached(out.getvalue(), 64, True), _cached(out.getvalue(), 64, False))


def test_mixed_sizes_decode_inside_dataset_map():
    blobs = [_jpeg(600, 800, seed=3), _jpeg(50, 70, seed=4), _jpeg(300, 130, seed=5), _jpeg(400, 300, seed=6)]
    records = synthetic.records_dataset(blobs, np.arange(4))
    got = [image for image, _ in pipeline.decode_for_cache(records, 64).as_numpy_iterator()]
    want = [image for image, _ in pipeline.decode_for_cache(records, 64, scaled_jpeg=False).as_numpy_iterator()]
    assert [g.shape for g in got] == [(64, 64, 3)] * 4
    for small in (1, 2):  # 130 px is under 2 x 1.5 x 64: decoded in full
        np.testing.assert_array_equal(got[small], want[small])
    for g, w in zip(got, want):
        assert np.abs(g.astype(int) - w.astype(int)).mean() <= MEAN_ABS_BOUND


def test_reduced_scale_check_still_refuses_truncated_and_keeps_good_jpegs():
    assert images.CHECK_RATIO == 8
    good = make_dummy_data.image_bytes(7, (640, 480))
    assert images.examine(good).converted is None
    with pytest.raises(images.UndecodableImageError):
        images.examine(good[:len(good) * 2 // 3])
