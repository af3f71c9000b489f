"""Several JAX processes as one data-parallel job: the layout from Keras' environment variables, a start-up
with bounded timeouts, each process's share of the batch, and the evaluation that counts each example once."""

import dataclasses
import functools
import os

import numpy as np

from fastclassify.pipelines import sharding

# The variables `keras.distribution.initialize` reads; every process of the job runs the same command.
ENV_ADDRESSES = 'KERAS_DISTRIBUTION_JOB_ADDRESSES'
ENV_NUM_PROCESSES = 'KERAS_DISTRIBUTION_NUM_PROCESSES'
ENV_PROCESS_ID = 'KERAS_DISTRIBUTION_PROCESS_ID'
# A peer silent this long is dead: the coordination service then fails every other process (seconds).
HEARTBEAT_TIMEOUT_S = int(os.environ.get('FASTCLASSIFY_HEARTBEAT_TIMEOUT_S', '30'))
# How long process 0 waits for the others at start-up and at the final barrier (seconds).
START_TIMEOUT_S = int(os.environ.get('FASTCLASSIFY_START_TIMEOUT_S', '300'))


class LayoutError(Exception):
    """One line: the KERAS_DISTRIBUTION_* variables do not describe a job this process can join."""


@dataclasses.dataclass(frozen=True)
class Layout:
    """This process's place in the job: the coordinator (process 0's host:port), the count, its id."""

    coordinator: str
    num_processes: int
    process_id: int


def layout_from_env(environ=None) -> Layout | None:
    """The job KERAS_DISTRIBUTION_* describes, or None for a one-process run (unset, or 1 process).

    KERAS_DISTRIBUTION_JOB_ADDRESSES is process 0's `host:port` (or every process's, comma-separated, as
    Keras accepts; the first is the coordinator).

    Raises:
      LayoutError: a count without an id or address, or values out of range.
    """
    environ = os.environ if environ is None else environ
    count_text = environ.get(ENV_NUM_PROCESSES, '').strip()
    if not count_text:
        return None
    try:
        count = int(count_text)
        process_id = int(environ.get(ENV_PROCESS_ID, ''))
    except ValueError:
        raise LayoutError(f'{ENV_NUM_PROCESSES}={count_text!r} and {ENV_PROCESS_ID}='
                          f'{environ.get(ENV_PROCESS_ID)!r} must both be integers; see BUILD.md, '
                          '"Several hosts on JAX"') from None
    if count == 1:
        return None
    addresses = [a.strip() for a in environ.get(ENV_ADDRESSES, '').split(',') if a.strip()]
    if count < 1 or not 0 <= process_id < count:
        raise LayoutError(f'{ENV_PROCESS_ID}={process_id} must be in [0, {ENV_NUM_PROCESSES}={count})')
    if not addresses:
        raise LayoutError(f'{ENV_NUM_PROCESSES}={count} needs {ENV_ADDRESSES}=HOST:PORT of process 0 '
                          '(the coordinator); see BUILD.md, "Several hosts on JAX"')
    if len(addresses) > 1 and len(addresses) != count:
        raise LayoutError(f'{ENV_ADDRESSES} names {len(addresses)} processes, {ENV_NUM_PROCESSES}={count}')
    return Layout(addresses[0], count, process_id)


def initialize(layout: Layout) -> None:
    """Joins the job (`jax.distributed.initialize`, what `keras.distribution.initialize` calls, with
    bounded timeouts); before any JAX computation.

    CPU devices exchange gradients through gloo (JAX's default CPU client has no cross-process
    collectives); GPUs use NCCL whatever this says.
    """
    import jax  # pylint: disable=import-outside-toplevel
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    jax.distributed.initialize(
        coordinator_address=layout.coordinator, num_processes=layout.num_processes,
        process_id=layout.process_id, initialization_timeout=START_TIMEOUT_S,
        heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT_S, shutdown_timeout_seconds=START_TIMEOUT_S)


def process_share() -> sharding.ProcessShare:
    """This process's rows of each global batch (everything when alone or not on JAX).

    Raises:
      LayoutError: processes with different device counts (the batch splits by device).
    """
    import keras  # pylint: disable=import-outside-toplevel
    if keras.backend.backend() != 'jax':
        return sharding.ALONE
    import jax  # pylint: disable=import-outside-toplevel
    if jax.process_count() == 1:
        return sharding.ALONE
    if jax.local_device_count() * jax.process_count() != jax.device_count():
        raise LayoutError(f'process {jax.process_index()} has {jax.local_device_count()} of the job\'s '
                          f'{jax.device_count()} devices: every process needs the same number')
    return sharding.ProcessShare(jax.process_index(), jax.process_count())


def process_rows(share: sharding.ProcessShare, *tensors):
    """This process's contiguous rows of each (evaluation) batch whose length is a multiple of count."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    n = tf.shape(tensors[0])[0] // share.count
    return tuple(t[share.index * n:(share.index + 1) * n] for t in tensors)


def global_predictor(trainer, replicas: int, share: sharding.ProcessShare):
    """`predict(images) -> probabilities` for a batch every process holds whole: each process feeds only
    its rows to its devices, and every process gets all the probabilities back (one all-gather in XLA).

    Keras' `predict_on_batch` cannot: it copies a global output to NumPy, which JAX refuses for arrays
    spread over other processes' devices.
    """
    import jax  # pylint: disable=import-outside-toplevel
    import keras  # pylint: disable=import-outside-toplevel
    from jax.sharding import NamedSharding, PartitionSpec  # pylint: disable=import-outside-toplevel

    distribution = keras.distribution.distribution()
    mesh = distribution.device_mesh.backend_mesh
    rows = NamedSharding(mesh, PartitionSpec(distribution.batch_dim_name))

    @functools.partial(jax.jit, out_shardings=NamedSharding(mesh, PartitionSpec()))
    def forward(trainable, non_trainable, images):
        return trainer.stateless_call(trainable, non_trainable, images, training=False)[0]

    def predict(images):
        images = np.asarray(images)
        padded = np.concatenate([images, np.zeros(((-len(images)) % replicas,) + images.shape[1:],
                                                  images.dtype)])
        local = padded[share.rows(len(padded))]
        out = forward([v.value for v in trainer.trainable_variables],
                      [v.value for v in trainer.non_trainable_variables],
                      jax.make_array_from_process_local_data(rows, local))
        return np.asarray(out)[:len(images)]
    return predict
