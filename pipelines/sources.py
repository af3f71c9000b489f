"""TFDS sources for every dataset: prepare once (download or manual archive), read encoded records."""

import dataclasses
import hashlib
import json
import os
import re
import socket
import threading
import urllib.parse

from absl import logging
from etils import epath
import tensorflow as tf
import tensorflow_datasets as tfds

# Imported for its side effect: registers our `caltech256` builder with TFDS.
from fastclassify.pipelines import caltech256  # noqa: F401  pylint: disable=unused-import
from fastclassify.pipelines import catalog
from fastclassify.pipelines import datasets
from fastclassify.pipelines import disk_space
from fastclassify.pipelines import folder
from fastclassify.pipelines.choices import FOLDER_FORMATS
from fastclassify.pipelines.caltech256 import archive
from fastclassify.pipelines.datasets import get_dataset_spec
from fastclassify.pipelines.folder import fingerprint
from fastclassify.pipelines.folder import images
from fastclassify.pipelines.folder import members
from fastclassify.pipelines.folder_lock import FolderLock, file_on_the_way, live_readers


class DataMissingError(Exception):
    """One-line message: what is missing, where it was looked for, how to provide it."""


class PreparationDiskFullError(DataMissingError):
    """The disk filled while a dataset was prepared; the message names what was written, where, and the
    free space (the partial build is removed)."""


class DataCorruptError(DataMissingError):
    """A prepared dataset's file is truncated, corrupt or missing; the message names it and the
    command that prepares the dataset again."""


# Bytes TFRecord adds around each record (length, its CRC, the data's CRC): a split's files hold
# exactly its `num_bytes` of examples plus this per example, which makes truncation a size check.
_TFRECORD_FRAMING_BYTES = 16
_PREPARE_LOCK = '.prepare.lock'  # never 'incomplete': _remove_interrupted_builds would take it
# How long the download host (or proxy) gets to accept a connection before a download starts: a machine
# without network then fails in seconds, not after TFDS's retries (3.5 minutes); TFDS keeps those retries
# for a network that is there but flaky.
REACHABILITY_TIMEOUT_S = 5.0


@dataclasses.dataclass(frozen=True)
class SourceConfig:
    """Where a dataset comes from and how it may be prepared.

    Attributes:
        dataset: `--dataset`: a key of `pipelines.datasets.DATASETS`, `folder`, or a TFDS dataset name.
        data_dir: `--data_dir`, TFDS data directory (None = TFDS default, `~/tensorflow_datasets`).
        manual_dir: `--manual_dir`, where the user placed the archive (`256_ObjectCategories.tar`); for
            `folder`, the directory, .tar(.gz) or .zip of class folders itself.
        config: `--config`, builder config name (None = the builder's default).
        allow_modified_archive: `--allow_modified_archive`, build from a manual archive that differs
            from the published one (caltech256 only).
        download: whether preparing may fetch from the network.
        max_image_pixels: `--max_image_pixels`: when our builders prepare (caltech256, folder), an image
            over it is stored downscaled (JPEG) or skipped, each reported.
        folder_format: `--folder_format`, how `folder` images are stored: `jpeg` (others re-encoded, lossy)
            or `png` (JPEGs as given, the rest lossless PNG).
    """

    dataset: str
    data_dir: str | None = None
    manual_dir: str | None = None
    config: str | None = None
    allow_modified_archive: bool = False
    download: bool = True
    max_image_pixels: int = images.DEFAULT_MAX_PIXELS
    folder_format: str = 'jpeg'

    def __post_init__(self):
        spec = get_dataset_spec(self.dataset)  # raises naming --dataset and the choices
        if self.allow_modified_archive and spec.tfds_name != 'caltech256':
            raise ValueError(
                    f'--allow_modified_archive applies to --dataset=caltech256 only, not --dataset={self.dataset}')
        if self.folder_format not in FOLDER_FORMATS:
            raise ValueError(f'--folder_format={self.folder_format!r} is not valid; valid: {", ".join(FOLDER_FORMATS)}')
        _check_config(spec, self.config)
        if self.max_image_pixels <= 0:
            raise ValueError(f'--max_image_pixels={self.max_image_pixels} must be a positive number of pixels')
        if self.dataset == datasets.FOLDER:
            _check_folder_source(self.manual_dir)
        elif self.manual_dir is not None and not epath.Path(self.manual_dir).is_dir():
            raise DataMissingError(f'--manual_dir={self.manual_dir} is not a directory')
        if self.data_dir is not None:
            blocker = file_on_the_way(self.data_dir)
            if blocker is not None:
                itself = blocker == os.path.abspath(os.path.expanduser(self.data_dir))
                what = 'is a file' if itself else f'is under {blocker}, a file'
                raise ValueError(f'--data_dir={self.data_dir} {what}, not a folder; pass the folder that '
                                 'holds (or will hold) the prepared datasets')


def prepare(cfg: SourceConfig, *, rebuild: bool = False) -> tfds.core.DatasetBuilder:
    """Returns a prepared builder, downloading and preparing it first when needed.

    A manual archive in `cfg.manual_dir` is used as is and nothing is fetched. One preparer at a time
    per dataset folder: a second one waits for the first (and says so), then uses its result.

    Args:
        cfg: the source config.
        rebuild: prepare again even if prepared (`cli.prepare --rebuild`, after a corrupt file).

    Raises:
        ValueError: unknown `--config`, or a modified manual archive without `allow_modified_archive`.
        DataMissingError: the data is not prepared and cannot be obtained (offline, no manual archive).
        DataCorruptError: a prepared file is truncated or missing.
    """
    spec = get_dataset_spec(cfg.dataset)
    builder_kwargs = {'allow_modified_archive': cfg.allow_modified_archive} if spec.tfds_name == 'caltech256' else {}
    if rebuild:
        # TFDS reads the metadata when it makes the builder: damaged metadata goes first, unread.
        _remove_damaged_metadata(spec.tfds_name, cfg)
    else:
        check_metadata(cfg)
    builder = _make_builder(spec.tfds_name, cfg, builder_kwargs)
    rebuild = rebuild or _source_changed(builder, cfg)
    if builder.is_prepared() and not rebuild:
        check_files(builder, cfg)
        return builder
    with _preparation_lock(os.path.dirname(os.fspath(builder.data_dir)), cfg):
        # Whoever held the lock may have just prepared it: a fresh builder reads what is on disk now.
        builder = _make_builder(spec.tfds_name, cfg, builder_kwargs)
        if builder.is_prepared():
            if not rebuild:
                return builder
            _refuse_if_read(os.fspath(builder.data_dir), cfg)
            logging.warning('--rebuild: removing %s and preparing %s again.', builder.data_dir, cfg.dataset)
            epath.Path(builder.data_dir).rmtree()
            builder = _make_builder(spec.tfds_name, cfg, builder_kwargs)
        # Holding the lock, any `incomplete` build here is one whose writer is gone.
        _remove_interrupted_builds(builder)
        manual_archive = _manual_archive(spec.tfds_name, cfg)
        if not cfg.download and manual_archive is None:
            raise DataMissingError(
                    f'{cfg.dataset} is not prepared in {builder.data_dir} and downloading is disabled; '
                    f'{_how_to_provide(spec.tfds_name, builder)}')
        if manual_archive is None:
            unreachable = unreachable_host(_download_urls(builder))
            if unreachable is not None:
                raise DataMissingError(
                        f'could not download {cfg.dataset} ({unreachable}); '
                        f'{_how_to_provide(spec.tfds_name, builder)}')
        try:
            builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=cfg.manual_dir))
        except (tfds.download.DownloadError, *_requests_errors()) as e:
            raise DataMissingError(
                    f'could not download {cfg.dataset} ({type(e).__name__}: {_first_line(e)}); '
                    f'{_how_to_provide(spec.tfds_name, builder)}') from e
        except archive.ModifiedArchiveError as e:
            raise ValueError(str(e)) from None
        except Exception as e:  # pylint: disable=broad-except  (TFDS wraps ENOSPC in RuntimeError)
            if not disk_space.is_disk_full(e):
                raise
            message = _disk_full_message(builder, cfg, e)
            _remove_interrupted_builds(builder)  # still holding the lock: the partial build is ours
            raise PreparationDiskFullError(message) from None
    return builder


def _refuse_if_read(version_dir: str, cfg: SourceConfig) -> None:
    """A prepared dataset is never deleted under a live reader (a train.py reading it, e.g. with
    --cache=none): raises naming the readers."""
    readers = live_readers(os.path.dirname(version_dir))
    if readers:
        raise DataMissingError(
                f'{version_dir} is in use by {", ".join(readers)} (a run reading {cfg.dataset}); preparing it '
                'again would delete it under that run: wait for the run to end or stop it, then run this '
                'command again')


def _disk_full_message(builder: tfds.core.DatasetBuilder, cfg: SourceConfig, error: BaseException) -> str:
    """What was being written (the file TFDS names, else the dataset folder), where, and the free space."""
    folder = os.path.dirname(os.fspath(builder.data_dir))
    text = ' '.join(str(e) for e in _error_chain(error))
    match = re.search(re.escape(folder) + r'[^\s;:,\'"]*', text)
    written = os.path.basename(match.group(0)) if match and match.group(0) != folder else 'its records'
    size = ''
    if cfg.dataset == datasets.FOLDER:  # its records take about what its images take
        source_bytes = fingerprint.of(cfg.manual_dir, max_pixels=cfg.max_image_pixels)['bytes']
        size = f' (the images in --manual_dir take {disk_space.human_bytes(source_bytes)})'
    free = disk_space.human_bytes(disk_space.free_bytes(folder))
    return (f'the disk holding {folder} is full: preparing {cfg.dataset} failed writing {written}{size}; '
            f'{free} is free there with the partial build removed; free space there or pass another '
            '--data_dir, then run the same command again')


def _error_chain(error: BaseException):
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


class _preparation_lock:  # pylint: disable=invalid-name  # used as a `with` statement
    """Holds the dataset folder's preparation lock (an OS lock: a killed preparer releases it)."""

    def __init__(self, folder: str, cfg: SourceConfig):
        self._lock = FolderLock(os.path.join(folder, _PREPARE_LOCK))
        self._folder, self._cfg = folder, cfg

    def __enter__(self):
        try:
            os.makedirs(self._folder, exist_ok=True)
            self._lock.acquire(on_wait=lambda holder: logging.warning(
                    'Waiting for %s, which is preparing %s in %s; this run uses its result.',
                    holder, self._cfg.dataset, self._folder))
        except OSError as e:
            raise DataMissingError(
                    f'--data_dir={self._cfg.data_dir or "~/tensorflow_datasets"}: cannot prepare '
                    f'{self._cfg.dataset} in {self._folder} ({e.strerror or e})') from None
        return self

    def __exit__(self, *exc):
        self._lock.release()


# What TFDS writes beside the records of a prepared dataset, and reads before anything else.
_METADATA_JSON = ('dataset_info.json', 'features.json', 'metadata.json')


def prepared_dir(tfds_name: str, cfg: SourceConfig) -> str:
    """Where `cfg`'s dataset is (or will be) prepared, found without making a builder (which reads its
    metadata, and fails on a damaged file before anything could name it)."""
    if tfds_name == datasets.FOLDER_TFDS_NAME:
        cls, config = folder.Builder, folder.config_for(cfg.manual_dir).name
    else:
        cls = tfds.builder_cls(tfds_name)
        config = cfg.config or (cls.BUILDER_CONFIGS[0].name if cls.BUILDER_CONFIGS else None)
    root = os.path.expanduser(cfg.data_dir or os.environ.get('TFDS_DATA_DIR') or '~/tensorflow_datasets')
    return os.path.join(root, cls.name, *([config] if config else []), str(cls.VERSION))


def damaged_metadata(version_dir: str) -> str | None:
    """What is wrong with a prepared dataset's metadata ('PATH is empty'), or None when it reads.

    Every JSON file must parse, and each class-label feature's `NAME.labels.txt` must hold as many
    names as its class count: a missing or short file is what gives a model the wrong outputs.
    """
    if not os.path.isdir(version_dir) or not any('.tfrecord' in n for n in os.listdir(version_dir)):
        return None  # nothing prepared there (or a build in progress): not damaged
    parsed = {}
    for name in _METADATA_JSON:
        path = os.path.join(version_dir, name)
        if not os.path.exists(path):
            if name == 'dataset_info.json':
                return f'{path} is missing'
            continue
        try:
            with open(path, encoding='utf-8') as f:
                parsed[name] = json.load(f)
        except (OSError, ValueError) as e:
            empty = os.path.exists(path) and os.path.getsize(path) == 0
            return f'{path} is {"empty" if empty else f"unreadable ({_first_line(e)[:80]})"}'
    features = ((parsed.get('features.json') or {}).get('featuresDict') or {}).get('features') or {}
    for key, feature in features.items():
        count = (feature.get('classLabel') or {}).get('numClasses') if isinstance(feature, dict) else None
        if count is None:
            continue
        path = os.path.join(version_dir, f'{key}.labels.txt')
        if not os.path.exists(path):
            return f'{path} is missing ({count} class names expected)'
        try:
            with open(path, encoding='utf-8') as f:
                names = [line for line in f.read().split('\n') if line]
        except (OSError, ValueError) as e:
            return f'{path} is unreadable ({_first_line(e)[:80]})'
        if len(names) != int(count):
            return f'{path} holds {len(names)} class names, {count} expected'
    return None


def check_metadata(cfg: SourceConfig) -> None:
    """Raises DataCorruptError naming a damaged or missing metadata file of `cfg`'s prepared dataset."""
    version_dir = prepared_dir(get_dataset_spec(cfg.dataset).tfds_name, cfg)
    damage = damaged_metadata(version_dir)
    if damage is not None:
        raise DataCorruptError(f'the metadata of {cfg.dataset} prepared in {version_dir} is damaged: '
                               f'{damage}; {reprepare_command(cfg)}')


def _remove_damaged_metadata(tfds_name: str, cfg: SourceConfig) -> None:
    """`--rebuild` over damaged metadata: the prepared folder goes (under the lock) without being read."""
    version_dir = prepared_dir(tfds_name, cfg)
    if damaged_metadata(version_dir) is None:
        return
    with _preparation_lock(os.path.dirname(version_dir), cfg):
        damage = damaged_metadata(version_dir)
        if damage is not None:
            _refuse_if_read(version_dir, cfg)
            logging.warning('--rebuild: %s; removing %s and preparing %s again.', damage, version_dir,
                            cfg.dataset)
            epath.Path(version_dir).rmtree()


def check_files(builder: tfds.core.DatasetBuilder, cfg: SourceConfig) -> None:
    """Raises DataCorruptError naming a split file that is missing or truncated (sizes only: cheap).

    A flipped byte keeps the size; TFRecord's CRC catches it when read (`explain_data_loss`).
    """
    for name, split in builder.info.splits.items():
        paths = [os.path.join(os.fspath(builder.data_dir), f) for f in split.filenames]
        missing = [p for p in paths if not os.path.exists(p)]
        if missing:
            raise DataCorruptError(f'{missing[0]} is missing ({name} split of {cfg.dataset}); '
                                   f'{reprepare_command(cfg)}')
        expected = int(split.num_bytes) + _TFRECORD_FRAMING_BYTES * split.num_examples
        if split.num_bytes and sum(os.path.getsize(p) for p in paths) != expected:
            bad = _unreadable_file(paths) or ', '.join(paths)
            raise DataCorruptError(f'{bad} is truncated or corrupt ({name} split of {cfg.dataset} holds '
                                   f'{sum(os.path.getsize(p) for p in paths):,} bytes, {expected:,} '
                                   f'expected); {reprepare_command(cfg)}')


def explain_data_loss(cfg: SourceConfig, error: BaseException) -> str | None:
    """For a `tf.errors.DataLossError` met while reading: one line naming the corrupt file of the
    prepared dataset and the command that prepares it again; None when no file of it is corrupt
    (the loss is elsewhere, e.g. in a cache)."""
    try:
        spec = get_dataset_spec(cfg.dataset)
        builder_kwargs = {'allow_modified_archive': cfg.allow_modified_archive} if spec.tfds_name == 'caltech256' else {}
        builder = _make_builder(spec.tfds_name, cfg, builder_kwargs)
        paths = [os.path.join(os.fspath(builder.data_dir), f)
                 for split in builder.info.splits.values() for f in split.filenames]
    except Exception:  # pylint: disable=broad-except  # explaining must never hide the first error
        return None
    bad = _unreadable_file(paths)
    if bad is None:
        return None
    return f'{bad} is corrupt ({_first_line(error)[:120]}); {reprepare_command(cfg)}'


def reprepare_command(cfg: SourceConfig) -> str:
    """The command that prepares `cfg`'s dataset again, replacing what is there."""
    parts = ['python -m cli.prepare', f'--dataset={cfg.dataset}']
    parts += [f'--data_dir={cfg.data_dir}'] if cfg.data_dir else []
    parts += [f'--manual_dir={cfg.manual_dir}'] if cfg.manual_dir else []
    parts += [f'--config={cfg.config}'] if cfg.config else []
    parts += ['--allow_modified_archive'] if cfg.allow_modified_archive else []
    return f'prepare it again with `{" ".join(parts + ["--rebuild"])}`'


def _unreadable_file(paths: list[str]) -> str | None:
    """The first of `paths` whose TFRecords do not read back (truncated, bad CRC, missing)."""
    for path in paths:
        try:
            for _ in tf.data.TFRecordDataset(path):
                pass
        except (tf.errors.DataLossError, tf.errors.NotFoundError, tf.errors.OutOfRangeError):
            return path
    return None


def _remove_interrupted_builds(builder: tfds.core.DatasetBuilder) -> None:
    """Removes what a killed preparation left; TFDS builds in `*incomplete*` folders it renames when done."""
    parent = epath.Path(builder.data_dir).parent
    if not parent.exists():
        return
    for leftover in parent.iterdir():
        if 'incomplete' in leftover.name and leftover.is_dir():
            logging.warning('A previous preparation of %s was interrupted (%s is incomplete): '
                            'removing it and preparing again.', builder.name, leftover)
            leftover.rmtree()


def split_sizes(builder: tfds.core.DatasetBuilder) -> dict[str, int]:
    """Examples per split of a prepared builder, e.g. `{'train': 24485, 'test': 6122}`."""
    return {name: info.num_examples for name, info in builder.info.splits.items()}


def data_identity(builder: tfds.core.DatasetBuilder) -> dict:
    """What makes a prepared dataset this one, read from its metadata (nothing is read from the records):
    name, config and version, examples and bytes per split, the class names, and for a folder the
    fingerprint of its source (names, sizes, mtimes). A resume compares it (training/run_dir.py)."""
    names = class_names(builder)
    source = ((builder.info.metadata or {}).get('fingerprint') or {}).get('digest')
    return {
        'dataset': f'{builder.name}/{builder.builder_config.name if builder.builder_config else ""}',
        'version': str(builder.version),
        'examples': split_sizes(builder),
        'bytes': {name: int(info.num_bytes) for name, info in builder.info.splits.items()},
        'classes': f'{len(names)} names, sha256 {hashlib.sha256(chr(10).join(names).encode()).hexdigest()[:16]}',
        'source_fingerprint': source[:16] if source else None,
    }


def class_names(builder: tfds.core.DatasetBuilder) -> list[str]:
    """Label names in label order."""
    return list(builder.info.features[catalog.feature_keys(builder.info, builder.name)[1]].names)


def dataset_spec(cfg: SourceConfig) -> datasets.DatasetSpec:
    """The facts of `cfg`'s dataset under its `--config`, `--data_dir` and `--manual_dir`.

    A seed dataset's come from the table; a TFDS dataset's from its builder (nothing is downloaded); a
    folder's classes exist only once its images have been read, so it is prepared here (once; later
    calls find it prepared and only check its fingerprint).
    """
    spec = get_dataset_spec(cfg.dataset)
    if cfg.dataset in datasets.DATASETS:
        return dataclasses.replace(spec, num_classes=datasets.num_classes(spec, cfg.config))
    if cfg.dataset != datasets.FOLDER:
        check_metadata(cfg)  # the catalog reads it
        return datasets.catalog_spec(cfg.dataset, cfg.config, cfg.data_dir)
    builder = prepare(cfg)
    sizes = split_sizes(builder)
    if 'test' not in sizes:
        raise ValueError(f'--manual_dir={cfg.manual_dir} gives no test examples (every class is too small '
                         'to split, or test/ is empty); add images')
    config_name = builder.builder_config.name
    return dataclasses.replace(spec, name=f'{datasets.FOLDER}-{config_name}',
                               num_classes=len(class_names(builder)),
                               data_version=builder.info.metadata['fingerprint']['digest'][:12])


def train_test_splits(builder: tfds.core.DatasetBuilder, spec: datasets.DatasetSpec) -> tuple[str, str]:
    """The (train, test) split names of a prepared builder: the table's, or read from a TFDS builder."""
    if spec.name in datasets.DATASETS or spec.tfds_name == datasets.FOLDER_TFDS_NAME:
        return spec.train_split, spec.test_split
    return catalog.train_test_splits(spec.name, split_sizes(builder))


def read_split(builder: tfds.core.DatasetBuilder, split: str, *,
               input_context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
    """Reads a split as `{'image': encoded bytes (tf.string), 'label': tf.int64}`, in a fixed order.

    Images stay encoded so the pipeline decodes each exactly once, after its own choices (resize, cache).

    Args:
        builder: a prepared builder.
        split: a split name or TFDS slice, e.g. `'train[:90%]'`.
        input_context: shards files across input pipelines under a `tf.distribute` strategy.
    """
    read_config = tfds.ReadConfig(input_context=input_context)
    image, label = catalog.feature_keys(builder.info, builder.name)  # 'image', 'label' for most
    dataset = builder.as_dataset(
            split=split,
            shuffle_files=False,  # shuffling happens after the cache, on indices
            decoders={image: tfds.decode.SkipDecoding()},
            read_config=read_config,
    )
    return dataset.map(lambda ex: {'image': ex[image], 'label': ex[label]},
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _make_builder(tfds_name: str, cfg: SourceConfig, builder_kwargs: dict) -> tfds.core.DatasetBuilder:
    if tfds_name == datasets.FOLDER_TFDS_NAME:
        # One builder config per source path; the data lives in class_folders/NAME-HASH/ under data_dir.
        return folder.Builder(config=folder.config_for(cfg.manual_dir, image_format=cfg.folder_format),
                              data_dir=cfg.data_dir,
                              max_image_pixels=cfg.max_image_pixels)
    if tfds_name == 'caltech256':
        builder_kwargs = {**builder_kwargs, 'max_image_pixels': cfg.max_image_pixels}
    try:
        return tfds.builder(tfds_name, config=cfg.config, data_dir=cfg.data_dir, **builder_kwargs)
    except ValueError as e:
        # TFDS says "BuilderConfig X not found"; ours names the flag and the choices.
        if cfg.config is None or 'not found' not in str(e).lower():
            raise
        choices = [c.name for c in tfds.builder_cls(tfds_name).BUILDER_CONFIGS]
        raise ValueError(
                f'--config={cfg.config!r} is not a config of {tfds_name}; valid: {", ".join(choices)}') from None


def _check_config(spec: datasets.DatasetSpec, config: str | None) -> None:
    """`--config` must name a builder config of the dataset, also where nothing reads it yet
    (`--synthetic_data`): a flag that is silently ignored reads as a setting that took effect."""
    if config is None:
        return
    if spec.name == datasets.FOLDER:
        raise ValueError(f'--config={config!r} does not apply to --dataset=folder (a folder is prepared as '
                         'it is); drop --config')
    if spec.name in datasets.DATASETS:
        choices = list(spec.config_classes)
    else:
        choices = [c.name for c in tfds.builder_cls(spec.tfds_name).BUILDER_CONFIGS]
    if config not in choices:
        valid = f'valid: {", ".join(choices)}' if choices else f'{spec.name} has no builder configs; drop --config'
        raise ValueError(f'--config={config!r} is not a config of {spec.name}; {valid}')


def _check_folder_source(manual_dir: str | None) -> None:
    """`--dataset=folder` reads `--manual_dir`: it must be a directory or an archive we read."""
    if manual_dir is None:
        raise ValueError('--dataset=folder needs --manual_dir=PATH: a directory, .tar(.gz) or .zip laid out '
                         'as CLASS/IMAGE or train/CLASS/IMAGE + test/CLASS/IMAGE')
    if not os.path.exists(manual_dir):
        raise ValueError(f'--manual_dir={manual_dir} does not exist; --dataset=folder needs a directory, '
                         '.tar(.gz) or .zip of class folders')
    try:
        members.kind(manual_dir)
    except ValueError as e:
        raise ValueError(f'--manual_dir={manual_dir}: {e}') from None


def _source_changed(builder: tfds.core.DatasetBuilder, cfg: SourceConfig) -> bool:
    """Whether a prepared folder's source (names, sizes, mtimes) or pixel limit changed since; says so."""
    if cfg.dataset != datasets.FOLDER or not builder.is_prepared():
        return False
    recorded = (builder.info.metadata or {}).get('fingerprint') or {}
    now = fingerprint.of(builder.builder_config.source, max_pixels=cfg.max_image_pixels)
    if recorded.get('digest') == now['digest']:
        return False
    # Printed, not logged: train.py resolves a folder's classes while the start-up log is held back.
    print(f'--manual_dir={cfg.manual_dir} changed since it was prepared into {builder.data_dir} '
          f'({fingerprint.describe_change(recorded, now)}): preparing it again', flush=True)
    return True


def _manual_archive(tfds_name: str, cfg: SourceConfig) -> epath.Path | None:
    """The manually placed archive, or None. A named manual_dir without it is an error, never a download."""
    if cfg.manual_dir is None:
        return None
    if tfds_name != 'caltech256':
        return epath.Path(cfg.manual_dir)  # TFDS looks there for the files named in its checksums
    path = epath.Path(cfg.manual_dir) / archive.ARCHIVE_NAME
    if not path.exists():
        raise DataMissingError(
                f'{archive.ARCHIVE_NAME} not found in --manual_dir={cfg.manual_dir}; '
                f'download it from https://data.caltech.edu/records/nyy15-4j048 and place it there')
    return path


def _how_to_provide(tfds_name: str, builder: tfds.core.DatasetBuilder) -> str:
    if tfds_name == 'caltech256':
        return (f'place {archive.ARCHIVE_NAME} (from https://data.caltech.edu/records/nyy15-4j048) in a '
                'directory and pass --manual_dir=DIR, or run `python -m cli.prepare` where there is network')
    files = _download_files(builder)
    have = (f'if you have {", ".join(files)} (from {", ".join(files.values())}), put it in a folder and pass '
            '--manual_dir=FOLDER; else ' if files else '')
    return (f'{have}run `python -m cli.prepare --dataset={tfds_name} --data_dir=DIR` where there is network, '
            'copy DIR here and pass --data_dir=DIR')


def _download_files(builder: tfds.core.DatasetBuilder) -> dict[str, str]:
    """{file name TFDS looks for in --manual_dir: its URL} for the builder's downloads; {} when unknown."""
    try:
        infos = dict(builder.url_infos or {})
    except Exception:  # pylint: disable=broad-except  # no checksums file
        return {}
    return {(getattr(info, 'filename', None) or url.rstrip('/').rsplit('/', 1)[-1]): url
            for url, info in infos.items()}


def _download_urls(builder: tfds.core.DatasetBuilder) -> list[str]:
    """The URLs the builder's checksums file lists (what TFDS will fetch); [] when it lists none."""
    try:
        return list(builder.url_infos or {})
    except Exception:  # pylint: disable=broad-except  # no checksums file: nothing to check, TFDS decides
        return []


def unreachable_host(urls: list[str], timeout_s: float = REACHABILITY_TIMEOUT_S) -> str | None:
    """'HOST:PORT is unreachable (why)' for the first host of `urls` that accepts no TCP connection within
    `timeout_s` (name lookup included), or None when every host answers.

    Behind a proxy ($https_proxy, $http_proxy, $all_proxy) the proxy is what must answer.
    """
    hosts = []
    for url in urls:
        parsed = urllib.parse.urlsplit(url)
        proxy = _proxy_for(parsed.scheme)
        target = urllib.parse.urlsplit(proxy) if proxy else parsed
        if target.hostname:
            port = target.port or (443 if target.scheme == 'https' else 80)
            hosts.append((target.hostname, port))
    for host, port in dict.fromkeys(hosts):
        error = _connect_error(host, port, timeout_s)
        if error is not None:
            return f'{host}:{port} is unreachable: {error}'
    return None


def _proxy_for(scheme: str) -> str | None:
    for name in (f'{scheme}_proxy', 'all_proxy'):
        value = os.environ.get(name) or os.environ.get(name.upper())
        if value:
            return value if '://' in value else f'http://{value}'
    return None


def _connect_error(host: str, port: int, timeout_s: float) -> str | None:
    """Why a TCP connection to host:port failed within `timeout_s`, or None when it was made.

    In a thread: the socket timeout does not bound the name lookup, which can hang on a dead resolver.
    """
    result = []

    def connect():
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
            result.append(None)
        except OSError as e:
            result.append(f'{type(e).__name__}: {e.strerror or e}')

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return result[0] if result else f'no answer within {timeout_s:g} s'


def _requests_errors() -> tuple[type[BaseException], ...]:
    try:
        import requests  # pylint: disable=import-outside-toplevel
    except ImportError:  # TFDS installs it; stay importable without it
        return ()
    return (requests.exceptions.RequestException,)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ''
