"""Train / validation / test tf.data pipelines: decode once, cache uint8, gather whole batches, prefetch."""

import dataclasses
import functools
import os
import re
from typing import Callable

import numpy as np
import tensorflow as tf
from absl import logging

from fastclassify.pipelines import cache as cache_lib
from fastclassify.pipelines.choices import PROCESS_CACHE_CHOICES
from fastclassify.pipelines import decode
from fastclassify.pipelines import sharding
from fastclassify.pipelines import sources
from fastclassify.pipelines import synthetic
from fastclassify.pipelines.datasets import DatasetSpec

AUTOTUNE = tf.data.AUTOTUNE


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """How the input pipelines are built (one flag per field; see train.py).

    Attributes:
        cache_size: side of the cached uint8 squares (`--image_size`, or what the augmentation needs).
        batch_size: global batch (`--batch_size`); the per-replica split comes from the input context.
        cache: `--cache`, one of auto|memory|disk|device|none.
        cache_dir: file-cache location (a folder under `--data_dir`).
        ram_budget_bytes: RAM the cache may use for `auto`; None = half of physical RAM.
        validation_fraction: `--validation_split`, carved deterministically from the end of train; 0 = none.
        seed: `--seed`, drives the per-epoch shuffles.
        deterministic: `--deterministic`, tf.data keeps element order in training too.
        process_cache: `--process_cache`, several JAX processes: `share` (each caches only its part of
            the training split; row-block batch order) | `whole` | `auto` (resolved by the train loop).
    """

    cache_size: int
    batch_size: int
    cache: str = 'auto'
    cache_dir: str | None = None
    ram_budget_bytes: int | None = None
    validation_fraction: float = 0.1
    seed: int = 0
    deterministic: bool = False
    process_cache: str = 'auto'

    def __post_init__(self):
        if self.cache_size <= 0:
            raise ValueError(f'--image_size={self.cache_size} must be a positive number of pixels')
        if self.batch_size <= 0:
            raise ValueError(f'--batch_size={self.batch_size} must be positive')
        cache_lib.validate_cache_choice(self.cache)
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(f'--validation_split={self.validation_fraction} must be in [0, 1)')
        if self.ram_budget_bytes is not None and self.ram_budget_bytes < 0:
            raise ValueError(f'--ram_budget_gb={self.ram_budget_bytes / 2**30:g} must be >= 0')
        if self.process_cache not in PROCESS_CACHE_CHOICES:
            raise ValueError(f'--process_cache={self.process_cache!r} is not one of '
                             f'{", ".join(PROCESS_CACHE_CHOICES)}')
        if self.cache == 'disk' and not self.cache_dir:
            raise ValueError('--cache=disk needs a cache directory (under --data_dir); none was given')


@dataclasses.dataclass(frozen=True)
class Inputs:
    """Everything the train loop needs from the input side.

    `train_from(start_step=k)` is the training stream from global batch k on (0: the start; a resumed run
    continues there), infinite with static shapes: (images uint8 [B, S, S, 3], labels int32 [B]), or for
    cache='device' (indices int32 [B], labels int32 [B]) with the images gathered on the device from
    `device_cache` (uint8 [N, S, S, 3]). `validation` / `test` are finite, unaugmented, each example
    exactly once. `resumes_in_place` is False where the stream cannot start mid-way (the tf.data service).
    `train_epoch(indices=False)` is the finite form for a plain `model.fit`: one epoch per iteration (each
    iteration a fresh permutation), pixels (`indices=True`: index batches for the device cache).
    With several JAX processes the counts are the whole splits', the training stream carries this
    process's rows, and `validation` / `test` its part as (images, labels, weights) batches of B / P rows
    (`eval_share_batches`); `train_epoch` is None.
    """

    train_from: Callable[[int], tf.data.Dataset]
    steps_per_epoch: int
    validation: tf.data.Dataset | None
    test: tf.data.Dataset
    num_train: int
    num_validation: int
    num_test: int
    class_names: tuple[str, ...]
    device_cache: np.ndarray | tf.Tensor | None
    cache_decision: str
    resumes_in_place: bool = True
    train_epoch: Callable[..., tf.data.Dataset] | None = None
    data_identity: dict | None = None  # of the prepared dataset (`sources.data_identity`); None: synthetic

    @property
    def train(self) -> tf.data.Dataset:
        """The training stream from its start."""
        return self.train_from(start_step=0)


def dataset_options(*, training: bool, deterministic: bool) -> tf.data.Options:
    """The tuned tf.data options every pipeline here ends with."""
    options = tf.data.Options()
    options.autotune.enabled = True
    # A private pool sized to the cores keeps our pipeline from queueing behind TF's inter-op ops.
    options.threading.private_threadpool_size = os.cpu_count() or 1
    # Out-of-order parallel map output lets a slow element not stall the batch; evaluation keeps order.
    options.deterministic = deterministic or not training
    options.experimental_optimization.map_parallelization = True
    options.experimental_optimization.parallel_batch = True
    return options


def cache_gather_options() -> tf.data.Options:
    """Options for a pipeline that captures a whole cache: tuned, but with no graph rewrite.

    Any tf.data graph rewrite (the default optimizations, `map_parallelization`, `deterministic=False`)
    serializes the pipeline with its captured tensors when the iterator is made, which copies the cache
    into anonymous memory: the memory cache held twice, a mapped file cache read whole into RAM (measured,
    TF 2.21: RssAnon +750 MB for a 750 MB cache; 0 with these options). The gathers keep order anyway.
    """
    options = tf.data.Options()
    options.autotune.enabled = True
    options.threading.private_threadpool_size = os.cpu_count() or 1
    options.experimental_optimization.apply_default_optimizations = False
    return options


def epoch_index_batches(num_examples: int, batch_size: int, seed: int, start_step: int = 0,
                        share: sharding.ProcessShare = sharding.ALONE) -> tf.data.Dataset:
    """Infinite dataset of int32 [batch_size] index batches; each epoch is a fresh permutation.

    One permutation per epoch (stateless, from (seed, epoch)) replaces an element-wise shuffle buffer:
    every example appears at most once per epoch, the last `num_examples % batch_size` of that epoch's
    order are dropped (a different few each epoch), and the same seed gives the same batches.
    `start_step` starts the stream at that batch of the whole sequence (a resumed run continues where
    the interrupted one stopped) without computing anything it skips. With several processes each one
    streams only `share`'s rows of every batch of that one global sequence (int32 [batch_size / count]):
    the permutation is global, so any number of processes trains on the same examples at each step.
    With `share.cache_share` the batches are drawn row by row instead (`row_block_index_batches`) and
    the indices count from the first example of this process's share.
    """
    if share.cache_share:
        return row_block_index_batches(num_examples, batch_size, seed, start_step, share)
    rows = share.rows(batch_size)
    steps = _steps(num_examples, batch_size)

    def one_epoch(epoch, first_step=0):
        perm = tf.random.experimental.stateless_shuffle(
                tf.range(num_examples, dtype=tf.int32), seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
        batches = tf.reshape(perm[:steps * batch_size], [steps, batch_size])
        return tf.data.Dataset.from_tensor_slices(batches[first_step:, rows.start:rows.stop])

    return _from_epochs(one_epoch, start_step, steps)


def row_block_index_batches(num_examples: int, batch_size: int, seed: int, start_step: int = 0,
                            share: sharding.ProcessShare = sharding.ALONE) -> tf.data.Dataset:
    """Infinite int32 [batch_size / count] index batches in row-block order: this process's rows only,
    each index counted from the first example of its share (`share.train_examples`).

    Row r of every batch is drawn from the contiguous block `sharding.row_block(r)` (N / B examples):
    each epoch every block is shuffled on its own (stateless keys from (seed, epoch), drawn for all B rows
    on every process, so they do not depend on the process count) and step k takes each block's k-th
    example. So a process that feeds rows [a, b) only ever needs the examples of blocks a..b-1, one
    contiguous range: it reads and caches those alone. Every example appears at most once per epoch; a
    block one longer than N // B leaves a different example out each epoch. The prepared splits are
    stored shuffled (TFDS writes examples in hashed-key order), so each block is a random sample of the
    classes, and each batch one example from each of B such samples.
    """
    rows = share.rows(batch_size)
    steps = _steps(num_examples, batch_size)
    bounds = np.array([sharding.row_block(r, num_examples, batch_size).start
                       for r in range(batch_size + 1)])
    sizes = np.diff(bounds)
    width = int(sizes.max())
    # Per row of this process: where its block starts in the share, and which key columns are examples.
    first = tf.constant((bounds[rows.start:rows.stop] - bounds[rows.start])[:, None], tf.int32)
    padding = tf.constant(np.arange(width)[None, :] >= sizes[rows.start:rows.stop, None])

    def one_epoch(epoch, first_step=0):
        keys = tf.random.stateless_uniform([batch_size, width],
                                           seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
        keys = tf.where(padding, 2.0, keys[rows.start:rows.stop])  # past a short block's end: sorted last
        order = tf.argsort(keys, axis=1, stable=True)[:, :steps]
        return tf.data.Dataset.from_tensor_slices(tf.transpose(order + first)[first_step:])

    return _from_epochs(one_epoch, start_step, steps)


def _steps(num_examples: int, batch_size: int) -> int:
    steps = num_examples // batch_size
    if steps == 0:
        raise ValueError(f'--batch_size={batch_size} is larger than the {num_examples} training examples')
    return steps


def _from_epochs(one_epoch, start_step: int, steps: int) -> tf.data.Dataset:
    """The epochs of `one_epoch(epoch, first_step)` from global batch `start_step` on, endlessly."""
    epoch, step = divmod(start_step, steps)
    rest = tf.data.Dataset.counter(start=epoch + 1).flat_map(one_epoch)
    return one_epoch(tf.constant(epoch, tf.int64), step).concatenate(rest)


def one_epoch_index_batches(num_examples: int, batch_size: int, seed: int) -> tf.data.Dataset:
    """Finite: one epoch of int32 [batch_size] index batches per iteration, a fresh permutation each time.

    For a plain `model.fit(ds, epochs=E)`, which iterates the dataset once per epoch: the per-epoch key
    comes from `Dataset.random`, which draws anew on every iteration (and the same keys for the same seed).
    """
    steps = num_examples // batch_size
    if steps == 0:
        raise ValueError(f'--batch_size={batch_size} is larger than the {num_examples} training examples')

    def one_epoch(key):
        perm = tf.random.experimental.stateless_shuffle(
                tf.range(num_examples, dtype=tf.int32), seed=tf.stack([tf.cast(seed, tf.int64), key]))
        return tf.data.Dataset.from_tensor_slices(tf.reshape(perm[:steps * batch_size], [steps, batch_size]))

    return (tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1).flat_map(one_epoch)
            .apply(tf.data.experimental.assert_cardinality(steps)))  # Keras then knows the epoch's length


def epoch_from_host_cache(host: cache_lib.HostCache, batch_size: int, *, seed: int,
                          indices: bool = False) -> tf.data.Dataset:
    """One epoch per iteration of (images, labels) gathered from a host cache, or (indices, labels)."""
    images, labels = host.images, host.labels
    if indices:
        gather = lambda i: (i, tf.gather(labels, i))  # noqa: E731
    else:
        gather = lambda i: (tf.gather(images, i), tf.gather(labels, i))  # noqa: E731
    return (one_epoch_index_batches(host.num_examples, batch_size, seed)
            .map(gather, num_parallel_calls=AUTOTUNE, deterministic=True)
            .prefetch(AUTOTUNE)
            .with_options(cache_gather_options()))


def train_from_host_cache(host: cache_lib.HostCache, batch_size: int, *, seed: int,
                          deterministic: bool, start_step: int = 0,
                          share: sharding.ProcessShare = sharding.ALONE,
                          num_examples: int | None = None) -> tf.data.Dataset:
    """(images, labels) batches gathered from an in-memory cache by shuffled index (`share`'s rows only).

    `num_examples`: the whole split's size when `host` holds only this process's share (`cache_share`).
    """
    images, labels = host.images, host.labels

    def gather(indices):
        # One gather per batch: a single memcpy-like op instead of B element copies through tf.data.
        return tf.gather(images, indices), tf.gather(labels, indices)

    return (epoch_index_batches(num_examples or host.num_examples, batch_size, seed, start_step, share)
            # Order kept: every gather costs the same, and out-of-order output would let a batch of
            # the next epoch overtake this one's last (an "epoch" of steps could repeat an example).
            .map(gather, num_parallel_calls=AUTOTUNE, deterministic=True)
            .prefetch(AUTOTUNE)  # overlaps the next gather with the train step
            .with_options(cache_gather_options()))  # order is fixed above, whatever `deterministic` says


def train_indices_for_device(host: cache_lib.HostCache, batch_size: int, *, seed: int,
                             deterministic: bool, start_step: int = 0,
                             share: sharding.ProcessShare = sharding.ALONE,
                             num_examples: int | None = None) -> tf.data.Dataset:
    """(indices, labels) batches for a DeviceCache: only B int32 pairs cross to the device per step.

    `num_examples`: as for `train_from_host_cache`; the indices are then positions in the share.
    """
    labels = host.labels
    return (epoch_index_batches(num_examples or host.num_examples, batch_size, seed, start_step, share)
            .map(lambda indices: (indices, tf.gather(labels, indices)), num_parallel_calls=AUTOTUNE,
                 deterministic=True)  # epochs stay whole, as above
            .prefetch(AUTOTUNE)
            .with_options(dataset_options(training=True, deterministic=deterministic)))


def eval_from_host_cache(host: cache_lib.HostCache, batch_size: int) -> tf.data.Dataset:
    """Every cached example exactly once, in order; the last batch may be smaller."""
    images, labels = host.images, host.labels
    return (tf.data.Dataset.range(host.num_examples)
            .batch(batch_size)
            .map(lambda i: (tf.gather(images, i), tf.gather(labels, i)), num_parallel_calls=AUTOTUNE,
                 deterministic=True)
            .prefetch(AUTOTUNE)
            .with_options(cache_gather_options()))


def eval_share_batches(host: cache_lib.HostCache, batch_size: int, share: sharding.ProcessShare,
                       num_examples: int) -> tf.data.Dataset:
    """This process's part of an evaluation split, for several processes evaluating together.

    `host` holds the part (`share.eval_examples(num_examples)`); the dataset is `share.eval_batches`
    batches of `batch_size / count` rows (images, labels, weights), the same number on every process
    (each batch is one step of the whole job), padded with weight-0 rows: every example of the split
    counts exactly once across the processes.
    """
    per = batch_size // share.count
    count = host.num_examples
    images, labels = host.images, host.labels

    def gather(i):
        real = i < count
        if count == 0:  # a split smaller than the processes: this one feeds padding only
            pixels = tf.zeros([tf.shape(i)[0], *images.shape[1:]], images.dtype)
            return pixels, tf.zeros_like(i), tf.zeros(tf.shape(i), tf.float32)
        i = tf.minimum(i, count - 1)  # padding rows repeat the last example, weighted 0
        return tf.gather(images, i), tf.gather(labels, i), tf.cast(real, tf.float32)

    return (tf.data.Dataset.range(share.eval_batches(num_examples, batch_size) * per)
            .map(lambda i: tf.cast(i, tf.int32))
            .batch(per)
            .map(gather, num_parallel_calls=AUTOTUNE, deterministic=True)
            .prefetch(AUTOTUNE)
            .with_options(cache_gather_options()))


def train_from_stream(examples: tf.data.Dataset, batch_size: int, *, seed: int, deterministic: bool,
                      shuffle_buffer: int, decoder=None, start_step: int = 0) -> tf.data.Dataset:
    """Training batches from encoded records decoded every epoch (no cache).

    The shuffle runs on the small encoded records before the decode, so the buffer holds kilobytes per
    example instead of a decoded image. `start_step` skips that many batches of encoded records (read,
    not decoded): the seeded shuffle makes the skipped sequence the one an uninterrupted run consumed.
    """
    ds = (examples.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
          .skip(start_step * batch_size))
    if decoder is not None:
        ds = ds.map(decoder, num_parallel_calls=AUTOTUNE)
    return (ds.batch(batch_size, drop_remainder=True)  # static shapes for the compiled train step
            .prefetch(AUTOTUNE)
            .with_options(dataset_options(training=True, deterministic=deterministic)))


def eval_from_stream(examples: tf.data.Dataset, batch_size: int, decoder=None) -> tf.data.Dataset:
    """Every example of a finite stream exactly once, in order."""
    ds = examples
    if decoder is not None:
        ds = ds.map(decoder, num_parallel_calls=AUTOTUNE)
    return (ds.batch(batch_size)
            .prefetch(AUTOTUNE)
            .with_options(dataset_options(training=False, deterministic=True)))


def carve_validation(split: str, num_examples: int, fraction: float) -> tuple[str, str | None, int, int]:
    """Splits `split` into (train, validation) TFDS slices by absolute index, the validation at the end.

    Absolute indices (not `%`) make the counts exact and identical on every run.

    Returns:
        (train_slice, validation_slice or None, num_train, num_validation).
    """
    num_val = int(round(num_examples * fraction))
    if num_val == 0:
        return split, None, num_examples, 0
    num_train = num_examples - num_val
    return f'{split}[:{num_train}]', f'{split}[{num_train}:]', num_train, num_val


def decode_for_cache(records: tf.data.Dataset, size: int, *, scaled_jpeg: bool = True) -> tf.data.Dataset:
    """The one decode + resize of encoded records into (uint8 [S, S, 3], int32) for a cache; nothing random.

    Parallel, but order-preserving even when training is not deterministic: the cache's order (and with it
    what a seed means) must not depend on thread timing. `scaled_jpeg`: see `decode.make_decoder`.
    """
    return records.map(decode.make_decoder(size, scaled_jpeg=scaled_jpeg), num_parallel_calls=AUTOTUNE,
                       deterministic=True)


def _per_replica_batch(cfg: PipelineConfig, input_context: tf.distribute.InputContext | None) -> int:
    if input_context is None:
        return cfg.batch_size
    return input_context.get_per_replica_batch_size(cfg.batch_size)


def _cache_key(name: str, split: str, size: int, input_context) -> str:
    shard = '' if input_context is None or input_context.num_input_pipelines == 1 else (
            f'_shard{input_context.input_pipeline_id}of{input_context.num_input_pipelines}')
    return re.sub(r'[^A-Za-z0-9_.-]+', '_', f'{name}_{split}_{size}px{shard}')


@dataclasses.dataclass(frozen=True)
class _Placed:
    """What one cache placement builds: the training stream, the evaluation sets, and the split sizes."""

    train_from: Callable[[int], tf.data.Dataset]
    evals: dict[str, tf.data.Dataset]
    counts: dict[str, int]
    device_cache: np.ndarray | tf.Tensor | None = None
    train_epoch: Callable[..., tf.data.Dataset] | None = None


def inputs_from_records(train_records: tf.data.Dataset,
                        validation_records: tf.data.Dataset | None,
                        test_records: tf.data.Dataset,
                        *,
                        num_examples: int,
                        class_names: tuple[str, ...],
                        cfg: PipelineConfig,
                        cache_name: str = 'dataset',
                        input_context: tf.distribute.InputContext | None = None,
                        share: sharding.ProcessShare = sharding.ALONE,
                        split_sizes: dict[str, int] | None = None) -> Inputs:
    """Builds Inputs from datasets of encoded records `{'image': tf.string, 'label': int}`.

    Args:
        train_records / validation_records / test_records: finite, deterministic order.
        num_examples: all examples of the three records datasets (for the `auto` size estimate).
        class_names: label names, index = label.
        cfg: the pipeline config.
        cache_name: names the file cache (dataset name + version), together with split and size.
        input_context: from `distribute_datasets_from_function`; batches become per-replica sized.
        share: this process's rows of every global training batch (several JAX processes). With several
            processes the records are this process's parts of the splits (`split_parts`) and
            `split_sizes` ({'train', 'validation', 'test'}: count) the whole splits' sizes.
    """
    if share.count > 1 and split_sizes is None:
        raise ValueError('several processes read parts of the splits: pass split_sizes, the whole sizes')
    decision = cache_lib.decide_cache(cfg.cache, num_examples=num_examples, image_size=cfg.cache_size,
                                      ram_budget_bytes=cfg.ram_budget_bytes, cache_dir=cfg.cache_dir)
    logging.info('%s', decision.reason)
    batch = _per_replica_batch(cfg, input_context)
    splits = {'train': train_records, 'validation': validation_records, 'test': test_records}
    splits = {k: v for k, v in splits.items() if v is not None}
    if decision.placement in ('memory', 'device'):
        hosts = {k: cache_lib.materialize(decode_for_cache(v, cfg.cache_size), cfg.cache_size)
                 for k, v in splits.items()}
        placed = _from_host_caches(hosts, batch, cfg, on_device=decision.placement == 'device', share=share,
                                   split_sizes=split_sizes)
    elif decision.placement == 'disk':
        hosts = _disk_caches(splits, cfg, num_examples=num_examples, cache_name=cache_name,
                             input_context=input_context, share=share, split_sizes=split_sizes)
        placed = _from_host_caches(hosts, batch, cfg, on_device=False, share=share, split_sizes=split_sizes)
    else:  # none
        if share.count > 1:
            raise ValueError('--cache=none cannot feed several processes (its stream is not indexed by '
                             'example); use --cache=auto, memory, disk or device')
        placed = _decoded_every_epoch(splits, batch, cfg)
    return _inputs(placed, cfg, class_names=tuple(class_names), cache_decision=decision.reason,
                   input_context=input_context)


def _from_host_caches(hosts: dict[str, cache_lib.HostCache], batch: int, cfg: PipelineConfig, *,
                      on_device: bool, share: sharding.ProcessShare = sharding.ALONE,
                      split_sizes: dict[str, int] | None = None) -> _Placed:
    """Placements memory, disk (host caches, in RAM or mapped) and device (the train cache on the device).

    With several processes the hosts hold this process's parts and `split_sizes` gives the whole sizes.
    """
    stream = train_indices_for_device if on_device else train_from_host_cache
    counts = {k: h.num_examples for k, h in hosts.items()}
    if share.count > 1:
        counts = {k: split_sizes[k] for k in hosts}
        evals = {k: eval_share_batches(h, batch, share, counts[k]) for k, h in hosts.items() if k != 'train'}
    else:
        evals = {k: eval_from_host_cache(h, batch) for k, h in hosts.items() if k != 'train'}
    return _Placed(
            train_from=functools.partial(stream, hosts['train'], batch, seed=cfg.seed,
                                         deterministic=cfg.deterministic, share=share,
                                         num_examples=counts['train']),
            evals=evals,
            counts=counts,
            device_cache=_device_share(hosts['train'], share, counts['train'], batch) if on_device else None,
            # The finite per-epoch form (`fastclassify.load`) is for one process.
            train_epoch=None if share.count > 1 else functools.partial(
                    epoch_from_host_cache, hosts['train'], batch, seed=cfg.seed))


def _device_share(host: cache_lib.HostCache, share: sharding.ProcessShare, num_train: int,
                  batch: int) -> np.ndarray:
    """The train cache for the device, padded to the largest process's share.

    Keras lays the cache out replicated over every device of the job, so every process must give it the
    same shape; with `cache_share` each process's copy holds its own share (indexed from its first
    example), and the gather, row-local on each device, only reads the copy of the process whose rows it
    computes.
    """
    pixels = host.pixels()
    if not share.cache_share or share.count == 1:
        return pixels
    largest = max(len(dataclasses.replace(share, index=i).train_examples(num_train, batch))
                  for i in range(share.count))
    if len(pixels) == largest:
        return pixels
    return np.concatenate([pixels, np.zeros((largest - len(pixels),) + pixels.shape[1:], pixels.dtype)])


def _disk_caches(splits: dict[str, tf.data.Dataset], cfg: PipelineConfig, *, num_examples: int,
                 cache_name: str, input_context, share: sharding.ProcessShare = sharding.ALONE,
                 split_sizes: dict[str, int] | None = None) -> dict[str, cache_lib.HostCache]:
    """The memory cache's layout in a memory-mapped file per split: pages from the OS page cache."""
    budget = cfg.ram_budget_bytes if cfg.ram_budget_bytes is not None else cache_lib.default_ram_budget()
    # Over the budget, the pages this process keeps mapped stay within it (the page cache holds the rest).
    limit = budget if cache_lib.cached_bytes(num_examples, cfg.cache_size) > budget else None
    hosts = {}
    for k, v in splits.items():
        # Train and validation depend on where the validation slice is cut: part of their name.
        split = k if k == 'test' else f'{k}_val{cfg.validation_fraction:g}'
        if share.count > 1:  # this process's part: its own file (processes of one host share the folder)
            part = split_parts(share, split_sizes, cfg.batch_size)[k]
            split += f'_examples{part.start}-{part.stop}'
        key = _cache_key(cache_name, split, cfg.cache_size, input_context)
        hosts[k] = cache_lib.file_cache(decode_for_cache(v, cfg.cache_size),
                                        cache_lib.file_cache_path(cfg.cache_dir, key),
                                        settings={'source': cache_name, 'split': split,
                                                  'image_size': cfg.cache_size},
                                        resident_limit_bytes=limit)
    return hosts


def _decoded_every_epoch(splits: dict[str, tf.data.Dataset], batch: int, cfg: PipelineConfig) -> _Placed:
    """Placement none: no cache, every epoch decodes the encoded records again."""
    decoder = decode.make_decoder(cfg.cache_size)
    counts = {k: _count(v) for k, v in splits.items()}
    return _Placed(
            train_from=functools.partial(train_from_stream, splits['train'], batch, seed=cfg.seed,
                                         deterministic=cfg.deterministic,
                                         shuffle_buffer=min(counts['train'], decode.RECORD_SHUFFLE_BUFFER),
                                         decoder=decoder),
            evals={k: eval_from_stream(v, batch, decoder) for k, v in splits.items() if k != 'train'},
            counts=counts,
            train_epoch=functools.partial(_epoch_from_stream, splits['train'], batch, seed=cfg.seed,
                                          steps=counts['train'] // batch, decoder=decoder,
                                          shuffle_buffer=min(counts['train'], decode.RECORD_SHUFFLE_BUFFER)))


def _epoch_from_stream(examples: tf.data.Dataset, batch_size: int, *, seed: int, steps: int, decoder,
                       shuffle_buffer: int, indices: bool = False) -> tf.data.Dataset:
    """One epoch per iteration of batches decoded from encoded records, reshuffled every iteration."""
    if indices:
        raise ValueError("cache='none' decodes every epoch and keeps no device cache to index")
    return (examples.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
            .map(decoder, num_parallel_calls=AUTOTUNE)
            .batch(batch_size, drop_remainder=True)
            .apply(tf.data.experimental.assert_cardinality(steps))
            .prefetch(AUTOTUNE)
            .with_options(dataset_options(training=True, deterministic=False)))


def _inputs(placed: _Placed, cfg: PipelineConfig, *, class_names: tuple[str, ...], cache_decision: str,
            input_context: tf.distribute.InputContext | None = None) -> Inputs:
    """Inputs from what a placement built; refuses a batch larger than the training split."""
    # A step consumes one per-replica batch on every replica this input pipeline feeds.
    pipelines = input_context.num_input_pipelines if input_context is not None else 1
    steps = placed.counts['train'] // (cfg.batch_size // pipelines)
    if steps == 0:
        raise ValueError(f'--batch_size={cfg.batch_size} is larger than the {placed.counts["train"]} '
                         'training examples')
    return Inputs(
            train_from=placed.train_from,
            steps_per_epoch=steps,
            validation=placed.evals.get('validation'),
            test=placed.evals['test'],
            num_train=placed.counts['train'],
            num_validation=placed.counts.get('validation', 0),
            num_test=placed.counts['test'],
            class_names=class_names,
            device_cache=placed.device_cache,
            cache_decision=cache_decision,
            train_epoch=placed.train_epoch,
    )


def _count(ds: tf.data.Dataset) -> int:
    n = int(ds.cardinality())
    if n >= 0:
        return n
    return int(ds.reduce(np.int64(0), lambda c, _: c + 1))


def split_parts(share: sharding.ProcessShare, split_sizes: dict[str, int], batch_size: int
                ) -> dict[str, range]:
    """The examples of each split ({'train', 'validation', 'test'}: count) this process reads and caches.

    Training: its rows' blocks (`cache_share`) or everything; evaluation splits: its contiguous part.
    """
    return {k: share.train_examples(n, batch_size) if k == 'train' else share.eval_examples(n)
            for k, n in split_sizes.items()}


def _part_records(read, split: str, offset: int, part: range) -> tf.data.Dataset:
    """The records of `part` of `split` (positions counted from `offset`) as a TFDS slice."""
    lo, hi = offset + part.start, offset + part.stop
    # An empty part (a split smaller than the processes): a one-record slice, none of it kept.
    return read(f'{split}[{lo}:{max(hi, lo + 1)}]').take(hi - lo)


def build_inputs(builder, spec: DatasetSpec, cfg: PipelineConfig, *,
                 input_context: tf.distribute.InputContext | None = None,
                 share: sharding.ProcessShare = sharding.ALONE) -> Inputs:
    """Inputs for a prepared TFDS builder (from `pipelines.sources.prepare`).

    The validation split is carved from the end of the train split by absolute index. With an input
    context each input pipeline reads (and caches) only its shard, and batches are per-replica sized.
    With several JAX processes (`share`) each reads and caches only its parts (`split_parts`).
    """
    sizes = sources.split_sizes(builder)
    # The table's splits, or a TFDS dataset's as prepared (its validation split where it has no test).
    train_name, test_name = sources.train_test_splits(builder, spec)
    train_split, val_split, num_train, num_val = carve_validation(train_name, sizes[train_name],
                                                                  cfg.validation_fraction)
    read = lambda split: sources.read_split(builder, split, input_context=input_context)  # noqa: E731
    whole = {'train': num_train, 'validation': num_val, 'test': sizes[test_name]}
    records = {'train': lambda: read(train_split), 'validation': lambda: read(val_split),
               'test': lambda: read(test_name)}
    if share.count > 1:
        # Each process reads only its parts (TFDS reads a slice's files, not the whole split).
        parts = split_parts(share, whole, cfg.batch_size)
        where = {'train': (train_name, 0), 'validation': (train_name, num_train), 'test': (test_name, 0)}
        records = {k: functools.partial(_part_records, read, *where[k], parts[k]) for k in records}
    local = {k: len(r) for k, r in split_parts(share, whole, cfg.batch_size).items()}
    # full_name (e.g. 'caltech256/all/1.0.0') separates builder configs and versions in the file cache.
    name = builder.info.full_name
    return inputs_from_records(
            records['train'](),
            records['validation']() if val_split else None,
            records['test'](),
            num_examples=sum(local.values()),
            class_names=tuple(sources.class_names(builder)),
            cfg=cfg,
            cache_name=name,
            input_context=input_context,
            share=share,
            split_sizes=whole,
    )


def build_synthetic_inputs(spec: DatasetSpec, cfg: PipelineConfig, *,
                           num_train: int = synthetic.TRAIN_EXAMPLES, num_test: int = 512,
                           share: sharding.ProcessShare = sharding.ALONE) -> Inputs:
    """Inputs of random uint8 tensors with the dataset's shape and classes (`--synthetic_data`).

    They are generated in memory, so every placement but `device` uses the memory placement's builder.
    """
    images, labels = synthetic.random_examples(num_train + num_test, cfg.cache_size, spec.num_classes,
                                               seed=cfg.seed)
    num_val = int(round(num_train * cfg.validation_fraction))
    fit = num_train - num_val
    whole = {'train': fit, 'validation': num_val, 'test': num_test}
    parts = split_parts(share, whole, cfg.batch_size)
    starts = {'train': 0, 'validation': fit, 'test': num_train}
    hosts = {k: cache_lib.host_cache_from_arrays(images[starts[k] + r.start:starts[k] + r.stop],
                                                 labels[starts[k] + r.start:starts[k] + r.stop])
             for k, r in parts.items() if k != 'validation' or num_val}
    placement = 'device' if cfg.cache == 'device' else 'memory'
    return _inputs(_from_host_caches(hosts, cfg.batch_size, cfg, on_device=placement == 'device',
                                     share=share, split_sizes=whole), cfg,
                   class_names=tuple(f'class_{i:03d}' for i in range(spec.num_classes)),
                   cache_decision=f'cache={placement}: synthetic data ({num_train + num_test:,} random '
                                  f'{cfg.cache_size}x{cfg.cache_size}x3 uint8 images) is generated in memory')
