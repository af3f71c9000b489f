"""The one decode: every real-world encoding to uint8 [S, S, 3], alone and inside Dataset.map."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from fastclassify.pipelines import decode


def _encode(pixels: np.ndarray, fmt: str, mode: str | None = None, **kwargs) -> bytes:
    image = Image.fromarray(pixels)
    if mode:
        image = image.convert(mode)
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _solid(h, w, rgb):
    return np.broadcast_to(np.array(rgb, np.uint8), (h, w, 3)).copy()


@pytest.mark.parametrize('h,w', [(300, 450), (100, 60), (224, 500)])  # shrink, enlarge, mixed
def test_jpeg_resizes_to_uint8_square_keeping_colour(h, w):
    blob = _encode(_solid(h, w, (200, 40, 90)), 'JPEG', quality=95)
    out = decode.resize_to_cache(decode.decode_image(tf.constant(blob)), 224)
    assert out.dtype == tf.uint8
    assert out.shape == (224, 224, 3)
    # A flat colour must survive decode + resize within JPEG error, whatever the filter.
    np.testing.assert_allclose(out.numpy().reshape(-1, 3).mean(0), (200, 40, 90), atol=4)


def test_grayscale_and_cmyk_jpegs_come_out_rgb():
    pixels = _solid(80, 120, (120, 120, 120))
    for mode in ('L', 'CMYK'):
        image = decode.decode_image(tf.constant(_encode(pixels, 'JPEG', mode=mode, quality=95)))
        assert image.shape == (80, 120, 3), mode
        np.testing.assert_allclose(image.numpy().mean((0, 1)), 120, atol=8, err_msg=mode)


def test_png_at_cache_size_is_not_resampled():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)  # noise: any resampling would change it
    out = decode.resize_to_cache(decode.decode_image(tf.constant(_encode(pixels, 'PNG'))), 32)
    np.testing.assert_array_equal(out.numpy(), pixels)


def test_animated_gif_yields_first_frame_as_3d():
    frames = [Image.fromarray(_solid(40, 50, c)) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format='GIF', save_all=True, append_images=frames[1:])
    image = decode.decode_image(tf.constant(buf.getvalue()))
    assert image.shape == (40, 50, 3)
    assert image.numpy()[..., 0].mean() > 200  # red: the first frame


def test_decoder_inside_dataset_map_has_static_shapes_and_int32_labels():
    blobs = [_encode(_solid(50 + 10 * i, 70, (i * 20, 0, 0)), 'JPEG') for i in range(4)]
    records = tf.data.Dataset.from_tensor_slices({'image': blobs, 'label': tf.constant([0, 1, 2, 3], tf.int64)})
    decoded = records.map(decode.make_decoder(48), num_parallel_calls=tf.data.AUTOTUNE)
    image_spec, label_spec = decoded.element_spec
    assert image_spec.shape == (48, 48, 3) and image_spec.dtype == tf.uint8
    assert label_spec.dtype == tf.int32
    labels = [int(label) for _, label in decoded]
    assert labels == [0, 1, 2, 3]


def test_bad_size_names_the_flag():
    with pytest.raises(ValueError, match='--image_size=0'):
        decode.make_decoder(0)
