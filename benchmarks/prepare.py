"""Preparation rate and peak memory: a folder of generated JPEGs vs the Caltech-256 builder on the same files.

    python -m benchmarks.prepare --num_files=30000 --work=/tmp/prepare_bench

Writes a Caltech-256-shaped archive (`make_dummy_data.full_size_members`: 257 classes, 150-400 px photo-like
JPEGs, 5% grayscale), extracts it to a directory, then prepares each in a fresh process with
`python -m cli.prepare`: caltech256 from the archive, folder from the directory, folder from the
archive itself. Prints examples/s and the child's peak RSS for each.

    python -m benchmarks.prepare --photos=96 --work=/tmp/photo_bench [--scaled_decode=both|on|off]

Phone photos instead (issue 22): a folder of generated photo-like 12 MP JPEGs (`--photo_size`, made in
parallel on every core), prepared with and without reduced-scale decoding (the keep-as-is check at 1/8;
`off` checks every pixel), then the first epoch, the one decode into the memory cache at `--image_size`,
with and without the DCT-scaled decode, interleaved; prints images/s for each side and the mean abs
difference of the two caches' pixels.
"""

import argparse
import concurrent.futures
import io
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import time

import numpy as np

from fastclassify.pipelines.caltech256 import archive
from fastclassify.pipelines.caltech256 import make_dummy_data

# `python -m cli.prepare` with the keep-as-is check decoding every pixel (the scaled check's "before").
_PREPARE_FULL_DECODE = ('import sys; from fastclassify.pipelines.folder import images; images.CHECK_RATIO = 1; '
                        'from cli import prepare; sys.exit(prepare.main(["prepare", *sys.argv[1:]]))')
_PHOTO_CLASSES = 4


def _run(args: list[str], *, full_decode: bool = False) -> tuple[float, int]:
    """(wall seconds, peak RSS bytes) of `python -m cli.prepare ARGS` in its own process."""
    start = time.perf_counter()
    command = ['-c', _PREPARE_FULL_DECODE] if full_decode else ['-m', 'cli.prepare']
    process = subprocess.Popen([sys.executable, *command, *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f'prepare {" ".join(args)} failed with exit code {os.waitstatus_to_exitcode(status)}')
    return seconds, usage.ru_maxrss * 1024  # Linux reports KiB


def _photo(index: int, height: int, width: int) -> bytes:
    """One photo-like JPEG at quality 90 (a phone camera's setting), seeded by its index."""
    from PIL import Image  # pylint: disable=import-outside-toplevel
    from fastclassify.pipelines import synthetic  # pylint: disable=import-outside-toplevel
    out = io.BytesIO()
    Image.fromarray(synthetic.photo_like(np.random.default_rng(index), height, width)).save(
            out, format='JPEG', quality=90)
    return out.getvalue()


def write_photos(folder: pathlib.Path, count: int, height: int, width: int) -> None:
    """`count` photo-like JPEGs in `_PHOTO_CLASSES` class folders, generated on every core."""
    with concurrent.futures.ProcessPoolExecutor(os.cpu_count()) as pool:
        blobs = pool.map(_photo, range(count), [height] * count, [width] * count)
        for i, blob in enumerate(blobs):
            path = folder / f'class_{i % _PHOTO_CLASSES}' / f'IMG_{i:05d}.jpg'
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(blob)


def first_epoch(manual_dir: pathlib.Path, data_dir: pathlib.Path, image_size: int, *, scaled_jpeg: bool):
    """(seconds, images, uint8 cache) of the one decode of the prepared train split into the memory cache."""
    # pylint: disable=import-outside-toplevel
    from fastclassify.pipelines import cache as cache_lib
    from fastclassify.pipelines import pipeline
    from fastclassify.pipelines import sources
    builder = sources.prepare(sources.SourceConfig(dataset='folder', manual_dir=str(manual_dir),
                                                   data_dir=str(data_dir), download=False))
    records = sources.read_split(builder, 'train')
    decoded = pipeline.decode_for_cache(records, image_size, scaled_jpeg=scaled_jpeg)
    start = time.perf_counter()
    host = cache_lib.materialize(decoded, image_size)
    return time.perf_counter() - start, host.num_examples, np.asarray(host.array)


def photo_main(args) -> None:
    """`--photos=N`: preparation and first epoch of 12 MP JPEGs, scaled decode off and on, one run."""
    height, width = (int(v) for v in args.photo_size.lower().split('x')[::-1])
    folder = args.work / 'photos'
    start = time.perf_counter()
    write_photos(folder, args.photos, height, width)
    print(f'{args.photos} photo-like {width}x{height} JPEGs '
          f'({sum(p.stat().st_size for p in folder.rglob("*.jpg")) / 2**20:.0f} MiB) generated in '
          f'{time.perf_counter() - start:.1f} s, {os.cpu_count()} CPUs', flush=True)
    sides = {'off': False, 'on': True} if args.scaled_decode == 'both' else {
            args.scaled_decode: args.scaled_decode == 'on'}
    for name, scaled in sides.items():
        seconds, rss = _run(['--dataset=folder', f'--manual_dir={folder}', f'--data_dir={args.work / "data"}',
                             '--rebuild'], full_decode=not scaled)
        print(f'preparation, scaled decode {name:3s} {args.photos / seconds:8.2f} images/s  {seconds:7.1f} s  '
              f'peak RSS {rss / 2**20:7.0f} MiB', flush=True)
    rates, caches = {name: [] for name in sides}, {}
    for _ in range(args.repeats):  # interleaved: the shared machine's load drifts alike on both sides
        for name, scaled in sides.items():
            seconds, count, caches[name] = first_epoch(folder, args.work / 'data', args.image_size,
                                                       scaled_jpeg=scaled)
            rates[name].append(count / seconds)
    for name, values in rates.items():
        print(f'first epoch @{args.image_size} px, scaled decode {name:3s} {np.median(values):8.2f} images/s '
              f'(runs: {", ".join(f"{v:.2f}" for v in values)})')
    if len(caches) == 2:
        diff = np.abs(caches['on'].astype(np.int16) - caches['off'].astype(np.int16))
        print(f'cached pixels, on vs off: mean abs difference {diff.mean():.3f}, 99th percentile '
              f'{np.percentile(diff, 99):.0f} (0..255)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--num_files', type=int, default=30_000)
    parser.add_argument('--work', type=pathlib.Path, required=True, help='scratch folder (emptied)')
    parser.add_argument('--photos', type=int, default=0, help='N > 0: a folder of N photos instead (issue 22)')
    parser.add_argument('--photo_size', default='4032x3024', help='WIDTHxHEIGHT of the generated photos')
    parser.add_argument('--image_size', type=int, default=224, help='cache side of the first epoch')
    parser.add_argument('--scaled_decode', choices=('both', 'on', 'off'), default='both',
                        help='reduced-scale JPEG decoding on, off (every pixel), or both sides in one run')
    parser.add_argument('--repeats', type=int, default=2, help='first-epoch passes per side')
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    if args.photos:
        photo_main(args)
        return
    manual = args.work / 'manual'
    tar_path = manual / archive.ARCHIVE_NAME
    make_dummy_data.write_tar(tar_path, make_dummy_data.full_size_members(args.num_files))
    folder = args.work / 'folder'
    with tarfile.open(tar_path) as tar:
        tar.extractall(folder, filter='data')
    runs = {
            'caltech256 builder, archive': ['--dataset=caltech256', f'--manual_dir={manual}',
                                            '--allow_modified_archive'],
            'folder builder, directory': ['--dataset=folder', f'--manual_dir={folder}'],
            'folder builder, same archive': ['--dataset=folder', f'--manual_dir={tar_path}'],
    }
    print(f'{args.num_files:,} JPEGs ({tar_path.stat().st_size / 2**20:.0f} MiB), {os.cpu_count()} CPUs')
    for name, flags in runs.items():
        data_dir = args.work / f'data_{len(name)}_{abs(hash(name)) % 1000}'
        seconds, rss = _run([*flags, f'--data_dir={data_dir}'])
        print(f'{name:32s} {args.num_files / seconds:8.1f} examples/s  {seconds:7.1f} s  '
              f'peak RSS {rss / 2**20:7.0f} MiB', flush=True)


if __name__ == '__main__':
    main()
