"""CLI: our input pipeline side by side with what users do today, on the same data, in one run.

    python -m benchmarks.input_pipeline --dataset=caltech256|cifar100 [--data_dir=DIR] [--image_size=S]
        [--batch_size=B] [--examples=N] [--cache=memory|disk|device] [--augment=POLICY,...] [--json=PATH]
        [--ram_budget_gb=G]

Every run times the memory and the disk cache side by side (`ours_cached_epoch`, `ours_disk_cache_epoch`).
With `--ram_budget_gb` below the cache's size it times only the disk cache, as `--cache=auto` would use it
over that budget, and reports the peak RSS.

Without `--data_dir` it generates photo-like JPEGs (Caltech-256 sizes) or 32 px PNGs (CIFAR-100) in memory;
with it, it reads the prepared TFDS dataset (`python -m cli.prepare`). Figures: see BUILD.md.
"""

import dataclasses
import importlib.metadata
import json
import os
import platform
import resource
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

from benchmarks import baselines, hardware, timing
from fastclassify.pipelines import cache as cache_lib
from fastclassify.pipelines import decode
from fastclassify.pipelines.device_cache import DeviceCache
from fastclassify.pipelines import pipeline
from fastclassify.pipelines import synthetic
from fastclassify.pipelines.datasets import get_dataset_spec

# Examples decoded per run: enough for stable figures, small enough for a few minutes on 2 cores.
DEFAULT_EXAMPLES = {'caltech256': 2000, 'cifar100': 20000}
BENCH_CACHE_CHOICES = ('memory', 'disk', 'device')
LIMIT = 'memory_bandwidth_limit'
IDG = 'imagedatagenerator_seed_policy'


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
    """One benchmark run (flags of the same names).

    Attributes:
        dataset: `--dataset`.
        data_dir: `--data_dir`; None = generated data of the dataset's shape.
        image_size: `--image_size`; None = the dataset preset's.
        batch_size: `--batch_size`; None = the dataset preset's.
        examples: `--examples`, how many training examples are decoded and cached; None = a default.
        cache: `--cache`, placement behind `ours_cached_epoch` (memory|disk|device).
        min_seconds: `--min_seconds`, each timed row runs at least this long (warm-up excluded).
        augment: `--augment`, policies whose on-device throughput is appended (augment_benchmark rows).
        seed: `--seed`.
        json_path: `--json`, where the report goes.
        ram_budget_gb: `--ram_budget_gb`; a cache larger than this runs the disk rows alone, with the
            resident limit training uses over budget.
        baselines: `--baselines`; False times our rows alone (and the bandwidth limit), e.g. where device
            time is scarce.
    """

    dataset: str
    data_dir: str | None = None
    image_size: int | None = None
    batch_size: int | None = None
    examples: int | None = None
    cache: str = 'memory'
    min_seconds: float = 3.0
    augment: tuple[str, ...] = ()
    seed: int = 0
    json_path: str | None = None
    ram_budget_gb: float | None = None
    baselines: bool = True

    def __post_init__(self):
        # The table knows any TFDS name now; this benchmark generates or reads only these two.
        if self.dataset not in DEFAULT_EXAMPLES:
            raise ValueError(f'--dataset={self.dataset!r} is not benchmarked; valid: {", ".join(DEFAULT_EXAMPLES)}')
        spec = get_dataset_spec(self.dataset)
        if self.cache not in BENCH_CACHE_CHOICES:
            raise ValueError(f'--cache={self.cache!r} is not benchmarked; valid: {", ".join(BENCH_CACHE_CHOICES)}')
        for flag, value in (('image_size', self.image_size), ('batch_size', self.batch_size),
                            ('examples', self.examples)):
            if value is not None and value <= 0:
                raise ValueError(f'--{flag}={value} must be positive')
        if self.ram_budget_gb is not None and self.ram_budget_gb <= 0:
            raise ValueError(f'--ram_budget_gb={self.ram_budget_gb:g} must be positive')
        if self.min_seconds <= 0:
            raise ValueError(f'--min_seconds={self.min_seconds} must be positive')
        if self.num_examples < 2 * self.batch:
            raise ValueError(f'--examples={self.num_examples} must be at least two batches of {self.batch}')
        del spec

    @property
    def size(self) -> int:
        return self.image_size or get_dataset_spec(self.dataset).preset['image_size']

    @property
    def batch(self) -> int:
        return self.batch_size or get_dataset_spec(self.dataset).preset['batch_size']

    @property
    def num_examples(self) -> int:
        return self.examples or DEFAULT_EXAMPLES[self.dataset]


def load_examples(cfg: BenchmarkConfig) -> tuple[list[bytes], np.ndarray, str]:
    """Encoded training examples: from the prepared dataset, or generated in its real format."""
    spec = get_dataset_spec(cfg.dataset)
    n = cfg.num_examples
    if cfg.data_dir:
        from fastclassify.pipelines import sources  # pylint: disable=import-outside-toplevel  # TFDS builders only here
        builder = sources.prepare(sources.SourceConfig(dataset=cfg.dataset, data_dir=cfg.data_dir, download=False))
        records = sources.read_split(builder, f'{spec.train_split}[:{n}]')
        blobs, labels = [], []
        for record in records.as_numpy_iterator():
            blobs.append(record['image'])
            labels.append(record['label'])
        return blobs, np.asarray(labels, np.int64), f'prepared {builder.name} in {cfg.data_dir}'
    if spec.native_size:
        blobs, labels = synthetic.encoded_examples(n, spec.num_classes, fmt='png', seed=cfg.seed,
                                                   size_range=(spec.native_size, spec.native_size))
        return blobs, labels, f'generated {spec.native_size} px PNGs'
    blobs, labels = synthetic.encoded_examples(n, spec.num_classes, fmt='jpeg', seed=cfg.seed,
                                               grayscale_every=20)
    return blobs, labels, 'generated photo-like JPEGs, 200-500 px sides, 5% grayscale'


def _rss_bytes() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def _status_bytes(field: str) -> int:
    """A size from /proc/self/status (e.g. 'RssAnon': anonymous memory, without page-cache pages)."""
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ':'))


def _peak_rss_since_reset_bytes() -> int:
    return _status_bytes('VmHWM')


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def time_dataset(dataset: tf.data.Dataset, *, name: str, min_seconds: float, min_images: int = 0,
                 transform=None) -> dict:
    """Images/s a (repeating) dataset delivers to a compiled consumer, as `fit` with steps_per_execution.

    Batches are pulled inside a `tf.function` loop, so Python's ~0.1 ms per `next()` does not cap small
    batches; the last batch (after `transform`, e.g. a device gather) is carried as a loop variable so
    nothing is pruned. Tracing and the first batches are warm-up and not timed.
    """
    iterator = iter(dataset)

    def pull():
        batch = next(iterator)
        return transform(*batch) if transform is not None else batch

    @tf.function
    def drain(steps):
        def body(i, carried):
            del carried
            return i + 1, pull()

        _, last = tf.while_loop(lambda i, _: i < steps, body, (tf.constant(1), pull()))
        return tf.shape(tf.nest.flatten(last)[0])[0]

    batch = int(drain(tf.constant(2)).numpy())  # warm-up: tracing, first batches, thread pools
    start = time.perf_counter()
    drain(tf.constant(2)).numpy()
    per_step = (time.perf_counter() - start) / 2
    steps = max(2, min(10_000, int(0.25 / max(per_step, 1e-7))))  # ~0.25 s per call
    count, start = 0, time.perf_counter()
    while True:
        drain(tf.constant(steps)).numpy()  # .numpy() waits for the device, too
        count += steps * batch
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds and count >= min_images:
            return timing.row(name, count, elapsed)


def _time_device_gather(host: cache_lib.HostCache, index_batches: tf.data.Dataset, *,
                        min_seconds: float) -> dict:
    """Gathers batches from the train step's own `DeviceCache` inside one compiled loop, and times it.

    Index batches are staged on the device first; each loop iteration gathers a full batch and adds the sum
    of all its pixels to the carried value, so every gathered byte is read, as a train step reads it. (XLA
    fuses a gather into its consumer: folding in one pixel gathered one pixel per image, 1.1e9 "images"/s
    on a 2-vCPU CPU with JAX.) Runs on the Keras backend in use.
    """
    import keras  # pylint: disable=import-outside-toplevel
    blocks = 256
    device_cache = DeviceCache(host.pixels())
    indices = keras.ops.convert_to_tensor(np.stack([i for i, _ in index_batches.take(blocks).as_numpy_iterator()]))

    def gather_all(indices):
        def body(i, total):
            batch = device_cache(indices[i])
            return total + keras.ops.sum(keras.ops.cast(batch, 'int32'))
        return keras.ops.fori_loop(0, blocks, body, keras.ops.zeros((), 'int32'))

    run = compiled(gather_all)
    np.asarray(run(indices))  # warm-up: tracing and compilation
    batch = int(indices.shape[1])
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_seconds:
        np.asarray(run(indices))  # converting waits for the device
        count += blocks * batch
    return timing.row('ours_device_cache', count, time.perf_counter() - start)


def compiled(fn):
    """`fn` compiled with XLA by the Keras backend in use (a benchmark needs the train step's compiler)."""
    import keras  # pylint: disable=import-outside-toplevel
    if keras.backend.backend() == 'jax':
        import jax  # pylint: disable=import-outside-toplevel
        return jax.jit(fn)
    return tf.function(fn, jit_compile=True)


def run_benchmark(cfg: BenchmarkConfig) -> dict:
    """Runs every row on the same examples and returns the JSON report."""
    size, batch = cfg.size, cfg.batch
    blobs, labels, source = load_examples(cfg)
    n = len(blobs)
    records = synthetic.records_dataset(blobs, labels)
    decoder = decode.make_decoder(size)
    decoded = records.map(decoder, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    results, notes = [], {}
    seconds = cfg.min_seconds
    if cfg.ram_budget_gb is not None and cache_lib.cached_bytes(n, size) > cfg.ram_budget_gb * 2**30:
        return _report(cfg, source, *_run_over_budget(cfg, decoded, n))

    with tempfile.TemporaryDirectory(prefix='pipeline_benchmark_') as tmp:
        # First epoch: the one parallel decode + resize into the cache (decode-bound).
        decoded_warm = decoded.take(2 * batch).batch(batch)
        for _ in decoded_warm:
            pass
        rss_before = _rss_bytes()
        start = time.perf_counter()
        host = cache_lib.materialize(decoded, size)
        results.append(timing.row('ours_first_epoch', n, time.perf_counter() - start))
        notes['cache_resident_bytes'] = cache_lib.resident_bytes(host.array)
        notes['rss_growth_bytes'] = _rss_bytes() - rss_before
        notes['cache_expected_bytes'] = cache_lib.cached_bytes(n, size)
        # The same decode written once to a file and memory-mapped: the disk cache's first epoch.
        on_disk = _time_disk_cache(decoded, tmp, f'{cfg.dataset}_{size}px', n, results, notes)

        # Cached epochs through the real training pipeline.
        min_images = 2 * n
        if cfg.cache == 'device':
            on_device = tf.identity(host.images)
            indices = pipeline.train_indices_for_device(host, batch, seed=cfg.seed, deterministic=False)
            # As the train step does: indices from tf.data, the gather where the cache lives.
            results.append(time_dataset(indices, name='ours_cached_epoch', min_seconds=seconds,
                                        min_images=min_images, transform=lambda i, _: tf.gather(on_device, i)))
        else:
            train = pipeline.train_from_host_cache(on_disk if cfg.cache == 'disk' else host, batch, seed=cfg.seed,
                                                   deterministic=False)
            results.append(time_dataset(train, name='ours_cached_epoch', min_seconds=seconds, min_images=min_images))
        # The disk cache through the same train path, its file in the page cache (just written or checked).
        train = pipeline.train_from_host_cache(on_disk, batch, seed=cfg.seed, deterministic=False)
        results.append(time_dataset(train, name='ours_disk_cache_epoch', min_seconds=seconds, min_images=min_images))
        del train, on_disk

        indices = pipeline.train_indices_for_device(host, batch, seed=cfg.seed, deterministic=False)
        results.append(_time_device_gather(host, indices, min_seconds=seconds))

        if cfg.baselines:
            _time_baselines(blobs, labels, size, batch, tmp, seconds, results, notes)

        results.append(baselines.memory_bandwidth_limit(host.array, batch, min_seconds=seconds, seed=cfg.seed))
        del host

    if cfg.augment:
        from benchmarks import augment as augment_benchmark  # pylint: disable=import-outside-toplevel
        results.extend(augment_benchmark.run_augment_benchmark(list(cfg.augment), image_size=size,
                                                               batch_size=batch, seed=cfg.seed))
    naive = next((r['images_per_sec'] for r in results if r['name'] == 'naive_tf_data'), None)
    if naive is not None:
        notes['cores_x_one_thread_decode'] = naive * (os.cpu_count() or 1)
    return _report(cfg, source, results, notes)


def _time_baselines(blobs, labels, size: int, batch: int, tmp: str, seconds: float, results: list,
                    notes: dict) -> None:
    """What users do today, on the same examples: naive tf.data, image_dataset_from_directory, IDG."""
    # Repeated so each baseline runs as long as ours; without a cache every pass decodes again anyway.
    naive = baselines.naive_tf_data(blobs, labels, size, batch).repeat()
    results.append(time_dataset(naive, name='naive_tf_data', min_seconds=seconds))
    folder = baselines.write_image_folder(blobs, labels, os.path.join(tmp, 'images'))
    from_directory = baselines.image_dataset_from_directory(folder, size, batch).repeat()
    results.append(time_dataset(from_directory, name='image_dataset_from_directory', min_seconds=seconds))
    try:
        generator = baselines.imagedatagenerator_seed_policy(folder, size, batch)
    except ImportError as e:
        notes['skipped'] = {IDG: str(e)}
    else:
        results.append(timing.time_batches(generator, warmup=1, min_seconds=seconds, min_images=0,
                                           max_images=len(blobs), name=IDG))


def _time_disk_cache(decoded: tf.data.Dataset, folder: str, key: str, n: int, results: list, notes: dict, *,
                     resident_limit_bytes: int | None = None) -> cache_lib.HostCache:
    """Times the disk cache's first epoch (decode, write, map) and its checks; returns the mapped cache.

    The check is timed twice: cold (the file's pages dropped from the page cache first: a disk read plus the
    CRC-32) and hot (in the page cache: the CRC-32 alone); both are what a later run pays before training.
    """
    path = cache_lib.file_cache_path(folder, key)
    start = time.perf_counter()
    on_disk = cache_lib.file_cache(decoded, path, resident_limit_bytes=resident_limit_bytes)
    results.append(timing.row('ours_disk_first_epoch', n, time.perf_counter() - start))
    file_bytes = os.path.getsize(path)
    notes['disk_cache_file_bytes'] = file_bytes
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # written back first: only clean pages can be dropped
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    for temperature in ('cold', 'hot'):
        start = time.perf_counter()
        cache_lib.file_cache(decoded, path)  # the existing file: header, size and checksum checks, then mapped
        notes[f'disk_cache_check_{temperature}_gb_per_s'] = file_bytes / 1e9 / (time.perf_counter() - start)
    return on_disk


def _run_over_budget(cfg: BenchmarkConfig, decoded: tf.data.Dataset, n: int) -> tuple[list, dict]:
    """The disk cache alone, as training uses it over the RAM budget: its first and cached epochs, peak RSS."""
    budget = int(cfg.ram_budget_gb * 2**30)
    notes = {'ram_budget_bytes': budget, 'physical_ram_bytes': cache_lib.physical_ram_bytes(),
             'rss_before_bytes': _rss_bytes()}
    results = []
    with tempfile.TemporaryDirectory(prefix='pipeline_benchmark_') as tmp:
        on_disk = _time_disk_cache(decoded, tmp, f'{cfg.dataset}_{cfg.size}px', n, results, notes,
                                   resident_limit_bytes=budget)
        notes['rss_before_epochs_bytes'] = _rss_bytes()
        notes['rss_anon_before_epochs_bytes'] = _status_bytes('RssAnon')
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # resets the peak RSS: what follows is the cached epochs' own
        train = pipeline.train_from_host_cache(on_disk, cfg.batch, seed=cfg.seed, deterministic=False)
        results.append(time_dataset(train, name='ours_disk_cache_epoch', min_seconds=cfg.min_seconds,
                                    min_images=2 * n))
        notes['peak_rss_during_epochs_bytes'] = _peak_rss_since_reset_bytes()
        notes['rss_anon_after_epochs_bytes'] = _status_bytes('RssAnon')
        notes['disk_cache_resident_bytes'] = cache_lib.resident_bytes(on_disk.array)
        del train, on_disk
    return results, notes


def _report(cfg: BenchmarkConfig, source: str, results: list, notes: dict) -> dict:
    spec = get_dataset_spec(cfg.dataset)
    notes['peak_rss_bytes'] = _peak_rss_bytes()
    size, batch = cfg.size, cfg.batch
    return {
            'dataset': cfg.dataset,
            'image_size': size,
            'batch_size': batch,
            'cpu_count': os.cpu_count(),
            'device': hardware.summary(),
            'source': source,
            'versions': {'tensorflow': tf.__version__, 'keras': importlib.metadata.version('keras'),
                         'python': platform.python_version(), 'numpy': np.__version__},
            'results': results,
            'notes': notes,
            'num_classes': spec.num_classes,
    }


def format_table(report: dict) -> str:
    """The results as a text table with each row's ratio to the bandwidth limit and to ImageDataGenerator."""
    rates = {r['name']: r['images_per_sec'] for r in report['results']}
    limit, idg = rates.get(LIMIT), rates.get(IDG)
    lines = [f'{report["dataset"]} at {report["image_size"]} px, batch {report["batch_size"]}, '
             f'{report["device"]}; data: {report["source"]}',
             f'{"pipeline":34s} {"images/s":>12s} {"images":>9s} {"seconds":>8s} {"x limit":>8s} {"x IDG":>9s}']
    for r in report['results']:
        x_limit = f'{r["images_per_sec"] / limit:.2f}' if limit else '-'
        x_idg = f'{r["images_per_sec"] / idg:.1f}' if idg else '-'
        lines.append(f'{r["name"]:34s} {r["images_per_sec"]:12,.0f} {r["images"]:9,d} {r["seconds"]:8.2f} '
                     f'{x_limit:>8s} {x_idg:>9s}')
    notes = report['notes']
    human = cache_lib.human_bytes
    first = rates.get('ours_first_epoch')
    if first is not None and 'cores_x_one_thread_decode' in notes:
        lines.append(f'first epoch / (cores x one-thread decode): {first / notes["cores_x_one_thread_decode"]:.2f}')
        lines.append(f'cache resident {human(notes["cache_resident_bytes"])} vs expected '
                     f'{human(notes["cache_expected_bytes"])} (process RSS grew {human(notes["rss_growth_bytes"])})')
    if first is not None and 'ours_disk_cache_epoch' in rates:
        lines.append(f'disk / memory: cached epoch {rates["ours_disk_cache_epoch"] / rates["ours_cached_epoch"]:.2f}, '
                     f'first epoch {rates["ours_disk_first_epoch"] / first:.2f}')
    if 'disk_cache_file_bytes' in notes:
        lines.append(f'disk cache file {human(notes["disk_cache_file_bytes"])}; its check before use: '
                     f'{notes["disk_cache_check_cold_gb_per_s"]:.2f} GB/s cold, '
                     f'{notes["disk_cache_check_hot_gb_per_s"]:.2f} GB/s in the page cache')
    if 'ram_budget_bytes' in notes:
        lines.append(f'over the {human(notes["ram_budget_bytes"])} RAM budget ({human(notes["physical_ram_bytes"])} '
                     f'physical): RSS {human(notes["rss_before_epochs_bytes"])} before the cached epochs, peak '
                     f'{human(notes["peak_rss_during_epochs_bytes"])} during them, anonymous memory '
                     f'{human(notes["rss_anon_before_epochs_bytes"])} -> {human(notes["rss_anon_after_epochs_bytes"])}; '
                     f'disk cache resident in the process {human(notes["disk_cache_resident_bytes"])} after them')
    lines.append(f'peak RSS {human(notes["peak_rss_bytes"])}')
    for name, why in notes.get('skipped', {}).items():
        lines.append(f'skipped {name}: {why}')
    return '\n'.join(lines)


def config_from_flags(flag_values) -> BenchmarkConfig:
    """Turns parsed flags into the frozen config, once."""
    if flag_values.dataset is None:
        raise ValueError('--dataset is required (or --augment alone); valid: caltech256, cifar100')
    return BenchmarkConfig(
            dataset=flag_values.dataset,
            data_dir=flag_values.data_dir,
            image_size=flag_values.image_size,
            batch_size=flag_values.batch_size,
            examples=flag_values.examples,
            cache=flag_values.cache,
            min_seconds=flag_values.min_seconds,
            augment=tuple(p for p in (flag_values.augment or '').split(',') if p),
            seed=flag_values.seed,
            json_path=flag_values.json,
            ram_budget_gb=flag_values.ram_budget_gb,
            baselines=flag_values.baselines,
    )


def augment_only_report(flag_values) -> dict:
    """`--augment` without `--dataset`: the augmentation rows alone, in the pipeline report's schema."""
    from benchmarks import augment as augment_benchmark  # pylint: disable=import-outside-toplevel
    policies = [p for p in flag_values.augment.split(',') if p]
    size = flag_values.image_size or 224
    batch = flag_values.batch_size or 64
    results = augment_benchmark.run_augment_benchmark(policies, image_size=size, batch_size=batch,
                                                      seed=flag_values.seed)
    return {'dataset': None, 'image_size': size, 'batch_size': batch, 'cpu_count': os.cpu_count(),
            'device': hardware.summary(), 'results': results}


def main(argv):
    del argv
    from absl import flags  # pylint: disable=import-outside-toplevel
    flag_values = flags.FLAGS
    try:
        if flag_values.dataset is None and flag_values.augment:
            report = augment_only_report(flag_values)
            for row in report['results']:
                print(f'{row["name"]:40s} {row["images_per_sec"]:12,.0f} images/s '
                      f'({row["images"]} images, {row["seconds"]:.2f} s)')
        else:
            report = run_benchmark(config_from_flags(flag_values))
            print(format_table(report))
    except ValueError as e:
        print(f'benchmarks.input_pipeline: error: {e}', file=sys.stderr)
        return 2
    if flag_values.json:
        with open(flag_values.json, 'w') as f:
            json.dump(report, f, indent=2)
    return 0


def _define_flags():
    from absl import flags  # pylint: disable=import-outside-toplevel
    flags.DEFINE_string('dataset', None, 'caltech256 or cifar100.')
    flags.DEFINE_string('data_dir', None, 'Prepared TFDS data directory; default: generated data of the same shape.')
    flags.DEFINE_integer('image_size', None, 'Cache side in pixels (default: the dataset preset).')
    flags.DEFINE_integer('batch_size', None, 'Batch size (default: the dataset preset).')
    flags.DEFINE_integer('examples', None, 'Training examples decoded and cached (default: 2000 / 20000).')
    flags.DEFINE_enum('cache', 'memory', list(BENCH_CACHE_CHOICES), 'Placement behind ours_cached_epoch.')
    flags.DEFINE_float('min_seconds', 3.0, 'Each timed row runs at least this long, warm-up excluded.')
    flags.DEFINE_string('augment', None, 'Also time these augmentation policies (comma-separated).')
    flags.DEFINE_integer('seed', 0, 'Seed for data generation and shuffles.')
    flags.DEFINE_string('json', None, 'Write the report as JSON to this path.')
    flags.DEFINE_bool('baselines', True, 'Also time what users do today (naive tf.data, '
                      'image_dataset_from_directory, ImageDataGenerator); --nobaselines times ours alone.')
    flags.DEFINE_float('ram_budget_gb', None, 'A cache larger than this times the disk cache alone, as '
                       '--cache=auto uses it over that RAM budget (images/s and peak RSS).')


if __name__ == '__main__':
    from absl import app  # pylint: disable=import-outside-toplevel
    _define_flags()
    sys.exit(app.run(main))
