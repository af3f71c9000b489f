"""Where decoded uint8 images live between epochs: host memory, a file cache, the accelerator, or nowhere."""

import dataclasses
import fcntl
import glob
import json
import mmap
import os
import shutil
import threading
import time
import uuid
import weakref
import zlib

import numpy as np
import tensorflow as tf
from absl import logging

from fastclassify.pipelines import disk_space
from fastclassify.pipelines.choices import CACHE_CHOICES  # noqa: F401  (checked before TensorFlow loads)

# In every file cache's header: bump it when the file layout changes, or when decode.py changes what it
# produces for the same settings; a file of another version is reported and rebuilt, never read.
# 3: large JPEGs decoded at DCT scale (decode.MARGIN), pixels ~1 unit off version 2's.
FILE_CACHE_VERSION = 3

_FILE_SUFFIX = '.u8cache'
_PARTIAL_TAG = '.partial-'
_LOCK_NAME = '.lock'
_MAGIC = b'fastclassify uint8 cache\n'
# One page: the pixels that follow start page-aligned, which DLPack's 64-byte alignment needs.
_HEADER_BYTES = 4096
# Read buffer of the checksum pass: its memory, whatever the size of the file.
_CHECKSUM_CHUNK = 16 << 20
# A fraction of physical RAM: the rest is for the model, tf.data's own buffers and the other splits.
_DEFAULT_RAM_FRACTION = 0.5


def validate_cache_choice(cache: str) -> None:
    """Raises ValueError naming `--cache`, the bad value and the choices."""
    if cache not in CACHE_CHOICES:
        raise ValueError(f'--cache={cache!r} is not a cache placement; valid: {", ".join(CACHE_CHOICES)}')


def cached_bytes(num_examples: int, image_size: int) -> int:
    """Bytes of a uint8 cache of `num_examples` RGB squares of side `image_size` (labels are negligible)."""
    return num_examples * image_size * image_size * 3


def physical_ram_bytes() -> int:
    """Physical RAM of this machine in bytes."""
    return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')


def default_ram_budget() -> int:
    """The RAM budget used when none is given: half of physical RAM."""
    return int(physical_ram_bytes() * _DEFAULT_RAM_FRACTION)


def human_bytes(n: float) -> str:
    """'3.7 GB'-style text (decimal units, as in the docs)."""
    for unit in ('B', 'KB', 'MB', 'GB', 'TB'):
        if n < 1000 or unit == 'TB':
            return f'{n:.0f} {unit}' if unit == 'B' else f'{n:.1f} {unit}'
        n /= 1000
    raise AssertionError('unreachable')


@dataclasses.dataclass(frozen=True)
class CacheDecision:
    """The placement actually used and one human line saying why."""

    placement: str  # 'memory' | 'disk' | 'device' | 'none'
    reason: str


def decide_cache(requested: str,
                 *,
                 num_examples: int,
                 image_size: int,
                 ram_budget_bytes: int | None = None,
                 cache_dir: str | None = None) -> CacheDecision:
    """Resolves `--cache` (with `auto` estimating the cached size against a RAM budget).

    Args:
        requested: one of CACHE_CHOICES.
        num_examples: examples that will be cached (all splits together).
        image_size: side of the cached squares.
        ram_budget_bytes: RAM the cache may use; None means half of physical RAM.
        cache_dir: where a file cache goes; required for 'disk'.

    Returns:
        The decision; `reason` is the line to log.

    Raises:
        ValueError: for an unknown choice, or 'disk' without a cache directory.
    """
    validate_cache_choice(requested)
    size = cached_bytes(num_examples, image_size)
    budget = default_ram_budget() if ram_budget_bytes is None else ram_budget_bytes
    what = f'{num_examples:,} x {image_size}x{image_size}x3 uint8 = {human_bytes(size)}'
    if requested == 'disk' and not cache_dir:
        raise ValueError('--cache=disk needs a cache directory (it goes under --data_dir); none was given')
    if requested != 'auto':
        return CacheDecision(requested, f'cache={requested}: requested ({what})')
    if size <= budget:
        return CacheDecision('memory', f'cache=memory: {what} fits the {human_bytes(budget)} RAM budget')
    if cache_dir:
        return CacheDecision(
                'disk', f'cache=disk: {what} exceeds the {human_bytes(budget)} RAM budget; memory-mapped file '
                        f'cache in {cache_dir} (the OS page cache holds what RAM allows)')
    return CacheDecision(
            'none', f'cache=none: {what} exceeds the {human_bytes(budget)} RAM budget and no cache directory was given')


def aligned_empty(shape: tuple[int, ...]) -> np.ndarray:
    """An uninitialised uint8 array in its own anonymous memory mapping (page-aligned).

    Page alignment lets TensorFlow wrap the buffer without a copy (DLPack needs its 64-byte Eigen alignment;
    NumPy's allocator gives 16), so the cache is never held twice. Its own mapping makes its resident size
    measurable (`resident_bytes`) and returns the memory to the OS as soon as the last reference goes.
    """
    n = int(np.prod(shape))
    buffer = mmap.mmap(-1, max(n, 1))
    return np.frombuffer(buffer, np.uint8, count=n).reshape(shape)


@dataclasses.dataclass(frozen=True, eq=False)
class HostCache:
    """A whole split decoded into one uint8 tensor in host memory (plus its int32 labels)."""

    images: tf.Tensor  # uint8 [N, S, S, 3]
    labels: tf.Tensor  # int32 [N]
    array: np.ndarray | None = None  # the buffer `images` shares, when it came from NumPy

    @property
    def num_examples(self) -> int:
        return int(self.images.shape[0])

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.images.shape))

    def pixels(self) -> np.ndarray:
        """The images as a NumPy array (the shared buffer when there is one), e.g. for a device cache."""
        return self.array if self.array is not None else self.images.numpy()


def host_cache_from_arrays(images: np.ndarray, labels: np.ndarray) -> HostCache:
    """Wraps NumPy arrays as a HostCache, without a copy when `images` is 64-byte aligned."""
    if images.ctypes.data % 64 or not images.flags.c_contiguous:
        aligned = aligned_empty(images.shape)
        aligned[...] = images
        images = aligned
    # DLPack shares the buffer (the tensor keeps the array alive); convert_to_tensor would copy it.
    tensor = tf.experimental.dlpack.from_dlpack(images.__dlpack__())
    return HostCache(tensor, tf.constant(labels, tf.int32), images)


def resident_bytes(array: np.ndarray) -> int:
    """Bytes of `array`'s memory mappings that are resident in RAM (Linux `/proc/self/smaps`).

    A large NumPy buffer is its own mapping, so this is the cache's real footprint, unaffected by the
    allocator caches and thread stacks that make process-wide RSS deltas noisy.
    """
    start = array.ctypes.data
    end = start + array.nbytes
    total, overlapping = 0, False
    with open('/proc/self/smaps') as f:
        for line in f:
            head = line.split(maxsplit=1)[0]
            if '-' in head and not head.endswith(':'):
                lo, hi = (int(x, 16) for x in head.split('-'))
                overlapping = lo < end and hi > start
            elif overlapping and head == 'Rss:':
                total += int(line.split()[1]) * 1024
    return total


def materialize(decoded: tf.data.Dataset, image_size: int, *, chunk: int = 256) -> HostCache:
    """Runs the decode once over a finite dataset of (uint8 image, label) and keeps the result in RAM.

    The images are written straight into one preallocated array, so the resident size is the cache size,
    not twice it, when the dataset's cardinality is known.

    Args:
        decoded: finite dataset of (uint8 [S, S, 3], int32 []) in a deterministic order.
        image_size: S.
        chunk: examples pulled per step (amortises Python overhead; the decode itself is parallel).
    """
    n = int(decoded.cardinality())
    batches = decoded.batch(chunk).prefetch(2)
    if n >= 0:
        images = aligned_empty((n, image_size, image_size, 3))
        labels = np.empty((n,), np.int32)
        pos = 0
        for image_batch, label_batch in batches.as_numpy_iterator():
            k = len(label_batch)
            if pos + k > n:
                raise ValueError(f'dataset yielded more than its cardinality {n}')
            images[pos:pos + k] = image_batch
            labels[pos:pos + k] = label_batch
            pos += k
        if pos != n:
            raise ValueError(f'dataset yielded {pos} examples, its cardinality says {n}')
        return host_cache_from_arrays(images, labels)
    # Unknown size (e.g. a filtered source): collect chunks, then one concatenation (twice the size at peak).
    image_chunks, label_chunks = [], []
    for image_batch, label_batch in batches.as_numpy_iterator():
        image_chunks.append(image_batch)
        label_chunks.append(label_batch)
    if not image_chunks:
        raise ValueError('cannot cache an empty split')
    total = sum(len(c) for c in label_chunks)
    images = aligned_empty((total, image_size, image_size, 3))
    np.concatenate(image_chunks, out=images)
    del image_chunks
    return host_cache_from_arrays(images, np.concatenate(label_chunks).astype(np.int32))


def file_cache_path(cache_dir: str, key: str) -> str:
    """Path of the file cache for `key` (key already names dataset, split and size)."""
    return os.path.join(cache_dir, f'{key}{_FILE_SUFFIX}')


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(cache_dir: str) -> list[str]:
    """Removes leftovers of interrupted writers in `cache_dir`, logging each; returns what was removed.

    Our own `*.partial-PID-*` files (or the TFRecord cache's directories) whose process is gone, and
    `Dataset.cache(filename)` `.lockfile`s with their half-written shards, which make a later run fail or
    read a truncated cache.
    """
    removed = []
    for partial in glob.glob(os.path.join(cache_dir, f'*{_PARTIAL_TAG}*')):
        try:
            pid = int(partial.rsplit(_PARTIAL_TAG, 1)[1].split('-', 1)[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            logging.warning('Removing an interrupted file cache (writer %d is gone): %s', pid, partial)
            _remove(partial)
            removed.append(partial)
    for lockfile in glob.glob(os.path.join(cache_dir, '*.lockfile')):
        prefix = lockfile[:-len('.lockfile')]
        logging.warning('Removing a stale tf.data cache lockfile and its partial shards: %s', lockfile)
        for leftover in glob.glob(prefix + '*'):
            os.remove(leftover)
            removed.append(leftover)
    return removed


def _remove(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


@dataclasses.dataclass(frozen=True)
class _Header:
    """What the first page of a file cache says about the rest of it."""

    version: int
    count: int
    image_shape: tuple[int, int, int]
    labels_offset: int
    file_bytes: int
    settings: dict
    crc32: int

    @property
    def image_bytes(self) -> int:
        return self.count * int(np.prod(self.image_shape))

    def encode(self) -> bytes:
        fields = dict(dataclasses.asdict(self), image_shape=list(self.image_shape))
        text = _MAGIC + json.dumps(fields, sort_keys=True).encode() + b'\n'
        if len(text) > _HEADER_BYTES:
            raise ValueError(f'file cache header of {len(text)} bytes does not fit its {_HEADER_BYTES}-byte page')
        return text.ljust(_HEADER_BYTES, b'\0')

    @classmethod
    def decode(cls, page: bytes) -> '_Header':
        """Raises ValueError with the reason when `page` is not a header this code can read."""
        if not page.startswith(_MAGIC):
            raise ValueError('has no file-cache header (an unfinished or foreign file)')
        try:
            fields = json.loads(page[len(_MAGIC):].split(b'\n', 1)[0])
            fields['image_shape'] = tuple(int(d) for d in fields['image_shape'])
            header = cls(**fields)
        except (ValueError, TypeError, KeyError) as e:
            raise ValueError(f'has an unreadable header ({type(e).__name__}: {e})') from None
        return header


def _layout(count: int, image_shape: tuple[int, ...]) -> tuple[int, int]:
    """(labels_offset, file_bytes) of a cache of `count` images: header page, pixels, labels 64-byte aligned."""
    labels_offset = _HEADER_BYTES + count * int(np.prod(image_shape))
    labels_offset += -labels_offset % 64
    return labels_offset, labels_offset + 4 * count


def _file_problem(path: str, header: _Header, *, image_shape: tuple[int, ...], settings: dict,
                  expected_count: int, verify: bool) -> str | None:
    """Why the cache at `path` must not be used, or None. The checksum pass reads the whole file."""
    if header.version != FILE_CACHE_VERSION:
        return f'is format version {header.version}, this code reads version {FILE_CACHE_VERSION}'
    if header.image_shape != tuple(image_shape) or header.settings != settings:
        return (f'holds {list(header.image_shape)} images decoded with {header.settings}, this run needs '
                f'{list(image_shape)} with {settings}')
    if expected_count >= 0 and header.count != expected_count:
        return f'holds {header.count} examples, the split has {expected_count}'
    labels_offset, file_bytes = _layout(header.count, header.image_shape)
    size = os.path.getsize(path)
    if (header.labels_offset, header.file_bytes) != (labels_offset, file_bytes) or size != file_bytes:
        # Never mapped: reading a page past the end of a mapped file kills the process with SIGBUS.
        return f'is {size:,} bytes, its header says {header.file_bytes:,} (truncated or overwritten)'
    if verify:
        actual = _checksum(path, header)
        if actual != header.crc32:
            return f'fails its checksum (crc32 {actual:08x}, header says {header.crc32:08x}): a changed byte'
    return None


def _checksum(path: str, header: _Header) -> int:
    """CRC-32 of the pixels then the labels, read in chunks into one reused buffer (bounded memory)."""
    buffer = bytearray(_CHECKSUM_CHUNK)
    crc = 0
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        for start, length in ((_HEADER_BYTES, header.image_bytes), (header.labels_offset, 4 * header.count)):
            end = start + length
            while start < end:
                n = os.preadv(fd, [memoryview(buffer)[:min(_CHECKSUM_CHUNK, end - start)]], start)
                if n <= 0:
                    raise OSError(f'{path}: unexpected end of file at byte {start}')
                crc = zlib.crc32(memoryview(buffer)[:n], crc)
                start += n
    finally:
        os.close(fd)
    return crc


class _WritableView:
    """Presents a read-only mapping to NumPy as writable, so that DLPack can export it to TensorFlow.

    NumPy refuses to export a read-only array over the DLPack version TensorFlow reads. The pages stay
    mapped read-only, so a stray write faults instead of changing the cache; TensorFlow never writes into
    an input of `tf.gather`. Holds the mapping open for as long as any array or tensor uses it.
    """

    def __init__(self, mapping: mmap.mmap, offset: int, shape: tuple[int, ...]):
        self.mapping = mapping
        address = np.frombuffer(mapping, np.uint8, count=1, offset=offset).ctypes.data
        self.__array_interface__ = {'data': (address, False), 'shape': shape, 'typestr': '|u1', 'version': 3}


def _statm_shared_bytes() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[2]) * mmap.PAGESIZE


def _limit_resident(mapping: mmap.mmap, limit: int, *, interval_s: float = 0.01) -> None:
    """Keeps the pages of `mapping` that count in this process's RSS near `limit` bytes, in a daemon thread.

    Pages of a file mapping count in RSS once read although they belong to the OS page cache. Every
    `interval_s` a thread reads the process's file-backed resident size; above `limit` (since the start) it
    drops this process's page-table entries with MADV_DONTNEED. The page cache keeps the pages, so the next
    read of one is a minor fault, not a disk read. The thread ends when the mapping is gone. The bound is
    approximate: a fault maps a whole page-cache folio (up to 2 MB on Linux 6.x), so random gathers map
    some hundreds of MB between two polls (measured: 0.3-0.6 GB per 10 ms at ~15,000 224-px images/s).
    """
    ref = weakref.ref(mapping)

    def run():
        baseline = _statm_shared_bytes()
        while True:
            time.sleep(interval_s)
            live = ref()
            if live is None or live.closed:
                return
            now = _statm_shared_bytes()
            baseline = min(baseline, now)  # other mappings closed since
            if now - baseline > limit:
                live.madvise(mmap.MADV_DONTNEED)
                baseline = _statm_shared_bytes()  # growth from here on is bounded by `limit` again
            del live

    threading.Thread(target=run, name='file-cache-resident-limit', daemon=True).start()


def _map(path: str, header: _Header, resident_limit_bytes: int | None) -> HostCache:
    """Maps the pixels of a checked cache file as a HostCache: no copy, pages come from the page cache."""
    with open(path, 'rb') as f:
        # Shared and read-only: no commit charge however large the file, and clean pages the kernel can drop.
        mapping = mmap.mmap(f.fileno(), header.file_bytes, access=mmap.ACCESS_READ)
    if resident_limit_bytes is not None:
        _limit_resident(mapping, resident_limit_bytes)
    shape = (header.count,) + header.image_shape
    images = np.asarray(_WritableView(mapping, _HEADER_BYTES, shape))  # page-aligned: DLPack shares it
    labels = np.frombuffer(mapping, '<i4', count=header.count, offset=header.labels_offset).astype(np.int32)
    return host_cache_from_arrays(images, labels)


class _FileLock:
    """An exclusive `flock` on `path`: released by the OS when its holder exits, however it exits."""

    def __init__(self, path: str, what: str):
        self.path, self.what = path, what

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logging.info('Waiting for another process that is writing %s', self.what)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)  # releases the lock


def file_cache(decoded: tf.data.Dataset, path: str, *, settings: dict | None = None,
               resident_limit_bytes: int | None = None, chunk: int = 256) -> HostCache:
    """Returns the file cache at `path` memory-mapped as a HostCache, (re)writing it first if needed.

    The file has the memory cache's layout (uint8 [N, S, S, 3], then int32 labels) after a one-page header
    (format version, count, shape, decode settings, CRC-32), so training gathers from it exactly as from
    RAM, and the OS page cache, not this process, holds the pages. Before it is mapped the file is checked:
    version, shape, settings, count, size (a truncated mapped file would crash the process with SIGBUS
    when read) and the checksum (one sequential read of the file). A file that fails is reported in one
    line and rebuilt: the cache is derived data. A file this call has just written is not read back.

    The writer decodes once, in parallel, into `path.partial-PID-*`, writes the header last and renames the
    file into place: an interrupted or killed writer leaves only a partial file no reader trusts, which
    the next call removes. Two processes asking for caches in one folder take turns on the folder's lock;
    the second finds the first one's file and uses it.

    Args:
        decoded: finite dataset of (uint8 [S, S, 3], int32 label) in a deterministic order.
        path: from `file_cache_path`.
        settings: JSON-able facts about the decode that wrote the pixels (a cache written with others is
            rebuilt); default: just the image shape.
        resident_limit_bytes: keep about this much of the file resident in this process's RSS (for a
            cache larger than the RAM budget); None: no limit, the file's pages stay mapped once read.
        chunk: examples written per step.
    """
    image_shape = decoded.element_spec[0].shape
    if not image_shape.is_fully_defined():
        raise ValueError(f'file_cache needs static image shapes, got {image_shape}')
    image_shape = tuple(image_shape.as_list())
    settings = json.loads(json.dumps(settings if settings is not None else {'image_shape': list(image_shape)}))
    expected_count = int(decoded.cardinality())
    parent = os.path.dirname(path) or '.'
    os.makedirs(parent, exist_ok=True)
    # One lock per folder (not per file): the check, the cleanup and the write are one step for all its caches.
    with _FileLock(os.path.join(parent, _LOCK_NAME), path):
        remove_stale(parent)
        _remove_older_formats(path)
        header = _read_header(path)
        if isinstance(header, str):
            logging.warning('File cache %s %s; rebuilding it', path, header)
            header = None
        elif header is not None:
            problem = _file_problem(path, header, image_shape=image_shape, settings=settings,
                                    expected_count=expected_count, verify=True)
            if problem:
                logging.warning('File cache %s %s; rebuilding it', path, problem)
                header = None
        if header is None:
            header = _write_file_cache(decoded, path, image_shape, settings, chunk)
        return _map(path, header, resident_limit_bytes)


def _read_header(path: str) -> '_Header | str | None':
    """The header of the file at `path`, None when there is no file, or the reason it cannot be read."""
    try:
        with open(path, 'rb') as f:
            page = f.read(_HEADER_BYTES)
    except FileNotFoundError:
        return None
    try:
        return _Header.decode(page)
    except ValueError as e:
        return str(e)


def _remove_older_formats(path: str) -> None:
    """Deletes caches this code no longer reads (version-1 TFRecord directories `KEY.v1`) for this key."""
    key = path[:-len(_FILE_SUFFIX)] if path.endswith(_FILE_SUFFIX) else path
    for old in glob.glob(glob.escape(key) + '.v[0-9]*'):
        if _PARTIAL_TAG not in old:
            logging.warning('Removing a file cache of an older format (this code writes %s): %s', _FILE_SUFFIX, old)
            _remove(old)


def is_complete(path: str) -> bool:
    """True for a cache file whose header is readable and whose size matches it (the checksum is not read)."""
    header = _read_header(path)
    return isinstance(header, _Header) and os.path.getsize(path) == header.file_bytes


def _write_file_cache(decoded: tf.data.Dataset, path: str, image_shape: tuple[int, ...], settings: dict,
                      chunk: int) -> _Header:
    expected = int(decoded.cardinality())
    parent = os.path.dirname(path) or '.'
    need = _layout(expected, image_shape)[1] if expected >= 0 else None
    if need is not None:
        free = disk_space.free_bytes(parent)
        if free < need:
            # Exact bytes: two sizes within rounding of each other must still read as different.
            raise ValueError(f'the file cache {path} needs {disk_space.exact_bytes(need)} but its folder has '
                             f'{disk_space.exact_bytes(free)} free ({disk_space.exact_bytes(need - free)} '
                             'short); free space there, or use --cache=memory or --cache=none')
    tmp = f'{path}{_PARTIAL_TAG}{os.getpid()}-{uuid.uuid4().hex[:8]}'
    logging.info('Writing file cache %s (one full decode pass)', path)
    crc, count, labels = 0, 0, []
    try:
        with open(tmp, 'wb') as f:
            f.write(bytes(_HEADER_BYTES))  # zeros until the end: a file without its header is never trusted
            # Sequential writes rather than stores into a mapping: the same single copy into the page
            # cache, and a full disk raises ENOSPC here instead of SIGBUS.
            for image_batch, label_batch in decoded.batch(chunk).prefetch(2).as_numpy_iterator():
                f.write(image_batch.data)
                crc = zlib.crc32(image_batch.data, crc)
                labels.append(label_batch.astype('<i4'))
                count += len(label_batch)
            if count == 0:
                raise ValueError(f'cannot cache an empty split in {path}')
            labels = np.concatenate(labels)
            labels_offset, file_bytes = _layout(count, image_shape)
            f.write(bytes(labels_offset - f.tell()))
            f.write(labels.data)
            crc = zlib.crc32(labels.data, crc)
            header = _Header(FILE_CACHE_VERSION, count, tuple(image_shape), labels_offset, file_bytes, settings, crc)
            f.seek(0)
            f.write(header.encode())
        # No fsync: after a power loss the file's size or checksum fails the check at the next open and
        # it is rebuilt, which is what a synced write would have saved at the cost of waiting for the disk.
        os.replace(tmp, path)
    except BaseException as e:
        # A killed process cannot get here; its partial file goes at the next call's `remove_stale`.
        written = os.path.getsize(tmp) if os.path.exists(tmp) else 0
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(e, OSError) and disk_space.is_disk_full(e):
            needed = f'of the {disk_space.exact_bytes(need)} it needs' if need is not None else ''
            raise ValueError(
                f'the disk filled while writing the file cache {path}: {disk_space.exact_bytes(written)} '
                f'{needed} were written, and its folder has {disk_space.exact_bytes(disk_space.free_bytes(parent))} '
                'free now (the partial file is removed; another process took the space after the '
                'free-space check); free space there, or use --cache=memory or --cache=none') from None
        raise
    return header
