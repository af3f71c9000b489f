"""CLI: the tf.data service servers the trainers' `--data_service` reads from.

    python -m cli.data_service dispatcher --port=5050 [--work_dir=DIR]
    python -m cli.data_service worker --dispatcher=HOST:5050 --port=5051 [--worker_address=HOST:5051]

They serve until SIGTERM/SIGINT. What the workers run, and the trainer's side, is `pipelines/data_service.py`.
"""

import signal
import sys
import threading

import tensorflow as tf


def _serve_until_signal(server, what: str) -> None:
    """Blocks until SIGTERM or SIGINT, then stops `server` (in-flight requests end, ports are released)."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f'{what} serving; SIGTERM or Ctrl-C stops it', flush=True)
    while not stop.wait(1.0):
        pass
    server.stop()
    print(f'{what} stopped', flush=True)


WORKER_TIMEOUT_MS = 10_000
HEARTBEAT_INTERVAL_MS = 1_000
MAINTENANCE_INTERVAL_MS = 1_000


def start_dispatcher(port: int, work_dir: str | None = None) -> tf.data.experimental.service.DispatchServer:
    """Starts a dispatcher on `port` (0 = any free port). With `work_dir`, jobs survive a dispatcher restart."""
    config = tf.data.experimental.service.DispatcherConfig(
        port=port, work_dir=work_dir, fault_tolerant_mode=bool(work_dir),
        # A worker silent for WORKER_TIMEOUT_MS is declared lost, but only by the dispatcher's maintenance
        # pass, which runs every job_gc_check_interval_ms (TF default 10 min). Declaring it lost does NOT
        # release the trainer (TF 2.21 neither ends nor reassigns the dead worker's task): that is what
        # `ServiceConfig.stall_timeout_s` is for.
        worker_timeout_ms=WORKER_TIMEOUT_MS, job_gc_check_interval_ms=MAINTENANCE_INTERVAL_MS)
    return tf.data.experimental.service.DispatchServer(config)


def start_worker(dispatcher: str, port: int, worker_address: str | None = None
                 ) -> tf.data.experimental.service.WorkerServer:
    """Starts a worker that registers with `dispatcher` (HOST:PORT, no grpc:// needed) on `port` (0 = any).

    Args:
        worker_address: HOST:PORT the dispatcher tells trainers to use; default localhost:PORT, so give it
            (this host's reachable name) whenever trainers run elsewhere.
    """
    dispatcher = dispatcher.removeprefix('grpc://')
    config = tf.data.experimental.service.WorkerConfig(
        dispatcher_address=dispatcher, port=port,
        worker_address=worker_address or None,
        heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS)
    return tf.data.experimental.service.WorkerServer(config)


def main(argv: list[str] | None = None) -> int:
    """`dispatcher --port=P [--work_dir=D]` or `worker --dispatcher=HOST:P --port=Q [--worker_address=H:Q]`."""
    from absl import flags  # pylint: disable=import-outside-toplevel  # CLI only

    flag_values = flags.FlagValues()
    flags.DEFINE_integer('port', 0, 'Port to serve on (0 = any free port; the chosen one is printed).',
                         flag_values=flag_values)
    flags.DEFINE_string('dispatcher', None, 'worker: HOST:PORT of the dispatcher.', flag_values=flag_values)
    flags.DEFINE_string('worker_address', None,
                        'worker: HOST:PORT trainers use to reach this worker (default localhost:PORT).',
                        flag_values=flag_values)
    flags.DEFINE_string('work_dir', None, 'dispatcher: journal folder, so jobs survive a restart.',
                        flag_values=flag_values)
    argv = sys.argv if argv is None else argv
    if any(arg in ('--help', '-h', '--helpfull') for arg in argv[1:]):  # a private FlagValues has no absl --help
        print(__doc__ + '\n' + flag_values.get_help())
        return 0
    try:
        rest = flag_values(argv)
    except flags.Error as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    role = rest[1] if len(rest) == 2 else None
    if role == 'dispatcher':
        server = start_dispatcher(flag_values.port, flag_values.work_dir)
        what = f'dispatcher on grpc://localhost:{server.target.rsplit(":", 1)[1]}'
    elif role == 'worker':
        if not flag_values.dispatcher:
            print('error: worker needs --dispatcher=HOST:PORT', file=sys.stderr)
            return 2
        server = start_worker(flag_values.dispatcher, flag_values.port, flag_values.worker_address)
        what = f'worker on port {server._address.rsplit(":", 1)[1]} for dispatcher {flag_values.dispatcher}'  # pylint: disable=protected-access
    else:
        print(f'error: say `dispatcher` or `worker`, got {rest[1:]}; e.g. '
              'python -m cli.data_service dispatcher --port=5050', file=sys.stderr)
        return 2
    _serve_until_signal(server, what)
    return 0


if __name__ == '__main__':
    sys.exit(main())
