"""The shared reader of directories, tars and zips: hostile members are reported, never followed or read."""

import io
import os
import zipfile

from fastclassify.pipelines.folder import members
from tests import folder_trees


def _items(source, max_bytes=1 << 20):
    items = list(members.iter_files(source, max_bytes=max_bytes))
    return ({i.path for i in items if isinstance(i, members.File)},
            {i.path: i.reason for i in items if isinstance(i, members.Skipped)})


def test_hostile_zip_members_are_reported_and_nothing_is_written(tmp_path):
    good = folder_trees.encoded(1, 'JPEG')
    path = tmp_path / 'hostile.zip'
    with zipfile.ZipFile(path, 'w') as archive:
        archive.writestr('a/1.jpg', good)
        archive.writestr('../escaped.jpg', good)
        archive.writestr('/abs/2.jpg', good)
        link = zipfile.ZipInfo('a/link.jpg')
        link.external_attr = (0o120777 << 16)  # a symlink entry
        archive.writestr(link, '/etc/passwd')
        archive.writestr('a/big.jpg', b'\0' * 5000, compress_type=zipfile.ZIP_DEFLATED)  # 5 KB from ~30 bytes
    before = sorted(tmp_path.rglob('*'))
    kept, skipped = _items(path, max_bytes=4096)
    assert kept == {'a/1.jpg'}
    assert 'escapes' in skipped['../escaped.jpg'] and 'escapes' in skipped['/abs/2.jpg']
    assert 'link' in skipped['a/link.jpg']
    assert skipped['a/big.jpg'] == '5,000 bytes is over the 4,096-byte bound (4 bytes per allowed pixel)'
    assert sorted(tmp_path.rglob('*')) == before


def test_directory_symlinks_to_folders_are_not_followed_and_files_are(tmp_path):
    tree = folder_trees.write_dir({'a/1.jpg': b'x', 'elsewhere/2.jpg': b'y'}, tmp_path / 'tree')
    os.symlink(tree / 'elsewhere', tree / 'a' / 'loop')
    os.symlink(tree / 'elsewhere' / '2.jpg', tree / 'a' / 'linked.jpg')
    os.mkfifo(tree / 'a' / 'fifo')
    kept, skipped = _items(tree)
    assert kept == {'a/1.jpg', 'a/linked.jpg', 'elsewhere/2.jpg'}
    assert skipped == {'a/loop': 'symlinked folder (not followed)', 'a/fifo': 'not a regular file'}


def test_listing_reads_headers_only_and_matches_the_files(tmp_path):
    tree = {'x/a/1.jpg': b'1' * 10, 'x/b/2.jpg': b'2' * 20, 'x/c': None}
    for form in ('dir', 'tar', 'tar.gz', 'zip'):
        source = folder_trees.write(tree, tmp_path / form, form) if form == 'dir' else None
        if source is None:
            (tmp_path / form).mkdir()
            source = folder_trees.write(tree, tmp_path / form, form)
        entries = {e.path: (e.is_dir, e.size) for e in members.list_entries(source)}
        assert entries['x/a/1.jpg'] == (False, 10) and entries['x/b/2.jpg'] == (False, 20), form
        assert entries['x/c'][0], form
    assert io  # keeps the import list honest for the zip helper above
