"""`256_ObjectCategories.tar`: its layout of class folders, and the check against the published archive."""

import hashlib

from etils import epath

from fastclassify.pipelines.folder import layout

ARCHIVE_NAME = '256_ObjectCategories.tar'
ROOT = '256_ObjectCategories'
PUBLISHED_SIZE = 1_183_006_720
PUBLISHED_SHA256 = '08ff01b03c65566014ae88eb0490dbe4419fc7ac4de726ee1163e39fd809543e'

# Class folders are `NNN.name`, e.g. `001.ak47` or `257.clutter`, directly below the root; the archive is
# read (safely, in place) by the shared class-folder machinery in `pipelines.folder`.
LAYOUT = layout.Layout(root=(ROOT,), class_pattern=r'^\d{3}\.[^/]+$', class_pattern_help='NNN.name')
_HASH_CHUNK = 8 << 20


class ModifiedArchiveError(ValueError):
    """The manual archive is not byte-identical to the published one."""


def class_name(class_dir: str) -> str:
    """`001.ak47` -> `ak47`: the label name without the folder's number."""
    return class_dir.split('.', 1)[1]


def file_digest(path: epath.PathLike) -> tuple[int, str]:
    """Returns (size in bytes, sha256 hex) of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with epath.Path(path).open('rb') as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def verify_archive(path: epath.PathLike, *, allow_modified: bool) -> tuple[int, str, bool]:
    """Checks a manually placed archive against the published size and sha256.

    Args:
        path: the archive.
        allow_modified: build from a differing archive anyway (the caller warns).

    Returns:
        (size, sha256, matches_published).

    Raises:
        ModifiedArchiveError: it differs and `allow_modified` is False; the one-line message names both
            sizes and digests and the flag that overrides.
    """
    size, sha256 = file_digest(path)
    matches = size == PUBLISHED_SIZE and sha256 == PUBLISHED_SHA256
    if not matches and not allow_modified:
        raise ModifiedArchiveError(
                f'{path} is not the published Caltech-256 archive: it has {size:,} bytes, sha256 {sha256}; '
                f'published: {PUBLISHED_SIZE:,} bytes, sha256 {PUBLISHED_SHA256}. '
                'Pass --allow_modified_archive to build from it anyway.')
    return size, sha256, matches
