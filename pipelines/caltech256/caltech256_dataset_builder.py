"""TFDS builder for Caltech-256 (Griffin, Holub & Perona, 2007), read straight from the published tar."""

import dataclasses
import os

from absl import logging
from etils import epath
import tensorflow_datasets as tfds

from pipelines.caltech256 import archive
from pipelines.caltech256 import scan
from pipelines.caltech256 import splits

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
and listed in the dataset's metadata (`info.metadata['skipped']`).
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


class Builder(tfds.core.GeneratorBasedBuilder):
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

    def __init__(self, *, allow_modified_archive: bool = False, **kwargs):
        """Initializes the builder.

        Args:
            allow_modified_archive: build from a manual archive whose size or sha256 differs from the
                published one (with a warning) instead of refusing it. `tfds build` cannot pass
                builder arguments, so the environment variable CALTECH256_ALLOW_MODIFIED_ARCHIVE=1
                does the same there.
            **kwargs: for `tfds.core.GeneratorBasedBuilder` (data_dir, config, version...).
        """
        self._allow_modified_archive = (
            allow_modified_archive or os.environ.get('CALTECH256_ALLOW_MODIFIED_ARCHIVE') == '1')
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
                builder=self,
                description=_DESCRIPTION,
                features=tfds.features.FeaturesDict({
                        # Everything is stored as JPEG (originals kept, the rest converted), always 3 channels.
                        'image': tfds.features.Image(shape=(None, None, 3), encoding_format='jpeg'),
                        'label': tfds.features.ClassLabel(),  # names come from the archive's folders
                        'file_name': tfds.features.Text(),  # below the root, e.g. 001.ak47/001_0001.jpg
                }),
                supervised_keys=('image', 'label'),
                homepage=_HOMEPAGE,
                citation=_CITATION,
                metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        archive_path = self._manual_archive(dl_manager)
        if archive_path is None:
            archive_path = dl_manager.download(_URL)  # TFDS checks size and sha256 from checksums.tsv
        config = self.builder_config
        result = scan.scan(archive_path, include_class=lambda d: config.include_clutter or d != _CLUTTER)

        label_of = {class_dir: i for i, class_dir in enumerate(result.class_dirs)}
        self.info.features['label'].names = [archive.class_name(d) for d in result.class_dirs]
        assignment = splits.assign_splits(
                (splits.Candidate(f.path, label_of[f.class_dir], f.examined.sha256) for f in result.files),
                train_percent=config.train_percent, train_per_class=config.train_per_class)
        converted = {f.path: f.examined.converted for f in result.files if f.examined.converted is not None}
        self._record(result, assignment)

        members = {'train': {}, 'test': {}}
        for f in result.files:
            members[assignment.split_of[f.path]][f.path] = archive.class_name(f.class_dir)
        for split in [s for s, m in members.items() if not m]:
            # Only tiny archives get here; TFDS refuses to write an empty split, so it is left out.
            logging.warning('Caltech-256: split %r has no examples and is not written.', split)
            del members[split]
        return {
                split: self._generate_examples(archive_path, split_members, converted)
                for split, split_members in members.items()
        }

    def _generate_examples(self, archive_path, split_members: dict[str, str], converted: dict[str, bytes]):
        """Second pass over the tar: yields this split's files, converted bytes where the scan made them."""
        yielded = set()
        for item in archive.iter_archive(archive_path):
            if isinstance(item, archive.ArchiveFile) and item.path in split_members and item.path not in yielded:
                yielded.add(item.path)
                yield item.path, {
                        'image': converted.get(item.path, item.data),
                        'label': split_members[item.path],
                        'file_name': item.path,
                }

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

    def _record(self, result: scan.ScanResult, assignment: splits.Assignment) -> None:
        """Logs what was skipped, converted and duplicated, and keeps it in the dataset's metadata."""
        skipped = [{'path': p, 'reason': r} for p, r in result.skipped]
        conversions = [{'path': f.path, 'reason': f.examined.note}
                       for f in result.files if f.examined.converted is not None]
        self.info.metadata.update({
                'num_skipped': len(skipped), 'skipped': skipped,
                'num_converted': len(conversions), 'converted': conversions,
                'duplicates': assignment.duplicates,
        })
        if skipped:
            logging.warning('Caltech-256: skipped %d archive members:\n%s', len(skipped),
                            '\n'.join(f'  {s["path"]}: {s["reason"]}' for s in skipped))
        if conversions:
            logging.info('Caltech-256: converted %d images to RGB JPEG:\n%s', len(conversions),
                         '\n'.join(f'  {c["path"]}: {c["reason"]}' for c in conversions))
        for group in assignment.duplicates:
            logging.warning('Caltech-256: byte-identical files, kept in one split: %s', ', '.join(group))
