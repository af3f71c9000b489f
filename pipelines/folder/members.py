"""Reads the files of a directory, a tar (.tar, .tar.gz, ...) or a zip in place, safely, with bounded memory.

Nothing is extracted, so no member can write anywhere; members whose names would escape the root on
extraction (absolute, `..`, backslashes), links inside archives and special files are reported, never
followed; a file over the size bound is reported before a byte of it is read.
"""

import dataclasses
import os
import pathlib
import stat
import tarfile
import zipfile
from typing import Iterator

from etils import epath

ARCHIVE_SUFFIXES = ('.tar', '.tar.gz', '.tgz', '.tar.bz2', '.tar.xz', '.zip')


@dataclasses.dataclass(frozen=True)
class Entry:
    """A member as listed: its path below the source root, whether it is a folder, its size and mtime."""

    path: str
    is_dir: bool
    size: int = 0
    mtime_ns: int = 0


@dataclasses.dataclass(frozen=True)
class File:
    """A regular file's path below the source root and its bytes."""

    path: str
    data: bytes


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A member that will not become an example, and why."""

    path: str
    reason: str


def kind(source: epath.PathLike) -> str:
    """'dir', 'tar' or 'zip'; raises ValueError naming the suffixes read."""
    path = epath.Path(source)
    if path.is_dir():
        return 'dir'
    name = path.name.lower()
    if name.endswith('.zip'):
        return 'zip'
    if any(name.endswith(s) for s in ARCHIVE_SUFFIXES):
        return 'tar'
    raise ValueError(f'{source} is neither a directory nor an archive ({", ".join(ARCHIVE_SUFFIXES)})')


def list_entries(source: epath.PathLike) -> list[Entry]:
    """Every safe member (files and folders), without reading file contents; unsafe ones are left out."""
    source_kind = kind(source)
    if source_kind == 'dir':
        return [e for e in _walk(pathlib.Path(source)) if isinstance(e, Entry)]
    if source_kind == 'zip':
        with _open_zip(source) as archive:
            return [Entry(_clean(i.filename), i.is_dir(), i.file_size) for i in archive.infolist()
                    if _zip_problem(i) is None]
    # Random access ('r:*'): listing an uncompressed tar seeks over the data instead of reading it.
    try:
        with epath.Path(source).open('rb') as f, tarfile.open(fileobj=f, mode='r:*') as tar:
            return [Entry(_clean(m.name), m.isdir(), m.size, int(m.mtime) * 10**9) for m in tar
                    if m.isdir() or _tar_problem(m) is None]
    except tarfile.TarError as e:
        raise ValueError(f'{source} is not a readable tar archive ({e})') from None


def iter_files(source: epath.PathLike, *, max_bytes: int) -> Iterator[File | Skipped]:
    """Yields every non-folder member in source order (sorted for a directory), reading one at a time.

    Args:
        source: a directory, tar or zip.
        max_bytes: a file larger than this is skipped unread (memory stays bounded).

    Yields:
        `File` for each regular file, `Skipped` for everything else that is not a folder.
    """
    source_kind = kind(source)
    if source_kind == 'dir':
        yield from _dir_files(pathlib.Path(source), max_bytes)
    elif source_kind == 'zip':
        yield from _zip_files(source, max_bytes)
    else:
        yield from _tar_files(source, max_bytes)


def _too_big(path: str, size: int, max_bytes: int) -> Skipped:
    return Skipped(path, f'{size:,} bytes is over the {max_bytes:,}-byte bound (4 bytes per allowed pixel)')


def _escapes(name: str) -> bool:
    pure = pathlib.PurePosixPath(name)
    return pure.is_absolute() or '..' in pure.parts or '\\' in name


def _clean(name: str) -> str:
    return '/'.join(p for p in pathlib.PurePosixPath(name).parts if p != '.')


def _walk(root: pathlib.Path) -> Iterator[Entry | Skipped]:
    """Sorted walk; a symlinked folder is reported, a symlinked file counts when it points at a regular file."""
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        base = pathlib.Path(folder)
        for name in list(dirs):
            rel = (base / name).relative_to(root).as_posix()
            if (base / name).is_symlink():
                dirs.remove(name)
                yield Skipped(rel, 'symlinked folder (not followed)')
            else:
                yield Entry(rel, True)
        for name in sorted(files):
            rel = (base / name).relative_to(root).as_posix()
            try:
                info = (base / name).stat()  # follows a symlink: the target's type, size and mtime
            except OSError as e:
                yield Skipped(rel, f'unreadable ({e.strerror or type(e).__name__})')
                continue
            if not stat.S_ISREG(info.st_mode):
                yield Skipped(rel, 'not a regular file')
                continue
            yield Entry(rel, False, info.st_size, info.st_mtime_ns)


def _dir_files(root: pathlib.Path, max_bytes: int) -> Iterator[File | Skipped]:
    for entry in _walk(root):
        if isinstance(entry, Skipped):
            yield entry
        elif not entry.is_dir:
            if entry.size > max_bytes:
                yield _too_big(entry.path, entry.size, max_bytes)
                continue
            try:
                yield File(entry.path, (root / entry.path).read_bytes())
            except OSError as e:
                yield Skipped(entry.path, f'unreadable ({e.strerror or type(e).__name__})')


def _open_tar(source: epath.PathLike):
    # 'r|*' streams (gzip/bz2/xz detected): one sequential pass, no member index, constant memory.
    f = epath.Path(source).open('rb')
    try:
        tar = tarfile.open(fileobj=f, mode='r|*')
    except tarfile.TarError as e:
        f.close()
        raise ValueError(f'{source} is not a readable tar archive ({e})') from None
    return _ClosingTar(tar, f)


class _ClosingTar:
    """Context manager closing both the tar and the file it streams from."""

    def __init__(self, tar, f):
        self.tar, self.f = tar, f

    def __enter__(self):
        return self.tar

    def __exit__(self, *exc):
        self.tar.close()
        self.f.close()


def _tar_problem(member: tarfile.TarInfo) -> str | None:
    if member.issym() or member.islnk():
        return f'link to {member.linkname!r} (links are never followed)'
    if not member.isfile():
        return 'not a regular file'
    if _escapes(member.name):
        return 'path escapes the archive root'
    return None


def _tar_files(source, max_bytes: int) -> Iterator[File | Skipped]:
    with _open_tar(source) as tar:
        for member in tar:
            if member.isdir():
                continue  # folders are structure; the files in them are judged one by one
            problem = _tar_problem(member)
            if problem:
                yield Skipped(member.name, problem)
            elif member.size > max_bytes:
                yield _too_big(member.name, member.size, max_bytes)
            else:
                yield File(_clean(member.name), tar.extractfile(member).read())


def _open_zip(source) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(epath.Path(source).open('rb'))
    except zipfile.BadZipFile as e:
        raise ValueError(f'{source} is not a readable zip archive ({e})') from None


def _zip_problem(info: zipfile.ZipInfo) -> str | None:
    if stat.S_ISLNK(info.external_attr >> 16):
        return 'link (links are never followed)'
    if _escapes(info.filename):
        return 'path escapes the archive root'
    if info.flag_bits & 0x1:
        return 'encrypted'
    return None


def _zip_files(source, max_bytes: int) -> Iterator[File | Skipped]:
    with _open_zip(source) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            problem = _zip_problem(info)
            if problem:
                yield Skipped(info.filename, problem)
                continue
            if info.file_size > max_bytes:
                yield _too_big(info.filename, info.file_size, max_bytes)
                continue
            try:
                with archive.open(info) as f:
                    data = f.read(max_bytes + 1)  # never more than the bound, whatever the header claims
            except (zipfile.BadZipFile, OSError, NotImplementedError) as e:
                yield Skipped(info.filename, f'unreadable zip member ({e})')
                continue
            if len(data) > max_bytes:
                yield _too_big(info.filename, len(data), max_bytes)
            else:
                yield File(_clean(info.filename), data)
