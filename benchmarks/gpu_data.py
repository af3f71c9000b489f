"""Offline data for the GPU figures, in the real on-disk formats, prepared by the real builders.

Caltech-256-shaped: a `256_ObjectCategories.tar` of photo-like JPEGs (257 class folders) planned by
`pipelines.caltech256.make_dummy_data`, encoded on every core, and prepared by our builder
(`--allow_modified_archive`). CIFAR-100-shaped: `cifar-100-binary` files written by
`benchmarks.cifar_binary` (the tests use the same generator) and prepared by TFDS's own `cifar100` builder,
whose one network call is replaced by the extracted folder. Nothing touches the network.
"""

import concurrent.futures
import dataclasses
import json
import os
import pathlib
import shutil
import time

_READY = 'READY.json'  # written last: a folder without it is an interrupted generation, made again


@dataclasses.dataclass(frozen=True)
class PreparedData:
    """A prepared TFDS dataset under `data_dir` (pass it to train.py as `--data_dir`, with `--nodownload`).

    Attributes:
      dataset: the `--dataset` value.
      data_dir: TFDS data directory holding the prepared dataset.
      splits: examples per split.
      seconds: time spent generating and preparing now (0 when it was already there).
      reused: True when an earlier call had prepared it with the same request.
    """

    dataset: str
    data_dir: str
    splits: dict
    seconds: float
    reused: bool

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _hide_gpus_from_tensorflow() -> None:
    """Keeps this (driver) process's TensorFlow off any GPU: the measured runs need all its memory."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    try:
        tf.config.set_visible_devices([], 'GPU')
    except RuntimeError:
        pass  # already initialised without a GPU to hide


def _reuse(folder: pathlib.Path, request: dict) -> dict | None:
    marker = folder / _READY
    if marker.is_file():
        ready = json.loads(marker.read_text())
        if ready.get('request') == request:
            return ready
    shutil.rmtree(folder, ignore_errors=True)
    return None


def _mark_ready(folder: pathlib.Path, request: dict, splits: dict) -> None:
    (folder / _READY).write_text(json.dumps({'request': request, 'splits': splits}))


def _plain(splits) -> dict:
    return {str(name): int(count) for name, count in splits.items()}  # TFDS `Split` keys -> str


def caltech256(work_dir: str, num_files: int, *, seed: int = 0) -> PreparedData:
    """A Caltech-256-shaped archive of `num_files` JPEGs (150-400 px, 5% grayscale), prepared by our builder.

    `num_files` should be at least 4 per class (1,028): the builder's per-class 80/20 split then leaves
    every split some examples.
    """
    folder = pathlib.Path(work_dir) / 'caltech256'
    request = {'num_files': num_files, 'seed': seed}
    ready = _reuse(folder, request)
    data_dir = folder / 'data'
    if ready:
        return PreparedData('caltech256', str(data_dir), ready['splits'], 0.0, True)
    start = time.perf_counter()
    _hide_gpus_from_tensorflow()
    from fastclassify.pipelines import sources  # pylint: disable=import-outside-toplevel
    from fastclassify.pipelines.caltech256 import archive, make_dummy_data  # pylint: disable=import-outside-toplevel
    manual = folder / 'manual'
    plan = make_dummy_data.full_size_plan(num_files, seed=seed)
    # The JPEG encoding is the generation's cost: one process per core (a lent machine has 16).
    with concurrent.futures.ProcessPoolExecutor(os.cpu_count()) as pool:
        images = pool.map(make_dummy_data.plan_image, [a for _, a in plan if a is not None], chunksize=32)
        members = [(name, None if args is None else next(images)) for name, args in plan]
    make_dummy_data.write_tar(manual / archive.ARCHIVE_NAME, members)
    builder = sources.prepare(sources.SourceConfig(
        dataset='caltech256', data_dir=str(data_dir), manual_dir=str(manual), allow_modified_archive=True,
        download=False))
    splits = _plain(sources.split_sizes(builder))
    (manual / archive.ARCHIVE_NAME).unlink()  # prepared: the archive is not read again
    _mark_ready(folder, request, splits)
    return PreparedData('caltech256', str(data_dir), splits, time.perf_counter() - start, False)


def cifar100(work_dir: str, train: int, test: int, *, seed: int = 0) -> PreparedData:
    """CIFAR-100 binaries with `train` / `test` records, prepared by TFDS's own `cifar100` builder.

    The 100 classes are separable (a colour per class plus noise), so a run's accuracy also shows
    that it learned.
    """
    folder = pathlib.Path(work_dir) / 'cifar100'
    request = {'train': train, 'test': test, 'seed': seed}
    ready = _reuse(folder, request)
    data_dir = folder / 'data'
    if ready:
        return PreparedData('cifar100', str(data_dir), ready['splits'], 0.0, True)
    start = time.perf_counter()
    _hide_gpus_from_tensorflow()
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
    from fastclassify.pipelines import sources  # pylint: disable=import-outside-toplevel
    from benchmarks import cifar_binary  # pylint: disable=import-outside-toplevel
    extracted = cifar_binary.write_cifar100_binary(folder / 'extracted', {'train': train, 'test': test},
                                                   separable_classes=100, seed=seed)
    with cifar_binary.offline_download(extracted):
        builder = tfds.builder('cifar100', data_dir=str(data_dir))
        builder.download_and_prepare()
    splits = _plain(sources.split_sizes(builder))
    shutil.rmtree(extracted)
    _mark_ready(folder, request, splits)
    return PreparedData('cifar100', str(data_dir), splits, time.perf_counter() - start, False)

