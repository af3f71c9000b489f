"""Preparation rate and peak memory: a folder of generated JPEGs vs the Caltech-256 builder on the same files.

    python -m benchmarks.prepare --num_files=30000 --work=/tmp/prepare_bench

Writes a Caltech-256-shaped archive (`make_dummy_data.full_size_members`: 257 classes, 150-400 px photo-like
JPEGs, 5% grayscale), extracts it to a directory, then prepares each in a fresh process with
`python -m cli.prepare`: caltech256 from the archive, folder from the directory, folder from the
archive itself. Prints examples/s and the child's peak RSS for each.
"""

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import time

from fastclassify.pipelines.caltech256 import archive
from fastclassify.pipelines.caltech256 import make_dummy_data


def _run(args: list[str]) -> tuple[float, int]:
    """(wall seconds, peak RSS bytes) of `python -m cli.prepare ARGS` in its own process."""
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, '-m', 'cli.prepare', *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f'prepare {" ".join(args)} failed with exit code {os.waitstatus_to_exitcode(status)}')
    return seconds, usage.ru_maxrss * 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--num_files', type=int, default=30_000)
    parser.add_argument('--work', type=pathlib.Path, required=True, help='scratch folder (emptied)')
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
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
