"""`--folder_format`: a folder's PNGs re-encoded as JPEG by default (small, lossy), kept exact with png."""

import io

import numpy as np
import pytest
from PIL import Image

from fastclassify.pipelines import sources
from tests import folder_trees


def _png(seed: int, mode: str = 'RGB') -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (16, 16, len(mode)), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, mode).save(out, format='PNG')
    return out.getvalue()


def _stored(tmp_path, tree, folder_format):
    source = folder_trees.write(tree, tmp_path / folder_format, 'dir')
    cfg = sources.SourceConfig('folder', data_dir=str(tmp_path / 'data'), manual_dir=str(source),
                               folder_format=folder_format)
    builder = sources.prepare(cfg)
    records = [r for split in ('train', 'test') for r in sources.read_split(builder, split).as_numpy_iterator()]
    return builder, [r['image'] for r in records]


@pytest.mark.parametrize('folder_format', ['jpeg', 'png'])
def test_pngs_are_jpeg_by_default_and_exact_with_png(tmp_path, folder_format):
    tree = {f'{c}/{i}.png': _png(10 * c + i) for c in range(2) for i in range(5)}
    tree['0/alpha.png'] = _png(99, 'RGBA')
    builder, stored = _stored(tmp_path, tree, folder_format)
    assert len(stored) == len(tree)
    if folder_format == 'jpeg':
        assert all(data[:2] == b'\xff\xd8' for data in stored)  # every image a JPEG
        assert not builder.builder_config.name.endswith('-png')
        return
    assert builder.builder_config.name.endswith('-png')  # its own prepared copy, never mixed with the jpeg one
    assert all(data[:8] == b'\x89PNG\r\n\x1a\n' for data in stored)
    originals = {data for data in tree.values()}
    assert sum(data in originals for data in stored) == 10  # RGB PNGs kept byte for byte
    # The RGBA one: composited on white, then stored without loss.
    rgba = np.asarray(Image.open(io.BytesIO(tree['0/alpha.png'])).convert('RGBA')).astype(np.float64)
    converted = [np.asarray(Image.open(io.BytesIO(d))) for d in stored if d not in originals]
    assert len(converted) == 1 and converted[0].shape == (16, 16, 3)
    alpha = rgba[..., 3:] / 255
    expected = rgba[..., :3] * alpha + 255 * (1 - alpha)
    assert np.abs(converted[0].astype(np.float64) - expected).max() <= 1.0
