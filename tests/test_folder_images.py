"""Decode-once decisions: RGB JPEGs kept byte for byte, everything else converted or refused."""

import hashlib
import io

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from fastclassify.pipelines.folder import images
from fastclassify.pipelines.caltech256.make_dummy_data import image_bytes


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


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height, with almost no pixel data (584 KB in the report)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))

    ihdr = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', zlib.compress(b'\0' * 64)) + chunk(b'IEND', b'')


def _jpeg_claiming(width: int, height: int) -> bytes:
    """A real small JPEG whose frame header is patched to declare width x height."""
    data = bytearray(image_bytes(9, (64, 48)))
    sof = data.index(b'\xff\xc0')
    data[sof + 5:sof + 9] = height.to_bytes(2, 'big') + width.to_bytes(2, 'big')
    return bytes(data)


def _peak_rss_kib() -> int:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def test_huge_png_is_refused_from_its_header_without_allocating_it():
    before = _peak_rss_kib()
    with images.pixel_guard(images.DEFAULT_MAX_PIXELS), pytest.raises(images.TooLargeError) as error:
        images.examine(_png_header_only(13000, 13000))
    assert _peak_rss_kib() - before < 100_000  # 13000^2 RGB would be 507 MB
    assert 'PNG 13000x13000 (169,000,000 px) is over --max_image_pixels=40,000,000' in str(error.value)


def test_huge_jpeg_is_decoded_at_reduced_scale_without_allocating_its_size():
    before = _peak_rss_kib()
    with images.pixel_guard(images.DEFAULT_MAX_PIXELS):
        examined = images.examine(_jpeg_claiming(13000, 13000))
    # 1/2 scale (6500^2 = 42 MP) is still over; libjpeg decodes 1/4 straight from the DCT: 32 MB, not 507.
    assert _peak_rss_kib() - before < 100_000
    assert _decoded(examined.converted).shape == (3250, 3250, 3)
    assert examined.note.endswith('stored at 1/4 scale, 3250x3250 RGB JPEG')


def test_jpeg_over_the_limit_is_stored_downscaled_and_reported():
    original = image_bytes(10, (400, 300))
    examined = images.examine(original, max_pixels=10_000)
    stored = _decoded(examined.converted)
    # 1/2 scale (200x150) is still over 10,000 px; 1/4 (100x75 = 7,500) fits.
    assert stored.shape == (75, 100, 3)
    assert examined.note == ('JPEG 400x300 (120,000 px) is over --max_image_pixels=10,000: stored at 1/4 '
                             'scale, 100x75 RGB JPEG')
    reference = np.asarray(Image.open(io.BytesIO(original)).convert('RGB').resize((100, 75)), np.float32)
    assert np.abs(stored.mean(axis=(0, 1)) - reference.mean(axis=(0, 1))).max() < 4  # the same picture


def test_other_formats_over_the_limit_are_refused_and_jpegs_beyond_eighth_scale_too():
    with pytest.raises(images.TooLargeError, match='only a JPEG can be decoded at reduced size'):
        images.examine(image_bytes(11, (120, 100), image_format='PNG'), max_pixels=10_000)
    with pytest.raises(images.TooLargeError, match='even at 1/8 scale'):
        images.examine(image_bytes(12, (400, 300)), max_pixels=1_000)
    assert images.examine(image_bytes(13, (100, 100)), max_pixels=10_000).converted is None  # at the limit
