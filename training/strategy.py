"""Picks the tf.distribute strategy and answers who writes what: TensorFlow's own engines, no layer of ours."""

import json
import os
import shutil
import tempfile

import keras
import tensorflow as tf
from absl import logging

from fastclassify.training import multiprocess


# `--strategy` values per Keras backend: TensorFlow's tf.distribute engines, or Keras' own distribution on JAX.
from fastclassify.training.choices import JAX_STRATEGIES, STRATEGIES, TF_STRATEGIES  # noqa: F401


class StrategyError(Exception):
    """One-line message: the strategy asked for cannot run here, and what to do instead."""


def tf_config() -> dict:
    """The parsed `TF_CONFIG` environment variable ({} when unset).

    Raises:
      StrategyError: TF_CONFIG is set but is not JSON.
    """
    text = os.environ.get('TF_CONFIG', '')
    if not text:
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise StrategyError(f'TF_CONFIG is not valid JSON ({e}); see BUILD.md, "Several hosts"') from None


def num_cluster_workers(config: dict) -> int:
    """Training tasks (chief + workers) named by a TF_CONFIG dict; evaluators and ps do not train."""
    cluster = config.get('cluster', {})
    return sum(len(cluster.get(kind, [])) for kind in ('chief', 'worker'))


def resolve_name(name: str) -> str:
    """Turns `--strategy=auto` into a concrete name; other names come back unchanged.

    `auto`: a TPU when one is configured or attached, MultiWorkerMirroredStrategy when TF_CONFIG names
    several training tasks, MirroredStrategy when more than one GPU is visible, else one device.
    """
    if name != 'auto':
        return name
    if _tpu_address() is not None:
        return 'tpu'
    if num_cluster_workers(tf_config()) > 1:
        return 'multi_worker'
    if len(tf.config.list_physical_devices('GPU')) > 1:
        return 'mirrored'
    return 'one_device'


def build_strategy(name: str) -> tf.distribute.Strategy:
    """Returns the strategy for `--strategy` (auto|one_device|mirrored|multi_worker|tpu).

    Build it before any other TensorFlow work of the run: MultiWorkerMirroredStrategy and the TPU
    system must be set up before TensorFlow creates its devices.

    On the JAX backend the model side is Keras' own: `auto` (or `data_parallel`) sets
    `keras.distribution.DataParallel` over the devices when there are several, each device taking
    its share of the batch; TensorFlow's default strategy is returned for the input side (its scope does
    nothing). When KERAS_DISTRIBUTION_NUM_PROCESSES says there are several processes, this one first
    joins the job (`training/multiprocess.py`) and the devices are every process's.

    Raises:
      StrategyError: `tpu` without a TPU, `multi_worker` without a usable TF_CONFIG, unknown name, a
        tf.distribute strategy on the JAX backend.
    """
    if keras.backend.backend() == 'jax':
        return _jax_data_parallel(name)
    if name == 'data_parallel':
        raise StrategyError('--strategy=data_parallel is the JAX backend\'s; with TensorFlow use '
                            '--strategy=auto or mirrored')
    resolved = resolve_name(name)
    if resolved == 'tpu':
        strategy = _tpu_strategy()
    elif resolved == 'multi_worker':
        strategy = _multi_worker_strategy()
    elif resolved == 'mirrored':
        strategy = tf.distribute.MirroredStrategy(devices=_local_devices())
    elif resolved == 'one_device':
        gpus = tf.config.list_logical_devices('GPU')
        strategy = tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else '/cpu:0')
    else:
        raise StrategyError(f'--strategy={name!r} is not valid; valid: {", ".join(TF_STRATEGIES)}')
    logging.info('--strategy=%s: %s with %d replica(s)', name, type(strategy).__name__,
                 strategy.num_replicas_in_sync)
    return strategy


def _jax_data_parallel(name: str) -> tf.distribute.Strategy:
    if name not in JAX_STRATEGIES:
        raise StrategyError(f'--strategy={name} is a TensorFlow strategy; with KERAS_BACKEND=jax use '
                            f'{", ".join(JAX_STRATEGIES)} (data_parallel: keras.distribution.DataParallel)')
    try:
        layout = multiprocess.layout_from_env()
    except multiprocess.LayoutError as e:
        raise StrategyError(str(e)) from None
    if layout is not None:
        if name == 'one_device':
            raise StrategyError(f'--strategy=one_device but {multiprocess.ENV_NUM_PROCESSES}='
                                f'{layout.num_processes}: use --strategy=auto or data_parallel')
        multiprocess.initialize(layout)
    devices = keras.distribution.list_devices()
    if name != 'one_device' and len(devices) > 1:
        # Each process feeds only its rows of the global batch (pipelines/sharding.py): Keras must not
        # shard the stream again.
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False))
    if layout is not None:
        logging.info('process %d of %d (coordinator %s)', layout.process_id, layout.num_processes,
                     layout.coordinator)
    logging.info('--strategy=%s on JAX: %d device(s)', name, num_replicas(tf.distribute.get_strategy()))
    return tf.distribute.get_strategy()


def num_replicas(strategy: tf.distribute.Strategy) -> int:
    """Devices one global batch is split over (the JAX distribution's, or the strategy's replicas)."""
    if keras.backend.backend() == 'jax':
        distribution = keras.distribution.distribution()
        return int(distribution.device_mesh.devices.size) if distribution is not None else 1
    return strategy.num_replicas_in_sync


def device_names(strategy: tf.distribute.Strategy) -> list[str]:
    """The devices the model trains on, for the start-up line."""
    if keras.backend.backend() == 'jax':
        distribution = keras.distribution.distribution()
        if distribution is not None:
            return [str(d) for d in distribution.device_mesh.devices.flatten()]
        return [keras.distribution.list_devices()[0]]
    return list(strategy.extended.worker_devices)


def _local_devices() -> list[str]:
    """Every local GPU; without GPUs every logical CPU (how tests and CPU hosts get several replicas)."""
    gpus = tf.config.list_logical_devices('GPU')
    return [d.name for d in (gpus or tf.config.list_logical_devices('CPU'))]


def _multi_worker_strategy() -> tf.distribute.MultiWorkerMirroredStrategy:
    config = tf_config()
    if num_cluster_workers(config) == 0 or 'task' not in config:
        raise StrategyError(
            '--strategy=multi_worker needs TF_CONFIG with a "cluster" (chief/worker addresses) and this '
            'process\'s "task"; see BUILD.md, "Several hosts"')
    # NCCL is the fast all-reduce between GPUs; on CPU-only clusters RING (gRPC) is the one that works.
    implementation = (tf.distribute.experimental.CommunicationImplementation.NCCL
                      if tf.config.list_physical_devices('GPU')
                      else tf.distribute.experimental.CommunicationImplementation.RING)
    _configure_coordination(config)
    return tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(implementation=implementation))


# TF's coordination service declares a task dead after 10 s without a heartbeat: a worker whose host is
# busy (building or compiling the model on a loaded CPU box, CI) can miss that, and the chief then fails
# with "tasks are unhealthy (stopped sending heartbeats)". A crashed worker is still noticed, later.
HEARTBEAT_TIMEOUT_MS = 60_000


def _configure_coordination(config: dict) -> None:
    """Configures the coordination service as MultiWorkerMirroredStrategy would, with a longer heartbeat
    timeout (it keeps a service configured before it, and offers no argument for the timeout)."""
    # The proto module as the strategy itself imports it (its path moves between TF versions).
    from tensorflow.python.distribute import collective_all_reduce_strategy as mwms  # pylint: disable=import-outside-toplevel
    from tensorflow.python.distribute import multi_worker_util  # pylint: disable=import-outside-toplevel
    from tensorflow.python.eager import context  # pylint: disable=import-outside-toplevel

    coordination_config_pb2 = mwms.coordination_config_pb2

    if config.get('task', {}).get('type') not in ('chief', 'worker'):
        return
    ctx = context.context()
    if ctx.coordination_service is not None:
        return
    cluster = tf.train.ClusterSpec(config['cluster'])
    jobs = [coordination_config_pb2.CoordinatedJob(name=job, num_tasks=cluster.num_tasks(job))
            for job in ('chief', 'worker') if job in cluster.jobs]
    ctx.configure_coordination_service(
        service_type='standalone', service_leader=multi_worker_util.coordination_leader(cluster),
        coordinated_jobs=jobs, heartbeat_timeout_in_ms=HEARTBEAT_TIMEOUT_MS)


def _tpu_address() -> str | None:
    """The TPU to use: `TPU_NAME` / `COLAB_TPU_ADDR`, 'local' on a TPU VM, or None."""
    if os.environ.get('TPU_NAME'):
        return os.environ['TPU_NAME']
    if os.environ.get('COLAB_TPU_ADDR'):
        return 'grpc://' + os.environ['COLAB_TPU_ADDR']
    # A TPU VM exposes its chips as local devices; no address to connect to.
    if tf.config.list_physical_devices('TPU'):
        return 'local'
    return None


def _tpu_strategy() -> tf.distribute.TPUStrategy:
    address = _tpu_address()
    if address is None:
        raise StrategyError('--strategy=tpu but no TPU was found (no TPU_NAME, no local TPU devices); '
                            'use --strategy=auto to train on what this machine has')
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address)
        if address != 'local':
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.OpError) as e:
        raise StrategyError(f'--strategy=tpu: could not reach the TPU {address!r} '
                            f'({str(e).splitlines()[0][:160]})') from None
    return tf.distribute.TPUStrategy(resolver)


def task(strategy: tf.distribute.Strategy) -> tuple[str | None, int]:
    """(task_type, task_id) of this process in a multi-worker cluster; (None, 0) when alone."""
    resolver = getattr(strategy, 'cluster_resolver', None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return None, 0
    return resolver.task_type, int(resolver.task_id or 0)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the one process that writes plots, results and the exported model.

    That is the `chief` task when the cluster has one, else worker 0 (Keras' convention), or JAX process
    0; a process outside any cluster (one device, mirrored, TPU) is its own chief.
    """
    if keras.backend.backend() == 'jax':
        import jax  # pylint: disable=import-outside-toplevel
        return jax.process_index() == 0
    task_type, task_id = task(strategy)
    if task_type is None:
        return True
    if task_type == 'chief':
        return True
    has_chief = 'chief' in strategy.cluster_resolver.cluster_spec().as_dict()
    return task_type == 'worker' and task_id == 0 and not has_chief


def worker_dir(model_dir: str, strategy: tf.distribute.Strategy) -> str:
    """Where this process writes: `model_dir` on the chief, a private temporary folder elsewhere.

    Every worker of a MultiWorkerMirroredStrategy must take part in saving (the save reads mirrored
    variables in lockstep), but only the chief's copy is kept: the others write to a throwaway folder,
    as Keras' multi-worker guide prescribes, and `remove_worker_dir` deletes it at the end. Reading
    (resume) always uses `model_dir`, which every worker must see (shared storage).
    """
    if is_chief(strategy):
        return model_dir
    if keras.backend.backend() == 'jax':
        import jax  # pylint: disable=import-outside-toplevel
        return tempfile.mkdtemp(prefix=f'process-{jax.process_index()}-', dir=None)
    task_type, task_id = task(strategy)
    return tempfile.mkdtemp(prefix=f'{task_type}-{task_id}-', dir=None)


def remove_worker_dir(path: str, model_dir: str) -> None:
    """Deletes a non-chief's throwaway folder from `worker_dir`; the chief's `model_dir` is kept."""
    if os.path.abspath(path) != os.path.abspath(model_dir):
        shutil.rmtree(path, ignore_errors=True)


def input_context(strategy: tf.distribute.Strategy, global_batch_size: int) -> tf.distribute.InputContext:
    """The InputContext of this worker's input pipeline (one pipeline per worker).

    Pass it to `pipelines.pipeline.build_inputs` / `data_service.distribute_train` so each worker
    reads (and caches) only its shard and batches at the per-replica size; feed the result through
    `distribute_per_worker`.

    Raises:
      ValueError: the global batch does not split evenly over the replicas.
    """
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ValueError(f'--batch_size={global_batch_size} (global) must be a multiple of the '
                         f'{replicas} replicas; e.g. --batch_size={global_batch_size // replicas * replicas or replicas}')
    task_type, task_id = task(strategy)
    if task_type is None:
        return tf.distribute.InputContext(1, 0, replicas)
    spec = strategy.cluster_resolver.cluster_spec().as_dict()
    workers = spec.get('chief', []) + spec.get('worker', [])
    # The chief, when there is one, is input pipeline 0 and the workers follow it.
    index = 0 if task_type == 'chief' else task_id + len(spec.get('chief', []))
    return tf.distribute.InputContext(len(workers), index, replicas)


def distribute_per_worker(strategy: tf.distribute.Strategy, dataset: tf.data.Dataset):
    """Hands a per-worker, per-replica-batched dataset to the strategy without re-sharding or re-batching.

    Each replica on the worker pulls its own batches from `dataset`; nothing is split or dropped.
    One replica: the dataset itself (Keras feeds it as it is).
    """
    if strategy.num_replicas_in_sync == 1:
        return dataset
    options = tf.distribute.InputOptions(experimental_fetch_to_device=True)
    return strategy.distribute_datasets_from_function(lambda _: dataset, options=options)
