"""Where decoded uint8 images live between epochs: host memory, a file cache, the accelerator, or nowhere."""

import dataclasses
import glob
import mmap
import os
import shutil
import uuid

import numpy as np
import tensorflow as tf
from absl import logging

CACHE_CHOICES = ('auto', 'memory', 'disk', 'device', 'none')

# Part of every file-cache name: bump it whenever decode.py changes what it produces, so that an old file
# cache (which records nothing about the code that wrote it) is never read by newer code.
FILE_CACHE_VERSION = 1

_COMPLETE_MARKER = 'COMPLETE'
_PARTIAL_TAG = '.partial-'
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
                'disk', f'cache=disk: {what} exceeds the {human_bytes(budget)} RAM budget; file cache in {cache_dir}')
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


class DeviceCache:
    """A whole cached split held on the accelerator(s); batches are gathered there by index.

    The tensors are plain (constant) tensors placed with `tf.device`, not `tf.Variable`s: a Keras model that
    holds a DeviceCache does not track or checkpoint them (gigabytes). Pass `gather` indices from the
    `Inputs.train` dataset inside the train step. Under a multi-replica strategy, `replicated(devices)`
    gives every replica's device its own copy, so each replica gathers locally.
    """

    def __init__(self, host: HostCache, device: str | None = None):
        """Copies `host` onto `device` (None: the default device, i.e. the first GPU/TPU or else the CPU).

        On the CPU the "copy" shares the host buffer, so the CPU fallback costs no memory.
        """
        self.device = device or _default_device()
        with tf.device(self.device):
            self.images = tf.identity(host.images)
            self.labels = tf.identity(host.labels)
        self.devices = (self.device,)
        self._copies = ((self.images, self.labels),)

    @property
    def num_examples(self) -> int:
        return int(self.images.shape[0])

    def replicated(self, devices) -> 'DeviceCache':
        """This cache with one copy on each of `devices` (a strategy's local replica devices, in order)."""
        copy = object.__new__(DeviceCache)
        copy.devices = tuple(devices)
        copy.device = copy.devices[0]
        copies = []
        for device in copy.devices:
            with tf.device(device):
                copies.append((tf.identity(self.images), tf.identity(self.labels)))
        copy._copies = tuple(copies)
        copy.images, copy.labels = copies[0]
        return copy

    def gather(self, indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Returns (images uint8 [B, S, S, 3], labels int32 [B]) for `indices` int32 [B], on the device.

        With several copies, the calling replica reads its own device's copy (no cross-device traffic).
        """
        def read(i):
            def fn():
                with tf.device(self.devices[i]):
                    images, labels = self._copies[i]
                    return tf.gather(images, indices), tf.gather(labels, indices)
            return fn

        if len(self._copies) == 1:
            return read(0)()
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        # Global replica id -> this worker's local copy (workers hold equal, ordered replica groups).
        local = tf.math.floormod(tf.cast(replica, tf.int32), len(self._copies))
        return tf.switch_case(local, [read(i) for i in range(len(self._copies))])


def _default_device() -> str:
    for kind in ('TPU', 'GPU'):
        if tf.config.list_logical_devices(kind):
            return f'/{kind}:0'
    return '/CPU:0'


def file_cache_path(cache_dir: str, key: str) -> str:
    """Path of the file cache for `key` (key already names dataset, split and size)."""
    return os.path.join(cache_dir, f'{key}.v{FILE_CACHE_VERSION}')


def is_complete(path: str) -> bool:
    """True only for a file cache whose writer finished a full pass (the marker is written last)."""
    return os.path.exists(os.path.join(path, _COMPLETE_MARKER))


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

    Two kinds: our own `*.partial-PID-*` directories whose process is gone, and `Dataset.cache(filename)`
    `.lockfile`s (with their half-written shards) that an interrupted first epoch leaves and that make
    every later run fail or, worse, read a truncated cache.
    """
    removed = []
    for partial in glob.glob(os.path.join(cache_dir, f'*{_PARTIAL_TAG}*')):
        try:
            pid = int(partial.rsplit(_PARTIAL_TAG, 1)[1].split('-', 1)[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            logging.warning('Removing an interrupted file cache (writer %d is gone): %s', pid, partial)
            shutil.rmtree(partial, ignore_errors=True)
            removed.append(partial)
    for lockfile in glob.glob(os.path.join(cache_dir, '*.lockfile')):
        prefix = lockfile[:-len('.lockfile')]
        logging.warning('Removing a stale tf.data cache lockfile and its partial shards: %s', lockfile)
        for leftover in glob.glob(prefix + '*'):
            os.remove(leftover)
            removed.append(leftover)
    return removed


@dataclasses.dataclass(frozen=True, eq=False)
class FileCache:
    """A complete file cache: raw records (int32 label bytes, then S*S*3 uint8 pixels) and their parser.

    Shuffle and batch the small fixed-size `records` first, then `parse_batch` turns a whole batch into
    tensors with one `decode_raw`: no per-example function call, the cost that dominates reading.
    """

    records: tf.data.Dataset  # tf.string, in the order they were written
    count: int
    image_shape: tuple[int, int, int]

    def parse_batch(self, records: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """[B] records -> (uint8 [B, S, S, 3], int32 [B])."""
        raw = tf.io.decode_raw(records, tf.uint8)  # [B, 4 + S*S*3]: every record has the same length
        labels = tf.bitcast(raw[:, :4], tf.int32)
        images = tf.reshape(raw[:, 4:], (-1,) + self.image_shape)
        images.set_shape(records.shape.concatenate(self.image_shape))  # keeps a static batch dimension
        return images, labels

    def examples(self, batch_size: int = 256) -> tf.data.Dataset:
        """The cached (image, label) pairs one by one, in the written order."""
        return self.records.batch(batch_size).map(self.parse_batch, num_parallel_calls=tf.data.AUTOTUNE).unbatch()


def file_cache(decoded: tf.data.Dataset, path: str, *, num_shards: int = 8) -> FileCache:
    """Returns the complete file cache at `path`, writing it first if needed.

    The cache is written in one full pass to a private temporary directory, marked complete, then renamed
    into place: an interrupted pass (Ctrl-C, preemption, a corrupt image) leaves only a `.partial-`
    directory that no reader trusts and the next run removes.

    Records are raw bytes in TFRecord shards. Not `Dataset.save`: with an error in its input it hangs
    instead of raising (TF 2.21), and not `Dataset.cache(filename)`: it writes lazily during the first
    epoch and leaves lockfiles when interrupted.

    Args:
        decoded: finite dataset of (uint8 [S, S, 3], int32 label) in a deterministic order.
        path: from `file_cache_path`.
        num_shards: files written; reading interleaves them in parallel.
    """
    image_shape = decoded.element_spec[0].shape
    if not image_shape.is_fully_defined():
        raise ValueError(f'file_cache needs static image shapes, got {image_shape}')
    parent = os.path.dirname(path) or '.'
    os.makedirs(parent, exist_ok=True)
    remove_stale(parent)
    if os.path.exists(path) and not is_complete(path):
        # Not written by `file_cache` (which renames only complete caches): nothing says it is whole.
        logging.warning('Removing an incomplete file cache without its %s marker: %s', _COMPLETE_MARKER, path)
        shutil.rmtree(path)
    if not is_complete(path):
        _write_file_cache(decoded, path, num_shards)
    with open(os.path.join(path, _COMPLETE_MARKER)) as f:
        count = int(f.read())
    shards = sorted(glob.glob(os.path.join(path, 'shard-*.tfrecord')))
    # Round-robin over the shards in file order: parallel reads, and the order the records were written in.
    records = tf.data.Dataset.from_tensor_slices(shards).interleave(
            tf.data.TFRecordDataset, cycle_length=len(shards), block_length=1,
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return FileCache(records, count, tuple(image_shape.as_list()))


def _write_file_cache(decoded: tf.data.Dataset, path: str, num_shards: int) -> None:
    tmp = f'{path}{_PARTIAL_TAG}{os.getpid()}-{uuid.uuid4().hex[:8]}'
    os.makedirs(tmp)
    logging.info('Writing file cache %s (one full decode pass)', path)
    writers = [tf.io.TFRecordWriter(os.path.join(tmp, f'shard-{i:05d}-of-{num_shards:05d}.tfrecord'))
               for i in range(num_shards)]
    count = 0
    try:
        # Batched pulls: one Python round trip per 64 images, not per image.
        for images, labels in decoded.batch(64).prefetch(2).as_numpy_iterator():
            for image, label in zip(images, labels.astype(np.int32)):
                writers[count % num_shards].write(label.tobytes() + image.tobytes())
                count += 1
    except BaseException:
        # Clean up what we can; a killed process leaves the directory to the next run's `remove_stale`.
        for writer in writers:
            writer.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for writer in writers:
        writer.close()
    # Written last: its presence is the only thing that makes a reader trust the directory.
    with open(os.path.join(tmp, _COMPLETE_MARKER), 'w') as f:
        f.write(f'{count}\n')
    try:
        os.rename(tmp, path)
    except OSError:
        # Another process finished the same cache first; theirs is complete, ours is redundant.
        shutil.rmtree(tmp, ignore_errors=True)
        if not is_complete(path):
            raise
