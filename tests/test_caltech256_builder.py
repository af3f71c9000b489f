"""TFDS's own builder harness on the committed dummy archive (real layout, every kind of bad file)."""

import tensorflow_datasets as tfds

from fastclassify.pipelines import caltech256

# dummy_data/download/ holds the archive that the harness's mocked `dl_manager.download` returns;
# the harness's manual_dir is dummy_data/ itself, which has no archive, so the download path is exercised.
_DOWNLOADED = 'download/256_ObjectCategories.tar'


class Caltech256AllTest(tfds.testing.DatasetBuilderTestCase):
    """Default config: 5 classes incl. clutter, 80/20 per class; 23 decodable images of 27 files."""

    DATASET_CLASS = caltech256.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ['all']
    DL_DOWNLOAD_RESULT = _DOWNLOADED
    # Per class (valid, train): ak47 (5, 4), american-flag (5, 4), dog (5, 4), spider (4, 3), clutter (4, 3).
    SPLITS = {'train': 18, 'test': 5}


class Caltech256NoClutterTest(tfds.testing.DatasetBuilderTestCase):
    """The papers' protocol (no clutter, fixed train count per class), with 2 instead of 60 for tiny data."""

    DATASET_CLASS = caltech256.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = [
            caltech256.Caltech256Config(
                    name='paper2', include_clutter=False, train_per_class=2,
                    description='Test-size variant of paper60: 2 train images per class.'),
    ]
    DL_DOWNLOAD_RESULT = _DOWNLOADED
    # 4 classes: 2 train each; test = 5 + 5 + 5 + 4 valid images - 8.
    SPLITS = {'train': 8, 'test': 11}


if __name__ == '__main__':
    tfds.testing.test_main()
