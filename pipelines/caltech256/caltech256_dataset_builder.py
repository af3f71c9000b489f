"""TFDS builder for Caltech-256 (Griffin, Holub & Perona, 2007): the class-folder builder on the published tar."""

import dataclasses
import os

from absl import logging
from etils import epath
import tensorflow_datasets as tfds

from fastclassify.pipelines.caltech256 import archive
from fastclassify.pipelines.folder import builder_base
from fastclassify.pipelines.folder import images

_URL = 'https://data.caltech.edu/records/nyy15-4j048/files/256_ObjectCategories.tar'
_HOMEPAGE = 'https://data.caltech.edu/records/nyy15-4j048'
_CLUTTER = '257.clutter'
_CITATION = """\
@techreport{griffin2007caltech256,
  title = {Caltech-256 Object Category Dataset},
  author = {Griffin, Gregory and Holub, Alex and Perona, Pietro},
  institution = {California Institute of Technology},
  number = {CNS-TR-2007-001},
  year = {2007},
  doi = {10.22002/D1.20087},
}"""
_DESCRIPTION = """\
Caltech-256: 30,607 images in 256 object categories plus a clutter category (at least 80 images each).
Splits are stratified per class and assigned from a hash of each file's bytes, so they depend only on the
archive's content; byte-identical files always share a split. Files that cannot be decoded are skipped
and listed in the dataset's metadata (`info.metadata['skipped']`); images over the pixel limit are stored
downscaled (JPEG) or skipped.
"""


@dataclasses.dataclass(eq=False)
class Caltech256Config(tfds.core.BuilderConfig):
    """Which classes to keep and how to split them.

    Attributes:
        include_clutter: keep `257.clutter` as a class.
        train_percent: train share per class, in percent (exclusive with `train_per_class`).
        train_per_class: fixed train images per class, the rest test.
    """

    include_clutter: bool = True
    train_percent: int | None = None
    train_per_class: int | None = None


class Builder(builder_base.ClassFolderBuilder):
    """Caltech-256 from `256_ObjectCategories.tar`: downloaded and checksummed, or placed in manual_dir."""

    VERSION = tfds.core.Version('1.0.0')
    RELEASE_NOTES = {'1.0.0': 'Initial release.'}
    BUILDER_CONFIGS = [
            Caltech256Config(
                    name='all', include_clutter=True, train_percent=80,
                    description='All 257 classes including clutter; per class 80% train, 20% test.'),
            Caltech256Config(
                    name='paper60', include_clutter=False, train_per_class=60,
                    description="The papers' protocol: 256 classes without clutter, 60 train per class, rest test."),
    ]
    DEFAULT_BUILDER_CONFIG_NAME = 'all'
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
    Optional: to build offline, place {archive.ARCHIVE_NAME} (1,183,006,720 bytes, from {_HOMEPAGE})
    in the manual directory (`--manual_dir`). Nothing is fetched when it is there.
    """

    def __init__(self, *, allow_modified_archive: bool = False,
                 max_image_pixels: int = images.DEFAULT_MAX_PIXELS, **kwargs):
        """Initializes the builder.

        Args:
            allow_modified_archive: build from a manual archive whose size or sha256 differs from the
                published one (with a warning) instead of refusing it. `tfds build` cannot pass
                builder arguments, so the environment variable CALTECH256_ALLOW_MODIFIED_ARCHIVE=1
                does the same there.
            max_image_pixels: `--max_image_pixels` (see `pipelines.folder.images`).
            **kwargs: for `tfds.core.GeneratorBasedBuilder` (data_dir, config, version...).
        """
        self._allow_modified_archive = (
            allow_modified_archive or os.environ.get('CALTECH256_ALLOW_MODIFIED_ARCHIVE') == '1')
        super().__init__(max_image_pixels=max_image_pixels, **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
                builder=self,
                description=_DESCRIPTION,
                features=self._image_features(),
                supervised_keys=('image', 'label'),
                homepage=_HOMEPAGE,
                citation=_CITATION,
                metadata=tfds.core.MetadataDict(),
        )

    def _source(self, dl_manager: tfds.download.DownloadManager):
        archive_path = self._manual_archive(dl_manager)
        if archive_path is None:
            archive_path = dl_manager.download(_URL)  # TFDS checks size and sha256 from checksums.tsv
        return archive_path, archive.LAYOUT, []  # fixed layout: no listing pass

    def _split_quota(self) -> dict:
        return {'train_percent': self.builder_config.train_percent,
                'train_per_class': self.builder_config.train_per_class}

    def _include_class(self, class_dir: str) -> bool:
        return self.builder_config.include_clutter or class_dir != _CLUTTER

    def _label_name(self, class_dir: str) -> str:
        return archive.class_name(class_dir)

    def _manual_archive(self, dl_manager) -> epath.Path | None:
        """The verified manual archive, or None when there is none (then it is downloaded)."""
        try:
            manual_dir = dl_manager.manual_dir
        except AssertionError:  # TFDS's signal for "no manual dir, or an empty one"
            return None
        path = epath.Path(manual_dir) / archive.ARCHIVE_NAME
        if not path.exists():
            return None
        size, sha256, matches = archive.verify_archive(path, allow_modified=self._allow_modified_archive)
        if not matches:
            logging.warning(
                    'Building from a MODIFIED archive %s (%d bytes, sha256 %s; published: %d bytes, sha256 %s) '
                    'because allow_modified_archive is set.',
                    path, size, sha256, archive.PUBLISHED_SIZE, archive.PUBLISHED_SHA256)
        self.info.metadata['archive'] = {'path': str(path), 'size': size, 'sha256': sha256,
                                         'matches_published': matches}
        return path
