"""CLI: the tf.data service servers the trainers' `--data_service` reads from.

    python -m cli.data_service dispatcher --port=5050 [--work_dir=DIR] [--worker_addresses=H1:5051,H2:5051]
    python -m cli.data_service worker --dispatcher=HOST:5050 --port=5051 [--worker_address=HOST:5051]

They serve until SIGTERM/SIGINT. What the workers run, and the trainer's side, is `pipelines/data_service.py`.
Both listen on every interface without authentication (TF's service has none): run them on a private
network, behind a firewall or an SSH tunnel (BUILD.md, "Data-service security").
"""

import signal
import sys
import threading

from fastclassify.pipelines.service_servers import (EXPOSURE, port_in_use, start_dispatcher,  # noqa: F401
                                                    start_worker)


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
