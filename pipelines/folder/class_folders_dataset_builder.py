"""TFDS builder for a user's own class folders: a directory, .tar(.gz) or .zip (`--dataset=folder`)."""

import dataclasses
import hashlib
import os
import re

import tensorflow_datasets as tfds

from fastclassify.pipelines.folder import builder_base
from fastclassify.pipelines.folder import fingerprint
from fastclassify.pipelines.folder import layout as layout_lib
from fastclassify.pipelines.folder import members

_DESCRIPTION = """\
Images from a tree of class folders (`CLASS/IMAGE`, or `train/CLASS/IMAGE` + `test/CLASS/IMAGE`), read in
place from a directory, tar or zip. The label is the class folder's name, labels in sorted order. One pool
of files is split per class by content hash; given train/test folders are kept. Skipped files, converted
images, byte-identical groups, empty class folders and a fingerprint of the source are in `info.metadata`.
"""


@dataclasses.dataclass(eq=False)
class FolderConfig(tfds.core.BuilderConfig):
    """One source tree.

    Attributes:
        source: absolute path of the directory or archive.
        train_percent: train share per class, in percent, for a tree without train/ and test/.
        image_format: `--folder_format`: 'jpeg' stores every image as JPEG (other formats re-encoded at quality
            95: small, lossy); 'png' keeps JPEGs as given and stores the rest as PNG (exact, larger).
    """

    source: str = ''
    train_percent: int = 80
    image_format: str = 'jpeg'


def config_for(source: str, *, train_percent: int = 80, image_format: str = 'jpeg') -> FolderConfig:
    """The config of `source`: named after its file name and a hash of its absolute path, so each folder
    is prepared into its own directory under `--data_dir` (`class_folders/NAME-HASH/1.0.0`; NAME-HASH-png
    for `--folder_format=png`)."""
    path = os.path.abspath(os.path.expanduser(source)).rstrip('/')
    stem = re.sub(r'[^A-Za-z0-9_.-]+', '_', os.path.basename(path))[:40] or 'root'
    suffix = '' if image_format == 'jpeg' else f'-{image_format}'
    return FolderConfig(name=f'{stem}-{hashlib.sha256(path.encode()).hexdigest()[:10]}{suffix}', source=path,
                        train_percent=train_percent, image_format=image_format,
                        description=f'Class folders read from {path}.')


class Builder(builder_base.ClassFolderBuilder):
    """Class folders from a directory or an archive; see `builder_base.ClassFolderBuilder`."""

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
                builder=self,
                description=_DESCRIPTION,
                features=self._image_features(),
                supervised_keys=('image', 'label'),
                metadata=tfds.core.MetadataDict(),
        )

    def _source(self, dl_manager: tfds.download.DownloadManager):
        source = self.builder_config.source
        if not source:
            raise ValueError('the class_folders builder needs a FolderConfig naming its source '
                             '(python train.py --dataset=folder --manual_dir=PATH)')
        # The fingerprint is taken before the read: a change during preparation shows on the next run.
        self.info.metadata['fingerprint'] = fingerprint.of(source, max_pixels=self._max_pixels)
        self.info.metadata['source'] = source
        entries = members.list_entries(source)
        layout = layout_lib.detect(entries, source)
        self.info.metadata['layout'] = layout.describe()
        return source, layout, entries

    def _split_quota(self) -> dict:
        return {'train_percent': self.builder_config.train_percent}
