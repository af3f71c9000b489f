"""CLI: the tf.data service servers the trainers' `--data_service` reads from.

    python -m cli.data_service dispatcher --port=5050 [--work_dir=DIR] [--worker_addresses=H1:5051,H2:5051]
    python -m cli.data_service worker --dispatcher=HOST:5050 --port=5051 [--worker_address=HOST:5051]

They serve until SIGTERM/SIGINT. What the workers run, and the trainer's side, is `pipelines/data_service.py`.
Both listen on every interface without authentication (TF's service has none): run them on a private
network, behind a firewall or an SSH tunnel (BUILD.md, "Data-service security").
"""

import errno
import signal
import socket
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


def port_in_use(port: int) -> str | None:
    """Why `port` cannot be served here ('in use by another process'), or None when it is free.

    gRPC binds with SO_REUSEPORT, so a second server on a port another one holds starts and serves beside
    it (two dispatchers on one port, or a worker on the dispatcher's port): this probe binds without it,
    which the kernel refuses while any socket holds the port.
    """
    if port == 0:
        return None
    for family, host in ((socket.AF_INET6, '::'), (socket.AF_INET, '0.0.0.0')):
        try:
            probe = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            continue  # no IPv6 on this host: the IPv4 probe decides
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a TIME_WAIT port is free
            probe.bind((host, port))
            return None
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return 'in use by another process (e.g. a dispatcher or worker already started there)'
            if e.errno in (errno.EACCES, errno.EPERM):
                return f'not allowed ({e.strerror})'
            if family == socket.AF_INET6:
                continue
            return e.strerror or str(e)
        finally:
            probe.close()
    return None


WORKER_TIMEOUT_MS = 10_000
HEARTBEAT_INTERVAL_MS = 1_000
MAINTENANCE_INTERVAL_MS = 1_000


EXPOSURE = ('listening on all interfaces with no authentication: whoever reaches this port can {what}; '
            'run it on a private network, behind a firewall or through an SSH tunnel (BUILD.md, "Data-service '
            'security")')


def start_dispatcher(port: int, work_dir: str | None = None, worker_addresses: list[str] | None = None
                     ) -> tf.data.experimental.service.DispatchServer:
    """Starts a dispatcher on `port` (0 = any free port). With `work_dir`, jobs survive a dispatcher restart.

    Args:
        worker_addresses: the fleet, `HOST:PORT` as each worker's `--worker_address` says it; the dispatcher
            then refuses any other worker (TF checks the address a worker reports, which is not
            authentication, but keeps unplanned workers out). None: any worker may register.
    """
    config = tf.data.experimental.service.DispatcherConfig(
        port=port, work_dir=work_dir, fault_tolerant_mode=bool(work_dir),
        worker_addresses=worker_addresses or None,
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
    flags.DEFINE_list('worker_addresses', None, 'dispatcher: the fleet, HOST:PORT,... as each worker\'s '
                      '--worker_address says it; any other worker is refused.', flag_values=flag_values)
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
    busy = port_in_use(flag_values.port) if role in ('dispatcher', 'worker') else None
    if busy:
        print(f'error: --port={flag_values.port} is {busy}; stop that server or choose another --port '
              '(--port=0 picks a free one and prints it)', file=sys.stderr)
        return 1
    if role == 'dispatcher':
        server = start_dispatcher(flag_values.port, flag_values.work_dir, flag_values.worker_addresses)
        what = f'dispatcher on grpc://localhost:{server.target.rsplit(":", 1)[1]}'
        fleet = (f'only the workers {",".join(flag_values.worker_addresses)} may register' if
                 flag_values.worker_addresses else 'any worker may register (--worker_addresses limits that)')
        exposure = EXPOSURE.format(what=f'read the data every job serves; {fleet}')
    elif role == 'worker':
        if not flag_values.dispatcher:
            print('error: worker needs --dispatcher=HOST:PORT', file=sys.stderr)
            return 2
        try:
            server = start_worker(flag_values.dispatcher, flag_values.port, flag_values.worker_address)
        except RuntimeError as e:  # the dispatcher refused it (not in its --worker_addresses), or is down
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            print(f'error: the dispatcher {flag_values.dispatcher} did not accept this worker: {first}',
                  file=sys.stderr)
            return 1
        what = f'worker on port {server._address.rsplit(":", 1)[1]} for dispatcher {flag_values.dispatcher}'  # pylint: disable=protected-access
        exposure = EXPOSURE.format(what='read the data this worker serves')
    else:
        print(f'error: say `dispatcher` or `worker`, got {rest[1:]}; e.g. '
              'python -m cli.data_service dispatcher --port=5050', file=sys.stderr)
        return 2
    print(f'{what}: {exposure}', flush=True)
    _serve_until_signal(server, what)
    return 0


if __name__ == '__main__':
    sys.exit(main())
