"""Building from a manual archive: safety of the tar reader, the checksum gate, what each file becomes,
and splits that depend on content only."""

import io
import pathlib
import tarfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from fastclassify.pipelines import caltech256  # noqa: F401  registers the builder
from fastclassify.pipelines.caltech256 import archive
from fastclassify.pipelines.caltech256.make_dummy_data import DUMMY_ARCHIVE
from fastclassify.pipelines.caltech256.make_dummy_data import dummy_members
from fastclassify.pipelines.caltech256.make_dummy_data import image_bytes
from fastclassify.pipelines.caltech256.make_dummy_data import write_tar
from fastclassify.pipelines.folder import members

ROOT = archive.ROOT


def _build(tmp_path: pathlib.Path, tar_path: pathlib.Path, *, allow_modified=True, config='all'):
    manual = tmp_path / 'manual'
    manual.mkdir(exist_ok=True)
    if tar_path != manual / archive.ARCHIVE_NAME:
        (manual / archive.ARCHIVE_NAME).write_bytes(tar_path.read_bytes())
    builder = tfds.builder('caltech256', config=config, data_dir=str(tmp_path / 'data'),
                           allow_modified_archive=allow_modified)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual)))
    return builder


def _examples(builder, split):
    return {ex['file_name'].decode(): ex for ex in tfds.as_numpy(builder.as_dataset(split=split))}


@pytest.fixture(scope='module')
def dummy_build(tmp_path_factory):
    return _build(tmp_path_factory.mktemp('dummy'), DUMMY_ARCHIVE)


def test_each_special_file_becomes_what_it_should(dummy_build):
    examples = {**_examples(dummy_build, 'train'), **_examples(dummy_build, 'test')}
    assert len(examples) == 23
    originals = dict(dummy_members())
    # Plain RGB JPEGs are stored byte for byte.
    assert examples['001.ak47/001_0001.jpg']['image'].shape[2] == 3
    raw = tfds.as_numpy(dummy_build.as_dataset(split='train+test', decoders={'image': tfds.decode.SkipDecoding()}))
    stored = {ex['file_name'].decode(): ex['image'] for ex in raw}
    assert stored['001.ak47/001_0001.jpg'] == originals[f'{ROOT}/001.ak47/001_0001.jpg']
    # Grayscale, CMYK and a PNG named .jpg are kept, as RGB JPEGs.
    for path in ('001.ak47/001_0005.jpg', '002.american-flag/002_0005.jpg', '056.dog/056_0005.jpg'):
        assert stored[path][:2] == b'\xff\xd8' and stored[path] != originals[f'{ROOT}/{path}']
        assert tf.io.decode_jpeg(stored[path]).shape[2] == 3
    gray = examples['001.ak47/001_0005.jpg']['image'].astype(int)
    assert np.abs(gray[..., 0] - gray[..., 1]).max() <= 2
    # Labels are named from the folders, without their numbers.
    names = dummy_build.info.features['label'].names
    assert names == ['ak47', 'american-flag', 'dog', 'spider', 'clutter']
    assert names[examples['056.dog/056_0001.jpg']['label']] == 'dog'


def test_bad_files_are_skipped_and_recorded(dummy_build):
    metadata = dummy_build.info.metadata
    skipped = {s['path']: s['reason'] for s in metadata['skipped']}
    assert metadata['num_skipped'] == 4
    assert set(skipped) == {f'{ROOT}/056.dog/greg/056_0099.jpg', f'{ROOT}/198.spider/198_0005.jpg',
                            f'{ROOT}/198.spider/RENAME2', f'{ROOT}/198.spider/Thumbs.db'}
    assert 'stray subfolder' in skipped[f'{ROOT}/056.dog/greg/056_0099.jpg']
    assert 'cannot decode JPEG' in skipped[f'{ROOT}/198.spider/198_0005.jpg']
    assert metadata['num_converted'] == 3
    # The record survives a reload from disk, like any TFDS metadata.
    reloaded = tfds.builder('caltech256', data_dir=dummy_build.data_dir.split('/caltech256/')[0])
    assert reloaded.info.metadata['num_skipped'] == 4


def test_train_and_test_never_share_a_file_and_duplicates_stay_together(dummy_build):
    train, test = _examples(dummy_build, 'train'), _examples(dummy_build, 'test')
    assert not set(train) & set(test)
    digests = [{bytes(ex['image'].tobytes()) for ex in split.values()} for split in (train, test)]
    assert not digests[0] & digests[1]  # not even identical pixels under different names
    twins = ['257.clutter/257_0001.jpg', '257.clutter/257_0004.jpg']
    assert dummy_build.info.metadata['duplicates'] == [twins]
    assert (twins[0] in train) == (twins[1] in train)


def test_splits_do_not_depend_on_member_order(tmp_path, dummy_build):
    reordered = tmp_path / 'reordered.tar'
    members = dummy_members()
    write_tar(reordered, [m for m in members if m[1] is None] + [m for m in members if m[1] is not None][::-1])
    other = _build(tmp_path, reordered)
    for split in ('train', 'test'):
        first = [ex['file_name'] for ex in tfds.as_numpy(dummy_build.as_dataset(split=split, shuffle_files=False))]
        second = [ex['file_name'] for ex in tfds.as_numpy(other.as_dataset(split=split, shuffle_files=False))]
        assert first == second  # same members and the same stored order


def test_paper60_config_drops_clutter(tmp_path):
    builder = _build(tmp_path, DUMMY_ARCHIVE, config='paper60')
    assert 'clutter' not in builder.info.features['label'].names
    # Fewer than 60 images per class: all go to train, as the protocol's quota says; no empty test split.
    assert {name: s.num_examples for name, s in builder.info.splits.items()} == {'train': 19}


def test_manual_archive_with_one_flipped_byte_is_refused(tmp_path):
    data = bytearray(DUMMY_ARCHIVE.read_bytes())
    data[2048] ^= 0x01
    (tmp_path / 'manual').mkdir()
    flipped = tmp_path / 'manual' / archive.ARCHIVE_NAME
    flipped.write_bytes(bytes(data))
    with pytest.raises(archive.ModifiedArchiveError) as error:
        _build(tmp_path, flipped, allow_modified=False)
    message = str(error.value)
    size, sha256 = archive.file_digest(flipped)
    assert f'{size:,} bytes' in message and sha256 in message
    assert '1,183,006,720 bytes' in message and archive.PUBLISHED_SHA256 in message
    assert '--allow_modified_archive' in message and '\n' not in message
    assert not (tmp_path / 'data' / 'caltech256' / 'all' / '1.0.0').exists()


def test_published_size_and_digest_pass_the_gate(tmp_path, monkeypatch):
    path = tmp_path / archive.ARCHIVE_NAME
    path.write_bytes(b'x' * 1000)
    size, sha256 = archive.file_digest(path)
    monkeypatch.setattr(archive, 'PUBLISHED_SIZE', size)
    monkeypatch.setattr(archive, 'PUBLISHED_SHA256', sha256)
    assert archive.verify_archive(path, allow_modified=False) == (size, sha256, True)


def _hostile_tar(path: pathlib.Path, outside: pathlib.Path) -> None:
    with tarfile.open(path, 'w', format=tarfile.GNU_FORMAT) as tar:
        def add(name, data=None, **attrs):
            info = tarfile.TarInfo(name)
            for key, value in attrs.items():
                setattr(info, key, value)
            if data is None:
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        good = image_bytes(7, (16, 16))
        add(f'{ROOT}/001.ak47/001_0001.jpg', good)
        add(f'{ROOT}/001.ak47/001_0002.jpg', image_bytes(8, (16, 16)))
        add(f'{ROOT}/001.ak47/../../escaped.jpg', good)
        add(f'../{outside.name}/dotdot.jpg', good)
        add(str(outside / 'absolute.jpg'), good)
        add(f'{ROOT}/001.ak47/symlink.jpg', type=tarfile.SYMTYPE, linkname=str(outside / 'target.jpg'))
        add(f'{ROOT}/001.ak47/hardlink.jpg', type=tarfile.LNKTYPE, linkname=f'{ROOT}/001.ak47/001_0001.jpg')
        add(f'{ROOT}/001.ak47/fifo', type=tarfile.FIFOTYPE)


def test_hostile_members_are_ignored_and_nothing_is_written_outside(tmp_path):
    outside = tmp_path / 'outside'
    outside.mkdir()
    work = tmp_path / 'work'
    work.mkdir()
    tar_path = work / archive.ARCHIVE_NAME
    _hostile_tar(tar_path, outside)
    before = sorted(p for p in tmp_path.rglob('*'))

    # The shared reader reports unsafe members; the Caltech layout places the rest below the root.
    items = list(members.iter_files(tar_path, max_bytes=1 << 20))
    kept = [archive.LAYOUT.place(i.path).key for i in items if isinstance(i, members.File)]
    reasons = {i.path: i.reason for i in items if isinstance(i, members.Skipped)}
    assert kept == ['001.ak47/001_0001.jpg', '001.ak47/001_0002.jpg']
    assert 'escapes' in reasons[f'{ROOT}/001.ak47/../../escaped.jpg']
    assert 'escapes' in reasons[f'../{outside.name}/dotdot.jpg']
    assert 'escapes' in reasons[str(outside / 'absolute.jpg')]
    assert 'link' in reasons[f'{ROOT}/001.ak47/symlink.jpg'] and 'link' in reasons[f'{ROOT}/001.ak47/hardlink.jpg']
    assert 'not a regular file' in reasons[f'{ROOT}/001.ak47/fifo']

    builder = _build(work, tar_path)
    assert builder.info.splits.total_num_examples == 2
    assert builder.info.metadata['num_skipped'] == 6
    # Nothing appeared outside the build's own directories.
    after = sorted(p for p in tmp_path.rglob('*') if not p.is_relative_to(work / 'data'))
    assert after == before + sorted([work / 'manual', work / 'manual' / archive.ARCHIVE_NAME])
    assert list(outside.iterdir()) == []
