"""Trees of class folders in their real on-disk forms (directory, tar, tar.gz, zip), generated for tests."""

import io
import pathlib
import tarfile
import zipfile

import numpy as np
from PIL import Image

from fastclassify.pipelines.caltech256.make_dummy_data import image_bytes

# A tree maps a path to its bytes, or to None for a folder with nothing in it.
Tree = dict[str, bytes | None]


def encoded(seed: int, image_format: str, mode: str = 'RGB', size=(24, 20)) -> bytes:
    """A small photo-like image in `image_format` (JPEG, PNG, GIF, WEBP, BMP) and `mode`."""
    if image_format == 'JPEG':
        return image_bytes(seed, size, mode=mode)
    pixels = Image.open(io.BytesIO(image_bytes(seed, size))).convert(mode)
    out = io.BytesIO()
    pixels.save(out, format=image_format)
    return out.getvalue()


def mixed_tree(*, given_splits: bool = False) -> Tree:
    """Every kind of file a user's export holds, under a wrapper folder `export/`.

    One pool (default): cats 8 images (6 JPEG, a PNG, a grayscale JPEG) + a byte-identical copy of one
    (9 in all), dogs 8 (5 JPEG, GIF, WebP, BMP), birds 5 (4 JPEG, a CMYK JPEG); skipped: a truncated JPEG,
    a CSV, `.DS_Store`, a hidden folder's image, an image in a subfolder of a class, a file outside any
    class folder, a macOS `__MACOSX/` copy; empty classes: `empty_class/` (only a readme) and `no_files/`.

    Given splits: `train/` and `test/` each hold cats and dogs; test has a copy of a train image (left out
    of test), train has `empty_class/` (only a readme), test has `birds/` only there.
    """
    tree: Tree = {}
    seed = 0

    def add(path, data):
        tree[f'export/{path}'] = data

    def images(prefix, count, fmt='JPEG'):
        nonlocal seed
        for i in range(count):
            seed += 1
            add(f'{prefix}/{i:03d}.{fmt.lower()}', encoded(seed, fmt))

    if not given_splits:
        images('cats', 6)
        add('cats/png_named.jpg', encoded(100, 'PNG'))
        add('cats/gray.jpg', encoded(101, 'JPEG', mode='L'))
        add('cats/copy_of_000.jpg', tree['export/cats/000.jpeg'])
        images('dogs', 5)
        add('dogs/anim.gif', encoded(102, 'GIF'))
        add('dogs/pic.webp', encoded(103, 'WEBP'))
        add('dogs/pic.bmp', encoded(104, 'BMP'))
        images('birds', 4)
        add('birds/cmyk.jpg', encoded(105, 'JPEG', mode='CMYK'))
        whole = encoded(106, 'JPEG', size=(64, 64))
        add('dogs/broken.jpg', whole[:len(whole) * 3 // 5])  # the header parses, the pixels do not
        add('dogs/labels.csv', b'file,label\n000.jpeg,dog\n')
        add('cats/sub/deep.jpg', encoded(107, 'JPEG'))
        add('cats/.thumbnails/t.jpg', encoded(108, 'JPEG'))
        add('.DS_Store', b'\x00\x00\x00\x01Bud1')
        add('README.txt', b'exported by a labelling tool\n')
        add('empty_class/readme.txt', b'nothing here yet\n')
        add('no_files', None)
        tree['__MACOSX/export/cats/._000.jpeg'] = b'\x00\x05\x16\x07'
    else:
        images('train/cats', 6)
        images('train/dogs', 5)
        add('train/dogs/pic.png', encoded(110, 'PNG'))
        images('test/cats', 2)
        images('test/dogs', 2)
        add('test/dogs/leak.jpg', tree['export/train/dogs/000.jpeg'])
        images('test/birds', 2)
        add('train/empty_class/readme.txt', b'nothing here yet\n')
        add('train/cats/notes.txt', b'not an image\n')
        add('val/cats/x.jpg', encoded(111, 'JPEG'))
    return tree


def separable_tree(num_classes: int, per_class: int, size: int = 32, seed: int = 0) -> Tree:
    """Classes a small network can truly learn: each its own colour, plus noise, as JPEGs."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(30, 226, (num_classes, 3))
    tree: Tree = {}
    for c in range(num_classes):
        for i in range(per_class):
            pixels = np.clip(palette[c] + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8)
            out = io.BytesIO()
            Image.fromarray(pixels).save(out, format='JPEG', quality=90)
            tree[f'class_{c}/{i:04d}.jpg'] = out.getvalue()
    return tree


def write_dir(tree: Tree, root: pathlib.Path) -> pathlib.Path:
    for path, data in tree.items():
        target = root / path
        if data is None:
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    return root


def write_tar(tree: Tree, path: pathlib.Path, *, gz: bool = False) -> pathlib.Path:
    with tarfile.open(path, 'w:gz' if gz else 'w', format=tarfile.GNU_FORMAT) as tar:
        for name, data in tree.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return path


def write_zip(tree: Tree, path: pathlib.Path) -> pathlib.Path:
    with zipfile.ZipFile(path, 'w') as archive:
        for name, data in tree.items():
            if data is None:
                archive.writestr(name + '/', b'')
            else:
                archive.writestr(name, data)
    return path


def write(tree: Tree, tmp_path: pathlib.Path, form: str) -> pathlib.Path:
    """Writes `tree` as 'dir', 'tar', 'tar.gz' or 'zip' under `tmp_path`; returns the --manual_dir value."""
    if form == 'dir':
        return write_dir(tree, tmp_path / 'tree')
    if form == 'zip':
        return write_zip(tree, tmp_path / 'tree.zip')
    return write_tar(tree, tmp_path / f'tree.{form}', gz=form == 'tar.gz')
