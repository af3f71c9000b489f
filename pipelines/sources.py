"""TFDS sources for every dataset: prepare once (download or manual archive), read encoded records."""

import dataclasses

from absl import logging
from etils import epath
import tensorflow as tf
import tensorflow_datasets as tfds

# Imported for its side effect: registers our `caltech256` builder with TFDS.
from pipelines import caltech256  # noqa: F401  pylint: disable=unused-import
from pipelines.caltech256 import archive
from pipelines.datasets import get_dataset_spec


class DataMissingError(Exception):
    """One-line message: what is missing, where it was looked for, how to provide it."""


@dataclasses.dataclass(frozen=True)
class SourceConfig:
    """Where a dataset comes from and how it may be prepared.

    Attributes:
        dataset: `--dataset`, a key of `pipelines.datasets.DATASETS`.
        data_dir: `--data_dir`, TFDS data directory (None = TFDS default, `~/tensorflow_datasets`).
        manual_dir: `--manual_dir`, where the user placed the archive (`256_ObjectCategories.tar`).
        config: `--config`, builder config name (None = the builder's default).
        allow_modified_archive: `--allow_modified_archive`, build from a manual archive that differs
            from the published one (caltech256 only).
        download: whether preparing may fetch from the network.
    """

    dataset: str
    data_dir: str | None = None
    manual_dir: str | None = None
    config: str | None = None
    allow_modified_archive: bool = False
    download: bool = True

    def __post_init__(self):
        spec = get_dataset_spec(self.dataset)  # raises naming --dataset and the choices
        if self.allow_modified_archive and spec.tfds_name != 'caltech256':
            raise ValueError(
                    f'--allow_modified_archive applies to --dataset=caltech256 only, not --dataset={self.dataset}')
        if self.manual_dir is not None and not epath.Path(self.manual_dir).is_dir():
            raise DataMissingError(f'--manual_dir={self.manual_dir} is not a directory')


def prepare(cfg: SourceConfig) -> tfds.core.DatasetBuilder:
    """Returns a prepared builder, downloading and preparing it first when needed.

    A manual archive in `cfg.manual_dir` is used as is and nothing is fetched.

    Raises:
        ValueError: unknown `--config`, or a modified manual archive without `allow_modified_archive`.
        DataMissingError: the data is not prepared and cannot be obtained (offline, no manual archive).
    """
    spec = get_dataset_spec(cfg.dataset)
    builder_kwargs = {'allow_modified_archive': cfg.allow_modified_archive} if spec.tfds_name == 'caltech256' else {}
    builder = _make_builder(spec.tfds_name, cfg, builder_kwargs)
    if builder.is_prepared():
        return builder
    _remove_interrupted_builds(builder)
    manual_archive = _manual_archive(spec.tfds_name, cfg)
    if not cfg.download and manual_archive is None:
        raise DataMissingError(
                f'{cfg.dataset} is not prepared in {builder.data_dir} and downloading is disabled; '
                f'{_how_to_provide(spec.tfds_name, builder)}')
    try:
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=cfg.manual_dir))
    except (tfds.download.DownloadError, *_requests_errors()) as e:
        raise DataMissingError(
                f'could not download {cfg.dataset} ({type(e).__name__}: {_first_line(e)}); '
                f'{_how_to_provide(spec.tfds_name, builder)}') from e
    except archive.ModifiedArchiveError as e:
        raise ValueError(str(e)) from None
    return builder


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


def class_names(builder: tfds.core.DatasetBuilder) -> list[str]:
    """Label names in label order."""
    return list(builder.info.features['label'].names)


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
    dataset = builder.as_dataset(
            split=split,
            shuffle_files=False,  # shuffling happens after the cache, on indices
            decoders={'image': tfds.decode.SkipDecoding()},
            read_config=read_config,
    )
    return dataset.map(lambda ex: {'image': ex['image'], 'label': ex['label']},
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _make_builder(tfds_name: str, cfg: SourceConfig, builder_kwargs: dict) -> tfds.core.DatasetBuilder:
    try:
        return tfds.builder(tfds_name, config=cfg.config, data_dir=cfg.data_dir, **builder_kwargs)
    except ValueError as e:
        # TFDS says "BuilderConfig X not found"; ours names the flag and the choices.
        if cfg.config is None or 'not found' not in str(e).lower():
            raise
        choices = [c.name for c in tfds.builder_cls(tfds_name).BUILDER_CONFIGS]
        raise ValueError(
                f'--config={cfg.config!r} is not a config of {tfds_name}; valid: {", ".join(choices)}') from None


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
                'directory and pass --manual_dir=DIR, or run `python -m pipelines.prepare` where there is network')
    return (f'run `python -m pipelines.prepare --dataset={tfds_name}` where there is network and copy '
            f'{builder.data_dir} into --data_dir')


def _requests_errors() -> tuple[type[BaseException], ...]:
    try:
        import requests  # pylint: disable=import-outside-toplevel
    except ImportError:  # TFDS installs it; stay importable without it
        return ()
    return (requests.exceptions.RequestException,)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ''
