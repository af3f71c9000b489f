"""CLI: prepare a dataset without training (e.g. on a login node before a GPU job).

    python -m cli.prepare --dataset=caltech256 [--data_dir=DIR] [--manual_dir=DIR] [--config=NAME]
    python -m cli.prepare --dataset=folder --manual_dir=DIR_TAR_OR_ZIP [--max_image_pixels=N]
    python -m cli.prepare --dataset=oxford_flowers102   (any TFDS image-classification name)
                                [--allow_modified_archive] [--nodownload] [--rebuild]

`--rebuild` prepares again over a prepared dataset (after a truncated or corrupt file was reported).
"""

import sys

from absl import flags
from absl import logging

from fastclassify.pipelines import sources
from fastclassify.pipelines.folder import images
from fastclassify.pipelines.datasets import DATASETS
from fastclassify.pipelines.report import report


def define_flags(flag_values: flags.FlagValues) -> None:
    """Defines the source flags on `flag_values` (train.py defines the same names with the same defaults,
    which tests/test_defaults.py checks against `SourceConfig`)."""
    flags.DEFINE_string('dataset', None, f'Dataset to prepare: {", ".join(sorted(DATASETS))}, folder (with '
                        '--manual_dir), or a TFDS image-classification name.', flag_values=flag_values)
    flags.DEFINE_string('data_dir', None, 'TFDS data directory (default: ~/tensorflow_datasets).',
                        flag_values=flag_values)
    flags.DEFINE_string('manual_dir', None,
                        'Directory holding a manually downloaded archive (256_ObjectCategories.tar); '
                        'nothing is fetched when it is there. For --dataset=folder: the directory, '
                        '.tar(.gz) or .zip of CLASS/IMAGE or train|test/CLASS/IMAGE.', flag_values=flag_values)
    flags.DEFINE_string('config', None, 'Builder config, e.g. caltech256: all (default) or paper60.',
                        flag_values=flag_values)
    flags.DEFINE_bool('allow_modified_archive', False,
                      'Build from a manual archive whose size or sha256 differs from the published one.',
                      flag_values=flag_values)
    flags.DEFINE_bool('download', True, 'Allow fetching from the network when the data is not prepared.',
                      flag_values=flag_values)
    flags.DEFINE_integer('max_image_pixels', images.DEFAULT_MAX_PIXELS,
                         'caltech256 and folder: an image over this many pixels is stored downscaled '
                         '(JPEG) or skipped, each reported.', flag_values=flag_values)
    flags.DEFINE_string('folder_format', 'jpeg', 'folder: how images are stored once prepared: jpeg (JPEGs as '
                        'given, other formats re-encoded at quality 95: small, lossy) | png (JPEGs as given, the '
                        'rest lossless PNG: exact, several times larger).', flag_values=flag_values)


def source_config_from_flags(flag_values: flags.FlagValues) -> sources.SourceConfig:
    """Turns parsed flags into the frozen config, once; validation happens in `SourceConfig`."""
    if flag_values.dataset is None:
        raise ValueError(f'--dataset is required; valid: {", ".join(sorted(DATASETS))}, folder, or a TFDS '
                         'image-classification dataset name')
    return sources.SourceConfig(
            dataset=flag_values.dataset,
            data_dir=flag_values.data_dir,
            manual_dir=flag_values.manual_dir,
            config=flag_values.config,
            allow_modified_archive=flag_values.allow_modified_archive,
            download=flag_values.download,
            max_image_pixels=flag_values.max_image_pixels,
            folder_format=flag_values.folder_format,
    )


def main(argv: list[str] | None = None) -> int:
    """Parses flags, prepares the dataset, prints the report; bad input exits 2 with one line on stderr."""
    argv = sys.argv if argv is None else argv
    # A private FlagValues: importing this module (tests, train.py) never touches the global FLAGS.
    flag_values = flags.FlagValues()
    define_flags(flag_values)
    flags.DEFINE_bool('rebuild', False, 'Prepare again even if prepared (replaces a corrupt dataset).',
                      flag_values=flag_values)
    if any(arg in ('--help', '-h', '--helpfull') for arg in argv[1:]):  # a private FlagValues has no absl --help
        print(__doc__ + '\n' + flag_values.get_help())
        return 0
    try:
        flag_values(argv)
    except flags.Error as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    logging.set_verbosity(logging.INFO)
    try:
        builder = sources.prepare(source_config_from_flags(flag_values), rebuild=flag_values.rebuild)
    except (ValueError, sources.DataMissingError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    print(report(builder))
    return 0


if __name__ == '__main__':
    sys.exit(main())
