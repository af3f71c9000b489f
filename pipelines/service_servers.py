"""The tf.data service's servers: a dispatcher and its workers, started where a port is really free."""

import errno
import socket

import tensorflow as tf


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
