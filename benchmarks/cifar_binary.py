"""CIFAR-100 in its real on-disk format (`cifar-100-binary`), generated, for TFDS's own builder (tests, GPU figures)."""

import contextlib
import pathlib
from unittest import mock

import numpy as np
import tensorflow_datasets as tfds


def write_cifar100_binary(root: pathlib.Path, counts: dict[str, int], *, separable_classes: int = 0,
                          seed: int = 0) -> pathlib.Path:
    """Writes `root/cifar-100-binary/{train,test}.bin` and the label-name files; returns `root`.

    Records are (coarse label, fine label, 3x32x32 channel planes), as in the real archive.

    Args:
      root: destination folder (created).
      counts: examples per split, e.g. `{'train': 12, 'test': 4}`.
      separable_classes: 0 for random pixels and labels cycling over 100 classes; N > 0 for N classes
        each drawn as its own colour plus noise, so a classifier can truly learn them.
      seed: RNG seed.
    """
    folder = root / 'cifar-100-binary'
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (max(separable_classes, 1), 3))
    for split, count in counts.items():
        if separable_classes:
            fine = rng.integers(0, separable_classes, count)
            planes = palette[fine][:, :, None] + rng.normal(0, 12, (count, 3, 1024))
            pixels = np.clip(planes, 0, 255).reshape(count, 3072)
        else:
            fine = np.arange(count) % 100
            pixels = rng.integers(0, 256, (count, 3072))
        records = np.concatenate([rng.integers(0, 20, (count, 1)), fine[:, None], pixels], axis=1)
        (folder / f'{split}.bin').write_bytes(records.astype(np.uint8).tobytes())
    (folder / 'coarse_label_names.txt').write_text('\n'.join(f'coarse_{i}' for i in range(20)) + '\n')
    (folder / 'fine_label_names.txt').write_text('\n'.join(f'fine_{i}' for i in range(100)) + '\n')
    return root


@contextlib.contextmanager
def offline_download(extracted: pathlib.Path):
    """Replaces only the network (the host check and the download): TFDS's cifar100 builder then parses
    the files itself."""
    from fastclassify.pipelines import sources  # pylint: disable=import-outside-toplevel
    with mock.patch.object(sources, 'unreachable_host', return_value=None), \
            mock.patch.object(tfds.download.DownloadManager, 'download_and_extract', return_value=extracted):
        yield
