"""Writes `256_ObjectCategories.tar` archives in the real layout: the tiny test one, or a full-size one.

    python -m pipelines.caltech256.make_dummy_data                      # dummy_data/ for the TFDS tests
    python -m pipelines.caltech256.make_dummy_data --full_size --out=/tmp/c256/256_ObjectCategories.tar
"""

import argparse
import io
import pathlib
import tarfile
from typing import Iterable

import numpy as np
from PIL import Image

from fastclassify.pipelines.caltech256 import archive

DUMMY_ARCHIVE = pathlib.Path(__file__).parent / 'dummy_data' / 'download' / archive.ARCHIVE_NAME
FULL_SIZE_FILES = 30_607
# Real folder names for the classes the dummy data uses; the full-size archive numbers the rest.
DUMMY_CLASSES = ('001.ak47', '002.american-flag', '056.dog', '198.spider', '257.clutter')


def image_bytes(seed: int, size: tuple[int, int], *, mode: str = 'RGB', image_format: str = 'JPEG',
                quality: int = 85) -> bytes:
    """A photo-like image (smooth gradients, blobs and sensor noise) so JPEG sizes are realistic."""
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    pixels = np.zeros((height, width, 3), np.float32)
    for channel in range(3):
        angle, freq = rng.uniform(0, np.pi), rng.uniform(1, 4) / max(width, height)
        pixels[..., channel] = 128 + 90 * np.sin(2 * np.pi * freq * (x * np.cos(angle) + y * np.sin(angle)))
    for _ in range(int(rng.integers(3, 8))):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0.05, 0.3) * min(size)
        pixels[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)
    pixels += rng.normal(0, 6, pixels.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), 'RGB').convert(mode)
    out = io.BytesIO()
    image.save(out, format=image_format, **({'quality': quality} if image_format == 'JPEG' else {}))
    return out.getvalue()


def write_tar(path: pathlib.Path, members: Iterable[tuple[str, bytes | None]]) -> None:
    """Writes an uncompressed tar; `None` data makes a directory entry. Fixed mtimes keep it reproducible."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, 'w', format=tarfile.GNU_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.mtime = 1_190_000_000
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))


def dummy_members() -> list[tuple[str, bytes | None]]:
    """The test archive: 5 classes of tiny images plus each kind of file the real archive holds or might.

    Expected outcome (default config): 23 examples; converted: the grayscale, CMYK and PNG-named-.jpg files;
    skipped: `056.dog/greg/...` (stray folder), the truncated JPEG, `RENAME2` and `Thumbs.db`; the two
    byte-identical clutter files share a split.
    """
    root = archive.ROOT
    members: list[tuple[str, bytes | None]] = [(root, None)]
    seed = 0
    for class_dir in DUMMY_CLASSES:
        members.append((f'{root}/{class_dir}', None))
        number = class_dir[:3]
        count = 3 if class_dir == '257.clutter' else 4
        for i in range(1, count + 1):
            seed += 1
            members.append((f'{root}/{class_dir}/{number}_{i:04d}.jpg', image_bytes(seed, (24 + seed, 20))))
    members += [
            (f'{root}/001.ak47/001_0005.jpg', image_bytes(101, (20, 24), mode='L')),
            (f'{root}/002.american-flag/002_0005.jpg', image_bytes(102, (20, 24), mode='CMYK')),
            (f'{root}/056.dog/056_0005.jpg', image_bytes(103, (20, 24), image_format='PNG')),
            (f'{root}/056.dog/greg', None),
            (f'{root}/056.dog/greg/056_0099.jpg', image_bytes(104, (20, 24))),
            (f'{root}/198.spider/198_0005.jpg', _truncated(image_bytes(105, (64, 64)))),
            (f'{root}/198.spider/RENAME2', b'rename these files\n'),
            (f'{root}/198.spider/Thumbs.db', bytes.fromhex('d0cf11e0a1b11ae1') + bytes(200)),
            (f'{root}/257.clutter/257_0004.jpg', dict(members)[f'{root}/257.clutter/257_0001.jpg']),
    ]
    return members


def _truncated(jpeg: bytes) -> bytes:
    """Cuts a JPEG inside its entropy-coded data: the header still parses, the pixels do not decode."""
    return jpeg[:len(jpeg) * 3 // 5]


def full_size_plan(num_files: int = FULL_SIZE_FILES, seed: int = 0) -> list[tuple[str, tuple | None]]:
    """The full-size archive's members as (name, `image_bytes` arguments, or None for a folder).

    The images are made from it by `full_size_members` (or in parallel by whoever maps `image_bytes` over
    it): the same plan gives the same bytes either way.
    """
    rng = np.random.default_rng(seed)
    # At least 80 per class as in the real archive, the remainder spread at random.
    per_class = np.full(257, num_files // 257)
    per_class[rng.choice(257, num_files - per_class.sum(), replace=False)] += 1
    plan = [(archive.ROOT, None)]
    for c, count in enumerate(per_class, start=1):
        class_dir = f'{c:03d}.{"clutter" if c == 257 else f"class{c:03d}"}'
        plan.append((f'{archive.ROOT}/{class_dir}', None))
        for i in range(1, count + 1):
            size = (int(rng.integers(150, 401)), int(rng.integers(150, 401)))
            mode = 'L' if rng.random() < 0.05 else 'RGB'
            plan.append((f'{archive.ROOT}/{class_dir}/{c:03d}_{i:04d}.jpg', (int(rng.integers(2**31)), size, mode)))
    return plan


def plan_image(args: tuple) -> bytes:
    """One planned image: `image_bytes(seed, size, mode=mode)` (a top-level function, for process pools)."""
    seed, size, mode = args
    return image_bytes(seed, size, mode=mode)


def full_size_members(num_files: int = FULL_SIZE_FILES, seed: int = 0):
    """Yields a Caltech-256-shaped archive: 257 folders, `num_files` JPEGs of 150-400 px, 5% grayscale."""
    for name, args in full_size_plan(num_files, seed):
        yield name, None if args is None else plan_image(args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--full_size', action='store_true', help='write a 30,607-file archive instead')
    parser.add_argument('--num_files', type=int, default=FULL_SIZE_FILES, help='files in the full-size archive')
    parser.add_argument('--out', type=pathlib.Path, default=None, help='archive path to write')
    args = parser.parse_args()
    if args.full_size:
        if args.out is None:
            parser.error('--full_size needs --out (outside the repository, e.g. under /tmp)')
        write_tar(args.out, full_size_members(args.num_files))
    else:
        write_tar(args.out or DUMMY_ARCHIVE, dummy_members())
    print(f'wrote {args.out or DUMMY_ARCHIVE} ({(args.out or DUMMY_ARCHIVE).stat().st_size:,} bytes)')


if __name__ == '__main__':
    main()
