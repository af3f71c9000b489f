"""A fingerprint of what a dataset was prepared from (names, sizes, mtimes), to notice a changed source."""

import hashlib
import os

from fastclassify.pipelines.folder import members


def of(source: str, *, max_pixels: int) -> dict:
    """Fingerprint of a directory (every entry's name, size, mtime) or an archive (its own), and the limit.

    The pixel limit is part of it: preparing again under another limit stores other images.

    Returns:
        `{'digest': hex, 'files': count, 'bytes': total}`, JSON-serialisable for the dataset's metadata.
    """
    digest = hashlib.sha256(f'max_pixels={max_pixels}\n'.encode())
    if members.kind(source) == 'dir':
        entries = [e for e in members.list_entries(source) if not e.is_dir]
    else:
        info = os.stat(source)
        entries = [members.Entry(os.path.basename(source), False, info.st_size, info.st_mtime_ns)]
    for e in sorted(entries, key=lambda e: e.path):
        digest.update(f'{e.path}\0{e.size}\0{e.mtime_ns}\n'.encode())
    return {'digest': digest.hexdigest(), 'files': len(entries), 'bytes': sum(e.size for e in entries)}


def describe_change(old: dict, new: dict) -> str:
    """'files 120 -> 121, bytes 3,400,000 -> 3,410,000' or, when only names/mtimes changed, says so."""
    if (old.get('files'), old.get('bytes')) == (new['files'], new['bytes']):
        return f'same {new["files"]:,} files and bytes, but names or modification times changed'
    return (f'files {old.get("files", 0):,} -> {new["files"]:,}, '
            f'bytes {old.get("bytes", 0):,} -> {new["bytes"]:,}')
