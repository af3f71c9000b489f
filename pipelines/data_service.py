"""tf.data service: remote CPU workers run the expensive input work (read, decode, resize, cache, shuffle, batch).

The servers (dispatcher, workers) are started by `python -m cli.data_service` (cli/data_service.py).
Trainers: `train.py --data_service=grpc://HOST:5050`, where the loop calls `distribute_train` with the
pipeline and service configs it needs.
"""

from __future__ import annotations

import dataclasses
import queue
import socket
import threading

import tensorflow as tf

from fastclassify.pipelines import decode
from fastclassify.pipelines.pipeline import PipelineConfig

AUTOTUNE = tf.data.AUTOTUNE
from fastclassify.pipelines.choices import DATA_SERVICE_MODES as MODES  # (checked before TF loads)
# Decoded uint8 images in a parallel_epochs worker's shuffle buffer: 2,048 x 224 px = 300 MB.
_DECODED_SHUFFLE_BYTES = 300 * 1000 * 1000
# A trainer that gets no batch from the service for this long fails (a dead worker otherwise hangs it).
DEFAULT_STALL_TIMEOUT_S = 300.0


@dataclasses.dataclass(frozen=True)
class ServiceConfig:
    """Which tf.data service the trainer reads from and how.

    Attributes:
        address: `--data_service`, `grpc://HOST:PORT` of the dispatcher.
        mode: `--data_service_mode`; `distributed_epoch`: the dispatcher hands each worker a share of the
            input, so across all workers (and all trainers sharing the job) every example is served once per
            epoch; `parallel_epochs`: every worker runs whole epochs of its own (decoded once into its RAM
            cache), so examples are served independently by each worker.
        job_name: trainers that name the same job share it (several workers / replicas of one run).
        batch_size: examples per element a trainer receives (per replica with an input context).
        image_size: side of the decoded uint8 squares.
        max_outstanding_requests: batches a trainer may have in flight from the workers.
        stall_timeout_s: a trainer that receives no batch for this long fails with `DataServiceStalledError`
            instead of waiting forever (None: wait forever). The tf.data service (TF 2.21) never gives up on
            a worker that died: the trainer keeps retrying the dead worker's task, and in distributed_epoch
            the epoch can never end because the splits that worker held are lost. Must exceed the longest
            legitimate gap: job start (workers pick up tasks on their next heartbeat, fill the shuffle
            buffer and decode a first batch) and every epoch boundary (a new job iteration).
    """

    address: str
    mode: str = 'distributed_epoch'
    job_name: str = 'train'
    batch_size: int = 64
    image_size: int = 224
    max_outstanding_requests: int | None = None
    stall_timeout_s: float | None = DEFAULT_STALL_TIMEOUT_S

    def __post_init__(self):
        if not self.address.startswith('grpc://') or ':' not in self.address[len('grpc://'):]:
            raise ValueError(f'--data_service={self.address!r} is not valid; use grpc://HOST:PORT')
        if self.mode not in MODES:
            raise ValueError(f'--data_service_mode={self.mode!r} is not valid; valid: {", ".join(MODES)}')
        if self.batch_size <= 0:
            raise ValueError(f'--batch_size={self.batch_size} must be positive')
        if self.image_size <= 0:
            raise ValueError(f'--image_size={self.image_size} must be a positive number of pixels')
        if self.stall_timeout_s is not None and self.stall_timeout_s <= 0:
            raise ValueError(f'--data_service_stall_timeout_s={self.stall_timeout_s} must be positive')


def _runtime_seeded_shuffle(dataset: tf.data.Dataset, buffer_size: int) -> tf.data.Dataset:
    """Shuffles with a seed drawn when a worker starts iterating, not when the graph is built.

    Every worker receives the same graph. A seed fixed in it (Keras' global seed fixes even `seed=None`)
    would give every parallel_epochs worker the same order, so the trainer would see each example once
    per worker in lockstep. The wall clock at iterator creation differs per worker.
    """
    seeds = tf.data.Dataset.from_tensors(0).map(
        lambda _: tf.bitcast(tf.cast(tf.timestamp() * 1e9, tf.uint64), tf.int64))

    def shuffled(seed):
        # Only this function's graph: its seed comes from `seed`. With a global seed of 0 (Keras'
        # default `--seed`) TF's seed helper would otherwise test the seed tensor as a Python bool.
        tf.compat.v1.get_default_graph().seed = None
        return dataset.shuffle(buffer_size, seed=seed, reshuffle_each_iteration=True)

    return seeds.flat_map(shuffled)


def worker_pipeline(records: tf.data.Dataset, *, mode: str, batch_size: int, image_size: int,
                    num_examples: int, decoder=None) -> tf.data.Dataset:
    """The dataset the service workers run, from encoded records to batches.

    distributed_epoch: records -> shuffle (encoded, cheap) -> decode -> batch. One epoch, finite: the
        dispatcher splits the source among workers, so a worker cannot cache (it gets different records
        each epoch); it decodes every epoch, which is what the fleet is for. Batches keep their remainder
        (`distribute` rebatches on the trainer) so no example is dropped.
    parallel_epochs: records -> decode -> cache (worker RAM, filled in the first epoch) -> shuffle -> repeat
        -> batch. Infinite; after the first epoch a worker only gathers and batches.

    Args:
        records: finite `{'image': encoded tf.string, 'label': int}` (or anything `decoder` takes).
        mode: one of MODES.
        batch_size: examples per batch sent to a trainer.
        image_size: side of the decoded squares.
        num_examples: examples in `records` (bounds the shuffle buffers).
        decoder: record -> (image uint8 [S, S, 3], label int32); default: `decode.make_decoder(image_size)`.
    """
    decoder = decoder or decode.make_decoder(image_size)
    if mode == 'distributed_epoch':
        # The records themselves stay the source, so the dispatcher can split them across workers
        # (a seed dataset wrapped around them would be the one-element source, one split, one
        # worker). Workers read disjoint splits, so a shared graph-level seed is harmless here.
        ds = records.shuffle(min(num_examples, decode.RECORD_SHUFFLE_BUFFER), reshuffle_each_iteration=True)
        ds = ds.map(decoder, num_parallel_calls=AUTOTUNE, deterministic=False)
        ds = ds.batch(batch_size, drop_remainder=False)
    elif mode == 'parallel_epochs':
        buffer = max(batch_size, min(num_examples, _DECODED_SHUFFLE_BYTES // (image_size * image_size * 3)))
        ds = records.map(decoder, num_parallel_calls=AUTOTUNE, deterministic=False).cache()
        ds = _runtime_seeded_shuffle(ds, buffer).repeat()
        ds = ds.batch(batch_size, drop_remainder=True)  # static shapes for the compiled train step
    else:
        raise ValueError(f'--data_service_mode={mode!r} is not valid; valid: {", ".join(MODES)}')
    options = tf.data.Options()
    options.autotune.enabled = True
    options.deterministic = False
    return ds.prefetch(AUTOTUNE).with_options(options)


class DataServiceStalledError(RuntimeError):
    """The trainer received no batch from the tf.data service within `ServiceConfig.stall_timeout_s`."""


def _stall_message(cfg: ServiceConfig) -> str:
    return (f'tf.data service {cfg.address} (job {cfg.job_name!r}, {cfg.mode}) sent no batch for '
            f'{cfg.stall_timeout_s:g} s: a worker probably died (the service never gives up on a dead worker\'s '
            f'task, and the examples it held are lost); to recover, start a worker in place of the dead one '
            f'(same --worker_address), restart the dispatcher too (it keeps the dead worker in the job state '
            f'and a resumed run stalls again an epoch later; give it a fresh --work_dir if it had one), then '
            f'rerun the same train.py command (it resumes from the last backup)')


def _fail_on_stall(ds: tf.data.Dataset, cfg: ServiceConfig) -> tf.data.Dataset:
    """`ds`, but raising `DataServiceStalledError` when no element arrives for `cfg.stall_timeout_s`.

    tf.data has no timeout, and a blocked service read cannot be cancelled, so a daemon thread drives
    `ds` and hands elements over through a small queue the trainer's side waits on with a deadline. On a
    stall that thread stays blocked in the dead read (it holds no lock and dies with the process).
    """

    def generate():
        handoff = queue.Queue(maxsize=2)
        stop = threading.Event()

        def pump():
            try:
                for element in ds:
                    while not stop.is_set():
                        try:
                            handoff.put(('element', element), timeout=1.0)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                handoff.put(('end', None))
            except Exception as e:  # pylint: disable=broad-except  # re-raised on the trainer's side
                handoff.put(('error', e))

        threading.Thread(target=pump, name='data-service-reader', daemon=True).start()
        try:
            while True:
                try:
                    kind, value = handoff.get(timeout=cfg.stall_timeout_s)
                except queue.Empty:
                    raise DataServiceStalledError(_stall_message(cfg)) from None
                if kind == 'end':
                    return
                if kind == 'error':
                    raise value
                yield value
        finally:
            stop.set()

    return tf.data.Dataset.from_generator(generate, output_signature=ds.element_spec)


def distribute(worker_dataset: tf.data.Dataset, cfg: ServiceConfig) -> tf.data.Dataset:
    """Registers `worker_dataset` with the dispatcher and returns the trainer's endless stream of batches.

    In distributed_epoch mode each pass of the returned dataset's `repeat()` is a new iteration of the
    shared job, i.e. one more epoch over every example; worker batches (which keep their remainders)
    are rebatched here to exactly `batch_size`, so shapes are static and nothing is dropped.
    The result carries auto-sharding OFF: the service already decides who gets what, and a tf.distribute
    re-shard would throw batches away.

    A worker that dies mid-epoch is not survived: TF's service keeps retrying its task and (distributed_epoch)
    never ends the epoch, because the examples it held are lost. So with `cfg.stall_timeout_s` set, reading
    fails with `DataServiceStalledError` (its message names the dispatcher) once no batch came for that long.
    """
    policy = (tf.data.experimental.service.ShardingPolicy.DYNAMIC if cfg.mode == 'distributed_epoch'
              else tf.data.experimental.service.ShardingPolicy.OFF)
    ds = worker_dataset.apply(tf.data.experimental.service.distribute(
        processing_mode=policy, service=cfg.address, job_name=cfg.job_name,
        max_outstanding_requests=cfg.max_outstanding_requests))
    if cfg.mode == 'distributed_epoch':
        ds = ds.repeat().rebatch(cfg.batch_size, drop_remainder=True)
    if cfg.stall_timeout_s is not None:
        ds = _fail_on_stall(ds, cfg)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return ds.prefetch(AUTOTUNE).with_options(options)


def synthetic_records(num_examples: int, image_size: int, num_classes: int, seed: int) -> tf.data.Dataset:
    """(image uint8, label int32) examples generated on the worker from their index: no constants shipped."""

    def make(index):
        key = tf.stack([tf.cast(seed, tf.int64), index])
        image = tf.random.stateless_uniform([image_size, image_size, 3], key, maxval=256, dtype=tf.int32)
        return tf.cast(image, tf.uint8), tf.cast(index % num_classes, tf.int32)

    return tf.data.Dataset.range(num_examples).map(make)


def check_dispatcher(address: str, timeout_s: float = 10.0) -> None:
    """Raises ValueError (one line, naming the flag) unless something accepts connections at `address`.

    tf.data service would otherwise block forever registering the dataset with a dispatcher that is down.
    """
    host, _, port = address.removeprefix('grpc://').rpartition(':')
    try:
        with socket.create_connection((host or 'localhost', int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError) as e:
        raise ValueError(
            f'--data_service={address}: no dispatcher answers there ({getattr(e, "strerror", None) or e}); '
            f'start one with `python -m cli.data_service dispatcher --port={port}`') from None


def distribute_train(service: ServiceConfig, dataset: str, pipeline_cfg: PipelineConfig, builder, *,
                     input_context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
    """The training dataset served by the tf.data service at `service.address`.

    The TFDS read, decode, resize, cache, shuffle and batch run on the service workers; the trainer only
    receives (images uint8 [B, S, S, 3], labels int32 [B]) batches. The workers read the TFDS files
    themselves, so `--data_dir` must name the same (shared) storage on every worker.

    Args:
        service: address, mode, job name (shared by all trainers of the run) and stall timeout; its
            batch_size and image_size are replaced by the pipeline's (per replica with `input_context`).
        dataset: the dataset's name (`SourceConfig.dataset`), for its splits and classes.
        pipeline_cfg: batch_size, cache_size, validation_fraction and seed of the run's input.
        builder: the prepared TFDS builder (`sources.prepare`), or None with `--synthetic_data`.
        input_context: with several replicas, batches are per-replica sized (feed the result through
            `training.strategy.distribute_per_worker`).

    Returns:
        An infinite dataset of static-shape batches, auto-sharding off.
    """
    from fastclassify.pipelines import datasets, pipeline, sources, synthetic  # pylint: disable=import-outside-toplevel

    check_dispatcher(service.address)
    batch = (input_context.get_per_replica_batch_size(pipeline_cfg.batch_size) if input_context
             else pipeline_cfg.batch_size)
    service = dataclasses.replace(service, batch_size=batch, image_size=pipeline_cfg.cache_size)
    spec = datasets.get_dataset_spec(dataset)
    if builder is None:
        # `--synthetic_data`: generated on the workers, never shipped from the trainer.
        records = synthetic_records(synthetic.TRAIN_EXAMPLES, pipeline_cfg.cache_size, spec.num_classes,
                                    pipeline_cfg.seed)
        num_train, decoder = synthetic.TRAIN_EXAMPLES, lambda image, label: (image, label)
    else:
        sizes = sources.split_sizes(builder)
        train_split, _, num_train, _ = pipeline.carve_validation(
            spec.train_split, sizes[spec.train_split], pipeline_cfg.validation_fraction)
        records, decoder = sources.read_split(builder, train_split), None
    worker = worker_pipeline(records, mode=service.mode, batch_size=batch, image_size=service.image_size,
                             num_examples=num_train, decoder=decoder)
    return distribute(worker, service)
