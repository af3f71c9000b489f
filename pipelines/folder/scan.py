"""The two passes over a source: examine every candidate image once (in parallel), then stream the kept ones."""

import collections
import concurrent.futures
import dataclasses
import os
from typing import Callable, Iterable, Iterator

from etils import epath

from fastclassify.pipelines.folder import images
from fastclassify.pipelines.folder import layout as layout_lib
from fastclassify.pipelines.folder import members

# Files in flight at once: at most this many bytes of them (and 4 per thread), whatever their sizes, so
# memory stays bounded on any source; a single larger file (up to `images.max_file_bytes`) still passes.
_MAX_PENDING_BYTES = 256 << 20


@dataclasses.dataclass(frozen=True)
class ScannedFile:
    """A decodable image: its placement and what to store."""

    placement: layout_lib.Placement
    examined: images.Examined


@dataclasses.dataclass(frozen=True)
class ScanResult:
    """Everything the split assignment and the metadata need.

    Attributes:
        files: decodable images of the included classes, in source order.
        class_dirs: included class folders holding at least one decodable image, sorted (the label order).
        empty_classes: class folders with no decodable image: not classes, reported.
        skipped: (member path, reason) for every file that will not become an example.
    """

    files: list[ScannedFile]
    class_dirs: list[str]
    empty_classes: list[str]
    skipped: list[tuple[str, str]]


def scan(source: epath.PathLike, layout: layout_lib.Layout, *, max_pixels: int,
         include_class: Callable[[str], bool] = lambda class_dir: True,
         entries: Iterable[members.Entry] = (), num_threads: int | None = None,
         lossless: bool = False) -> ScanResult:
    """Reads the source once, decoding images on a thread pool while the files stream in.

    Args:
        source: a directory, tar or zip.
        layout: where the class folders are.
        max_pixels: `--max_image_pixels` (see `images.examine`).
        include_class: whether a class folder belongs to the builder config (e.g. no clutter).
        entries: the source's listing, when made, so class folders without any file are reported too.
        num_threads: decode threads; default one per CPU (decoders release the GIL).
        lossless: store images that are not JPEGs as PNG (see `images.examine`).

    Returns:
        The scan result. A bad file is recorded in `skipped` and never aborts the pass.
    """
    files: list[ScannedFile] = []
    skipped: list[tuple[str, str]] = []
    seen_classes = {layout.class_folder(e.path) for e in entries if e.is_dir} - {None}
    seen_keys: set[str] = set()

    def candidates():
        for item in members.iter_files(source, max_bytes=images.max_file_bytes(max_pixels)):
            if isinstance(item, members.Skipped):
                skipped.append((item.path, item.reason))
                continue
            placement = layout.place(item.path)
            if isinstance(placement, str):
                skipped.append((item.path, placement))
                continue
            if not include_class(placement.class_dir):
                continue  # excluded by the config, not a bad file
            seen_classes.add(placement.class_dir)
            if placement.key in seen_keys:
                # An archive may repeat a name; only the first copy is used, in both passes.
                skipped.append((item.path, 'repeated member name (first copy used)'))
                continue
            seen_keys.add(placement.key)
            yield (item.path, placement), item.data

    examine = lambda data: images.examine(data, max_pixels=max_pixels, lossless=lossless)  # noqa: E731
    with images.pixel_guard(max_pixels):
        for (path, placement), outcome in bounded_map(candidates(), examine, num_threads):
            if isinstance(outcome, images.UndecodableImageError):
                skipped.append((path, str(outcome)))
            else:
                files.append(ScannedFile(placement, outcome))
    class_dirs = sorted({f.placement.class_dir for f in files})
    empty = sorted(c for c in seen_classes - set(class_dirs) if include_class(c))
    return ScanResult(files=files, class_dirs=class_dirs, empty_classes=empty, skipped=skipped)


def iter_stored(source: epath.PathLike, layout: layout_lib.Layout, keys: set[str], converted: set[str], *,
                max_pixels: int, num_threads: int | None = None, lossless: bool = False
                ) -> Iterator[tuple[str, bytes]]:
    """Second pass: yields (key, bytes to store) for `keys`, once each, in source order.

    Converted images are converted again here rather than held from the first pass: that keeps memory
    bounded however many files need it (the conversion is deterministic, so the bytes are the same).
    """
    def wanted():
        yielded = set()
        for item in members.iter_files(source, max_bytes=images.max_file_bytes(max_pixels)):
            if isinstance(item, members.File):
                placement = layout.place(item.path)
                if not isinstance(placement, str) and placement.key in keys and placement.key not in yielded:
                    yielded.add(placement.key)
                    yield placement.key, item.data

    def store(key_and_data):
        key, data = key_and_data
        return (images.examine(data, max_pixels=max_pixels, lossless=lossless).converted if key in converted
                else data)

    found = 0
    with images.pixel_guard(max_pixels):
        for key, stored in bounded_map(((k, (k, d)) for k, d in wanted()), store, num_threads):
            if isinstance(stored, images.UndecodableImageError):  # the file changed between the passes
                raise ValueError(f'{source}: {key} changed while it was being prepared ({stored}); prepare again')
            found += 1
            yield key, stored
    if found != len(keys):
        raise ValueError(f'{source}: {len(keys) - found} files disappeared while it was being prepared; prepare again')


def bounded_map(items: Iterator, fn: Callable, num_threads: int | None = None) -> Iterator:
    """Yields (tag, fn(data) or its UndecodableImageError) for (tag, data) items, in order, on a thread pool.

    At most 4 items per thread and `_MAX_PENDING_BYTES` of them are in flight, so memory stays bounded.
    """
    num_threads = num_threads or os.cpu_count() or 1
    pending: collections.deque = collections.deque()
    pending_bytes = 0

    def finish_one():
        nonlocal pending_bytes
        tag, size, future = pending.popleft()
        pending_bytes -= size
        try:
            return tag, future.result()
        except images.UndecodableImageError as e:
            return tag, e

    with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
        for tag, data in items:
            size = len(data[1]) if isinstance(data, tuple) else len(data)
            pending.append((tag, size, pool.submit(fn, data)))
            pending_bytes += size
            while pending and (len(pending) > 4 * num_threads or pending_bytes > _MAX_PENDING_BYTES):
                yield finish_one()
        while pending:
            yield finish_one()
