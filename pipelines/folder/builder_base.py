"""The TFDS builder every tree of class folders shares: one scan, content-hash or given splits, records."""

import abc
import collections
import inspect
import logging as std_logging

from absl import logging
from etils import epath
import tensorflow_datasets as tfds

from fastclassify.pipelines.folder import images
from fastclassify.pipelines.folder import layout as layout_lib
from fastclassify.pipelines.folder import members
from fastclassify.pipelines.folder import scan
from fastclassify.pipelines.folder import splits


class _DropMessage(std_logging.Filter):

    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: std_logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


class NoImagesError(ValueError):
    """The source holds no class folder with a decodable image."""


class ClassFolderBuilder(tfds.core.GeneratorBasedBuilder):
    """Builds `{image: RGB JPEG, label: class folder, file_name}` from a directory, tar or zip of class folders.

    Every file is examined once (`images.examine`): RGB JPEGs are stored as given, other formats as RGB
    JPEGs, images over the pixel limit downscaled (JPEG) or skipped; bad files are skipped and listed in
    `info.metadata['skipped']`; class folders with no usable image are listed in
    `info.metadata['empty_classes']` and are not classes. One pool of files is split per class by the
    sha256 of each file (byte-identical files share a split); given `train/` + `test/` folders are kept,
    except that a test file byte-identical to a train file stays in train only.

    Subclasses say where the source is, its layout, which classes to keep, how labels are named and the
    split quota.
    """

    VERSION = tfds.core.Version('1.0.0')
    RELEASE_NOTES = {'1.0.0': 'Initial release.'}

    # TFDS finds checksums.tsv, dummy_data/ and its metadata files beside a builder's module, which it
    # derives from the top-level package's folder; fastclassify maps its sub-packages to other folders
    # (pyproject's package-dir; the checkout's pipelines/), so each builder says where it really is.
    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        return epath.Path(inspect.getfile(cls))

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.pkg_dir_path = epath.Path(inspect.getfile(cls)).parent

    def __init__(self, *, max_image_pixels: int = images.DEFAULT_MAX_PIXELS, **kwargs):
        """Initializes the builder.

        Args:
            max_image_pixels: `--max_image_pixels`: images over it are stored downscaled (JPEG) or skipped.
            **kwargs: for `tfds.core.GeneratorBasedBuilder` (data_dir, config, version...).
        """
        if max_image_pixels <= 0:
            raise ValueError(f'--max_image_pixels={max_image_pixels} must be positive')
        self._max_pixels = max_image_pixels
        # A config per source folder is how this builder works, not news: TFDS's warning about a "custom data
        # configuration" (with the config's full repr) is dropped.
        quiet = _DropMessage('Using custom data configuration')
        logging.get_absl_logger().addFilter(quiet)
        try:
            super().__init__(**kwargs)
        finally:
            logging.get_absl_logger().removeFilter(quiet)

    def _lossless(self) -> bool:
        """Whether images that are not JPEGs are stored as PNG (`--folder_format=png`), not as JPEG."""
        return getattr(self.builder_config, 'image_format', 'jpeg') == 'png'

    # TFDS prints "Downloading and preparing dataset Unknown size ..." and "... downloaded and prepared"
    # for every build: nothing is downloaded here, and the caller prints the preparation's own report.
    def _log_download_bytes(self) -> None:
        pass

    def _log_download_done(self) -> None:
        pass

    @abc.abstractmethod
    def _source(self, dl_manager: tfds.download.DownloadManager) -> tuple[epath.Path, layout_lib.Layout,
                                                                          list[members.Entry]]:
        """(directory or archive, its layout, its listing or [] when not listed)."""

    @abc.abstractmethod
    def _split_quota(self) -> dict:
        """`train_percent=` or `train_per_class=` for `splits.assign_splits` (one pool of files)."""

    def _include_class(self, class_dir: str) -> bool:
        return True

    def _label_name(self, class_dir: str) -> str:
        return class_dir

    def _image_features(self) -> tfds.features.FeaturesDict:
        return tfds.features.FeaturesDict({
                # Everything is stored as JPEG (originals kept, the rest converted), always 3 channels.
                # --folder_format=png: JPEGs as given, everything else PNG (a mix: TFDS decodes either).
                'image': tfds.features.Image(shape=(None, None, 3),
                                             encoding_format=None if self._lossless() else 'jpeg'),
                'label': tfds.features.ClassLabel(),  # names come from the class folders
                'file_name': tfds.features.Text(),  # below the root, e.g. roses/1.jpg
        })

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        source, layout, entries = self._source(dl_manager)
        result = scan.scan(source, layout, max_pixels=self._max_pixels, include_class=self._include_class,
                           lossless=self._lossless(),
                           entries=entries)
        loose = [path for path, why in result.skipped if why == 'not inside a class folder']
        if not result.class_dirs and loose and len(loose) == len(result.skipped):
            # Images with no class folder around them: the user pointed at one class, or at a flat folder.
            what = (f'one class folder ({layout.root[-1]}/, {len(loose)} files)' if layout.root
                    else f'{len(loose)} files and no class folders')
            raise NoImagesError(
                    f'{source} holds {what}; a classifier needs two or more classes, each a folder of its '
                    f'images: pass the folder that holds them, laid out as CLASS/IMAGE or train/CLASS/IMAGE + '
                    'test/CLASS/IMAGE')
        if not result.class_dirs:
            raise NoImagesError(
                    f'{source} has no class folder with a decodable image (expected {layout.describe()}; '
                    f'{len(result.skipped)} files skipped, e.g. {result.skipped[:1]})')
        self.info.features['label'].names = [self._label_name(d) for d in result.class_dirs]
        split_of, duplicates, dropped = self._assign(result, layout)
        self._record(result, duplicates, dropped)

        by_split: dict[str, dict[str, str]] = {'train': {}, 'test': {}}
        for f in result.files:
            if f.placement.key in split_of:
                by_split[split_of[f.placement.key]][f.placement.key] = self._label_name(f.placement.class_dir)
        for split in [s for s, m in by_split.items() if not m]:
            # Only tiny sources get here; TFDS refuses to write an empty split, so it is left out.
            logging.warning('%s: split %r has no examples and is not written.', self.name, split)
            del by_split[split]
        converted = {f.placement.key for f in result.files if f.examined.converted is not None}
        return {split: self._generate_examples(source, layout, labels, converted)
                for split, labels in by_split.items()}

    def _assign(self, result: scan.ScanResult, layout: layout_lib.Layout):
        """(split per key, byte-identical groups, [(key, reason)] left out of a given test split)."""
        label_of = {d: i for i, d in enumerate(result.class_dirs)}
        if not layout.split_folders:
            assignment = splits.assign_splits(
                    (splits.Candidate(f.placement.key, label_of[f.placement.class_dir], f.examined.sha256)
                     for f in result.files), **self._split_quota())
            return assignment.split_of, assignment.duplicates, []
        keys_of = collections.defaultdict(list)
        for f in result.files:
            keys_of[f.examined.sha256].append(f.placement)
        split_of, dropped = {}, []
        for placements in keys_of.values():
            in_train = sorted(p.key for p in placements if p.split == 'train')
            for p in placements:
                if p.split == 'test' and in_train:
                    dropped.append(('/'.join((*layout.root, p.key)),
                                    f'byte-identical to {in_train[0]} (kept in train only)'))
                else:
                    split_of[p.key] = p.split
        duplicates = sorted(sorted(p.key for p in ps) for ps in keys_of.values() if len(ps) > 1)
        return split_of, duplicates, sorted(dropped)

    def _generate_examples(self, source, layout, labels: dict[str, str], converted: set[str]):
        """Second pass over the source: this split's files, converted again where the scan converted them."""
        for key, data in scan.iter_stored(source, layout, set(labels), converted & set(labels),
                                          max_pixels=self._max_pixels, lossless=self._lossless()):
            yield key, {'image': data, 'label': labels[key], 'file_name': key}

    def _record(self, result: scan.ScanResult, duplicates: list[list[str]], dropped: list[tuple[str, str]]):
        """Logs what was skipped, converted, duplicated and left out, and keeps it in the metadata."""
        skipped = [{'path': p, 'reason': r} for p, r in result.skipped + dropped]
        conversions = [{'path': f.placement.key, 'reason': f.examined.note}
                       for f in result.files if f.examined.converted is not None]
        self.info.metadata.update({
                'num_skipped': len(skipped), 'skipped': skipped,
                'num_converted': len(conversions), 'converted': conversions,
                'duplicates': duplicates,
                'empty_classes': result.empty_classes,
                'max_image_pixels': self._max_pixels,
        })
        if skipped:
            logging.warning('%s: skipped %d files:\n%s', self.name, len(skipped),
                            '\n'.join(f'  {s["path"]}: {s["reason"]}' for s in skipped))
        if conversions:
            logging.info('%s: converted %d images to RGB JPEG:\n%s', self.name, len(conversions),
                         '\n'.join(f'  {c["path"]}: {c["reason"]}' for c in conversions))
        for group in duplicates:
            logging.warning('%s: byte-identical files, kept in one split: %s', self.name, ', '.join(group))
        if result.empty_classes:
            logging.warning('%s: class folders with no usable image are not classes: %s', self.name,
                            ', '.join(result.empty_classes))
