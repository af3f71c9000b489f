"""Decode-once decisions: RGB JPEGs kept byte for byte, everything else converted or refused."""

import hashlib
import io

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from pipelines.folder import images
from pipelines.caltech256.make_dummy_data import image_bytes


def _decoded(jpeg: bytes) -> np.ndarray:
    return tf.io.decode_jpeg(jpeg).numpy()


def test_rgb_jpeg_is_kept_as_given():
    data = image_bytes(1, (40, 30))
    examined = images.examine(data)
    assert examined.converted is None and examined.note == ''
    assert examined.sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize('mode', ['L', 'CMYK'])
def test_grayscale_and_cmyk_jpegs_become_rgb_jpegs(mode):
    original = image_bytes(2, (40, 30), mode=mode)
    examined = images.examine(original)
    assert examined.converted[:2] == b'\xff\xd8' and f'JPEG {mode}' in examined.note
    pixels = _decoded(examined.converted)
    assert pixels.shape == (30, 40, 3)
    reference = np.asarray(Image.open(io.BytesIO(original)).convert('RGB'), np.float32)
    # Same colours (an inverted-CMYK bug would be off by ~100) and the same picture up to JPEG noise.
    assert np.abs(pixels.mean(axis=(0, 1)) - reference.mean(axis=(0, 1))).max() < 3
    assert np.abs(pixels.astype(np.float32) - reference).mean() < 16
    if mode == 'L':
        assert np.abs(pixels[..., 0].astype(int) - pixels[..., 2]).max() <= 2  # still gray


def test_png_behind_jpg_name_becomes_jpeg():
    examined = images.examine(image_bytes(3, (20, 24), image_format='PNG'))
    assert examined.note.startswith('PNG') and _decoded(examined.converted).shape == (24, 20, 3)


def test_transparent_png_is_composited_on_white():
    rgba = Image.new('RGBA', (8, 8), (255, 0, 0, 0))
    out = io.BytesIO()
    rgba.save(out, format='PNG')
    pixels = _decoded(images.examine(out.getvalue()).converted)
    assert pixels.min() > 240  # fully transparent red shows as white, not black or red


def test_truncated_jpeg_is_refused():
    data = image_bytes(4, (64, 64))
    with pytest.raises(images.UndecodableImageError, match='cannot decode JPEG'):
        images.examine(data[:len(data) * 3 // 5])


@pytest.mark.parametrize('data', [b'rename these files\n', bytes.fromhex('d0cf11e0a1b11ae1') + bytes(200), b''])
def test_non_images_are_refused(data):
    with pytest.raises(images.UndecodableImageError, match='not an image'):
        images.examine(data)
