"""Reads `256_ObjectCategories.tar` in place, safely, and checks it against the published archive."""

import dataclasses
import hashlib
import pathlib
import re
import tarfile
from typing import Iterator

from etils import epath

ARCHIVE_NAME = '256_ObjectCategories.tar'
ROOT = '256_ObjectCategories'
PUBLISHED_SIZE = 1_183_006_720
PUBLISHED_SHA256 = '08ff01b03c65566014ae88eb0490dbe4419fc7ac4de726ee1163e39fd809543e'

# A class folder is `NNN.name`, e.g. `001.ak47` or `257.clutter`.
_CLASS_DIR = re.compile(r'^\d{3}\.[^/]+$')
_HASH_CHUNK = 8 << 20


class ModifiedArchiveError(ValueError):
    """The manual archive is not byte-identical to the published one."""


@dataclasses.dataclass(frozen=True)
class ArchiveFile:
    """A regular file at `ROOT/NNN.name/file`.

    Attributes:
        path: path below the archive root, e.g. `001.ak47/001_0001.jpg` (the example's key and file name).
        class_dir: its class folder, e.g. `001.ak47`.
        data: the file's bytes.
    """

    path: str
    class_dir: str
    data: bytes


@dataclasses.dataclass(frozen=True)
class SkippedMember:
    """An archive member that is not a candidate image, and why."""

    path: str
    reason: str


def class_name(class_dir: str) -> str:
    """`001.ak47` -> `ak47`: the label name without the folder's number."""
    return class_dir.split('.', 1)[1]


def iter_archive(archive_path: epath.PathLike) -> Iterator[ArchiveFile | SkippedMember]:
    """Yields every archive member in archive order, reading the tar as a stream.

    Nothing is extracted to disk, so no member can write anywhere; members that would have escaped the
    root on extraction (absolute paths, `..`) and links are reported as skipped, never followed.

    Args:
        archive_path: the uncompressed tar (local path or any `epath`-supported URI).

    Yields:
        `ArchiveFile` for files in the expected layout, `SkippedMember` for every other non-directory member.
    """
    # 'r|' streams: one sequential pass, no member index, constant memory on a 1.2 GB archive.
    with epath.Path(archive_path).open('rb') as f, tarfile.open(fileobj=f, mode='r|') as tar:
        for member in tar:
            if member.isdir():
                continue  # folders are structure; the files in them are judged one by one
            item = _classify(member)
            if isinstance(item, SkippedMember):
                yield item
                continue
            data_file = tar.extractfile(member)
            yield ArchiveFile(path=item[0], class_dir=item[1], data=data_file.read())


def _classify(member: tarfile.TarInfo) -> SkippedMember | tuple[str, str]:
    """Returns (path below root, class folder) for a usable member, else why it is skipped."""
    name = member.name
    if member.issym() or member.islnk():
        return SkippedMember(name, f'link to {member.linkname!r} (links are never followed)')
    if not member.isfile():
        return SkippedMember(name, 'not a regular file')
    pure = pathlib.PurePosixPath(name)
    parts = [p for p in pure.parts if p != '.']
    if pure.is_absolute() or '..' in parts or '\\' in name:
        return SkippedMember(name, 'path escapes the archive root')
    if not parts or parts[0] != ROOT:
        return SkippedMember(name, f'outside {ROOT}/')
    inner = parts[1:]
    if len(inner) == 1:
        return SkippedMember(name, 'not inside a class folder')
    if not _CLASS_DIR.match(inner[0]):
        return SkippedMember(name, 'folder is not a class folder NNN.name')
    if len(inner) > 2:
        return SkippedMember(name, f'in a stray subfolder of {inner[0]}/')
    return '/'.join(inner), inner[0]


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
