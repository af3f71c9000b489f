"""Several JAX processes as one data-parallel job: the layout from Keras' environment variables, a start-up
with bounded timeouts, each process's share of the batch, and the evaluation that counts each example once."""

import atexit
import contextlib
import dataclasses
import functools
import os
import signal
import sys
import threading
import time
import traceback

import numpy as np
from absl import logging

from fastclassify.pipelines import sharding

# The variables `keras.distribution.initialize` reads; every process of the job runs the same command.
ENV_ADDRESSES = 'KERAS_DISTRIBUTION_JOB_ADDRESSES'
ENV_NUM_PROCESSES = 'KERAS_DISTRIBUTION_NUM_PROCESSES'
ENV_PROCESS_ID = 'KERAS_DISTRIBUTION_PROCESS_ID'
# A peer whose heartbeat stops this long is dead: every other process then exits with one line (seconds).
# JAX's own heartbeat timeout is twice this: it would abort with a C++ stack trace, ours speaks first.
PEER_TIMEOUT_S = float(os.environ.get('FASTCLASSIFY_PEER_TIMEOUT_S', '20'))
_BEAT_INTERVAL_S = 1.0
_KEYS = 'fastclassify/'
# A SIGTERM's stop: `request/<process>` from a process that got one, `stop` (step, process) from process 0.
# Its own folder: the watchdog reads all of `_KEYS` every second, the train step reads this one.
_STOP_KEYS = 'fastclassify-stop/'
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
        heartbeat_timeout_seconds=int(2 * PEER_TIMEOUT_S) + 1, shutdown_timeout_seconds=START_TIMEOUT_S)
    from jax._src import distributed  # pylint: disable=import-outside-toplevel
    # The coordination service's key-value store is the one channel every process already has.
    global _watchdog, _client, _layout
    _client, _layout = distributed.global_state.client, layout
    _watchdog = _Watchdog(_client, layout, PEER_TIMEOUT_S)
    _watchdog.start()
    atexit.register(_watchdog.stop)


_watchdog = None
_client = None
_layout = None


def mark_finished() -> None:
    """Tells the other processes that this one ended its run normally: its silence is not a death."""
    if _watchdog is not None:
        _watchdog.stop(finished=True)


class _Watchdog(threading.Thread):
    """Beats every second in the coordinator's key-value store and watches the others' beats.

    A process that dies mid-step leaves the others blocked in a collective; JAX's own heartbeat check
    then aborts them with a C++ stack trace. This ends them first, each with one line, in bounded time:
    a peer silent for `timeout_s` that did not say it finished, or a coordinator that no longer answers.
    """

    def __init__(self, client, layout: Layout, timeout_s: float):
        super().__init__(name='peer-watchdog', daemon=True)
        self._client, self._layout, self._timeout_s = client, layout, timeout_s
        self._stopped = threading.Event()

    def run(self):
        me = self._layout.process_id
        last_change = {p: (None, time.monotonic()) for p in range(self._layout.num_processes) if p != me}
        beat = 0
        while not self._stopped.wait(_BEAT_INTERVAL_S):
            beat += 1
            try:
                self._client.key_value_set(f'{_KEYS}beat/{me}', str(beat), allow_overwrite=True)
                entries = {k.rstrip('/').split('/')[-2] + '/' + k.rstrip('/').split('/')[-1]: v
                           for k, v in self._client.key_value_dir_get(_KEYS)}
            except Exception as e:  # pylint: disable=broad-except
                if not self._stopped.is_set():
                    _die(f'process {me} of {self._layout.num_processes} lost the coordinator (process 0 at '
                         f'{self._layout.coordinator}): {(str(e).strip().splitlines() or [""])[0][:160]}')
                return
            now = time.monotonic()
            for peer, (value, since) in last_change.items():
                if f'done/{peer}' in entries:
                    continue
                current = entries.get(f'beat/{peer}')
                if current != value:
                    last_change[peer] = (current, now)
                elif now - since > self._timeout_s:
                    _die(f'process {peer} of {self._layout.num_processes} sent no heartbeat for '
                         f'{now - since:.0f} s (it died or failed; see its log)')

    def stop(self, finished: bool = False) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        if finished:
            try:
                self._client.key_value_set(f'{_KEYS}done/{self._layout.process_id}', '1',
                                           allow_overwrite=True)
            except Exception:  # pylint: disable=broad-except
                pass  # the coordinator is gone too; nobody is left to mislead


def active() -> bool:
    """True in a process of a multi-process job (after `initialize`)."""
    return _watchdog is not None


class SharedStop:
    """A SIGTERM to any process stops every process after the same global step, which process 0 picks.

    At each step end (`stops_after`, from the backup callback) each process reads the store's stop folder:
    one lookup, until the stop is known. A process that got SIGTERM writes a request; process 0, at its
    next step end `n`, writes the stop step `S = n + 1` (its own SIGTERM: at once), and every process
    stops at its first step end at or after S (with k steps per execution, the end of the one holding S),
    where process 0 saves the backup, as one process does on SIGTERM.

    Why S = n + 1 is never too late: a process runs its step end `m` only after Keras turned step m's loss
    into a Python float (`pythonify_logs`, synchronous here: our callbacks are not `async_safe`), i.e.
    after step m's computation, whose all-reduces (the loss over the global batch, the gradients) every
    process's step m joins. Process 0 starts any step after n only once its step end n returned, the stop
    step written. So no process ends a step after n before S is in the store (one coordination service:
    a read after a completed write sees it), and its read at that step end finds it. Another process may
    be behind process 0, never a step end ahead: S is the earliest step every process can still stop at.
    """

    def __init__(self, client, layout: Layout, last_step: int):
        self._client, self._me, self._count = client, layout.process_id, layout.num_processes
        self._last_step = last_step
        self._requested = False
        self._previous = None  # the last step end this process checked
        self.step = None  # S, once known
        self.by = None  # the process whose SIGTERM it answers

    def stops_after(self, step: int, signalled: bool) -> bool:
        """At the end of global step `step` (with whether this process got SIGTERM): whether to stop now.

        Raises:
          RuntimeError: this process already ran past the stop step (the proof above failed: a bug).
        """
        if self.step is None:
            self._read(step, signalled)
            if self.step is not None and self._previous is not None and self.step <= self._previous:
                raise RuntimeError(f'process {self._me} ended global step {self._previous} before it read the '
                                   f'job\'s stop step {self.step}')
            if self.step is not None and self.step > self._last_step:
                logging.warning('SIGTERM on process %d of %d after the last training step: the run finishes.',
                                self.by, self._count)
        self._previous = step
        if self.step is None or step < self.step or self.step > self._last_step:
            return False
        logging.warning('SIGTERM on process %d of %d: every process stops after global step %d (process 0 '
                        'saves the backup there).', self.by, self._count, step)
        return True

    def _read(self, step: int, signalled: bool) -> None:
        """Sets `step` and `by` when the stop is known (process 0: decided) at this step end."""
        if signalled and self._me != 0 and not self._requested:
            self._client.key_value_set(f'{_STOP_KEYS}request/{self._me}', str(step), allow_overwrite=True)
            self._requested = True
        if self._me == 0:
            requesters = [0] if signalled else sorted(
                int(k.rsplit('/', 1)[1]) for k, _ in self._client.key_value_dir_get(f'{_STOP_KEYS}request/'))
            if requesters:
                self.step, self.by = step + 1, requesters[0]
                self._client.key_value_set(f'{_STOP_KEYS}stop', f'{self.step} {self.by}', allow_overwrite=True)
            return
        for key, value in self._client.key_value_dir_get(_STOP_KEYS):
            if key.endswith('/stop'):
                self.step, self.by = (int(x) for x in value.split())


def shared_stop(last_step: int) -> SharedStop | None:
    """The job's SIGTERM stop (`last_step`: the run's final global step), or None when alone."""
    return SharedStop(_client, _layout, last_step) if _watchdog is not None else None


@contextlib.contextmanager
def sigterm_finishes():
    """Around a multi-process run's training and final evaluation: a SIGTERM with no train step left to stop
    after (the last epoch's validation, the test evaluation) lets the run finish, in seconds: this process
    leaving would block the others in its collectives. Nothing when alone (a SIGTERM there ends the process)."""
    if _watchdog is None:
        yield
        return
    late = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: late.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
    if late:
        logging.warning('SIGTERM on process %d after its last training step: the run finished first.',
                        _layout.process_id)


def exit_now(code: int) -> None:
    """Ends a process of a multi-process job at once: JAX's exit-time shutdown barrier would wait for
    processes that are still blocked in a step with this one, then abort with a C++ stack trace."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def on_failure(error: BaseException) -> None:
    """Ends a multi-process job's process on an error that escaped the run; returns when alone.

    A peer that died shows first as a failed collective (gloo: "Connection closed by peer"): the
    watchdog then names the peer within `PEER_TIMEOUT_S`, or the collective's error is the one line.
    Any other error is this process's own: its traceback, then out.
    """
    if _watchdog is None:
        return
    if isinstance(error, SystemExit):  # a one-line error, already printed
        exit_now(error.code if isinstance(error.code, int) else 1)
    text = str(error)
    if type(error).__name__ in ('JaxRuntimeError', 'XlaRuntimeError') and any(
            k in text for k in ('Gloo', 'gloo', 'NCCL', 'peer', 'UNAVAILABLE')):
        _watchdog.join(PEER_TIMEOUT_S + 2 * _BEAT_INTERVAL_S)
        _die(f'a collective with the other processes failed ({text.strip().splitlines()[0][:200]}); '
             'a process died or failed, see its log')
    traceback.print_exception(error)
    exit_now(1)


def _die(message: str) -> None:
    # os._exit: the others are blocked in a collective that will never complete, and JAX's exit-time
    # shutdown barrier would wait for the dead process too.
    print(f'multi-process job stopped: {message}. Rerun the same command on every host; it resumes '
          'from the last backup.', file=sys.stderr, flush=True)
    exit_now(3)


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


def evaluate_parts(trainer, dataset, *, num_examples: int, class_names) -> dict:
    """The test report when each process holds its part of the split (`pipeline.eval_share_batches`).

    Each batch step, every process feeds its (images, labels, weights) rows to its devices and gets the
    whole global batch's probabilities, labels and weights back (one all-gather in XLA); the weight-0
    padding is dropped, so every example counts exactly once and every process computes the same report.
    Keras' `predict_on_batch` cannot: it copies a global output to NumPy, which JAX refuses for arrays
    spread over other processes' devices.

    Raises:
      evaluation.CountMismatchError: the parts together held other than `num_examples` examples.
    """
    import jax  # pylint: disable=import-outside-toplevel
    import keras  # pylint: disable=import-outside-toplevel
    from jax.sharding import NamedSharding, PartitionSpec  # pylint: disable=import-outside-toplevel

    from fastclassify.training import evaluation  # pylint: disable=import-outside-toplevel

    distribution = keras.distribution.distribution()
    mesh = distribution.device_mesh.backend_mesh
    rows = NamedSharding(mesh, PartitionSpec(distribution.batch_dim_name))

    @functools.partial(jax.jit, out_shardings=NamedSharding(mesh, PartitionSpec()))
    def forward(trainable, non_trainable, images, labels, weights):
        probabilities = trainer.stateless_call(trainable, non_trainable, images, training=False)[0]
        return probabilities, labels, weights

    def batches():
        for part in dataset:
            global_part = [jax.make_array_from_process_local_data(rows, np.asarray(t)) for t in part]
            probabilities, labels, weights = (np.asarray(t) for t in forward(
                    [v.value for v in trainer.trainable_variables],
                    [v.value for v in trainer.non_trainable_variables], *global_part))
            real = weights > 0
            yield probabilities[real], labels[real]

    return evaluation.report(batches(), num_examples=num_examples, class_names=class_names)
