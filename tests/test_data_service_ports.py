"""The data service's ports and exposure (issue 23): a port another server holds is one line and a
non-zero exit (gRPC's SO_REUSEPORT would let both serve); start-up says what is exposed."""

import pytest

from cli import data_service as data_service_cli


@pytest.mark.parametrize('role', ['dispatcher', 'worker'])
def test_a_port_held_by_a_running_dispatcher_is_refused_in_one_line(capsys, monkeypatch, role):
    # Were the second server started, it would serve at once instead of blocking the test.
    monkeypatch.setattr(data_service_cli, '_serve_until_signal', lambda server, what: server.stop())
    holder = data_service_cli.start_dispatcher(0)  # a real gRPC server: it binds with SO_REUSEPORT
    try:
        port = int(holder.target.rsplit(':', 1)[1])
        args = ['data_service', role, f'--port={port}'] + (
            [f'--dispatcher=localhost:{port}'] if role == 'worker' else [])
        assert data_service_cli.main(args) == 1
        err = capsys.readouterr().err.strip()
        assert err == (f'error: --port={port} is in use by another process (e.g. a dispatcher or worker '
                       'already started there); stop that server or choose another --port (--port=0 picks '
                       'a free one and prints it)')
    finally:
        holder.stop()


def test_a_free_port_passes_the_probe():
    import socket
    with socket.socket() as s:
        s.bind(('', 0))
        port = s.getsockname()[1]
    assert data_service_cli.port_in_use(port) is None


def test_start_up_says_what_is_exposed_and_the_fleet_list_refuses_other_workers(capsys, monkeypatch):
    servers = []
    monkeypatch.setattr(data_service_cli, '_serve_until_signal', lambda server, what: servers.append(server))
    assert data_service_cli.main(['data_service', 'dispatcher', '--worker_addresses=localhost:1']) == 0
    out = capsys.readouterr().out
    assert 'listening on all interfaces with no authentication' in out
    assert 'only the workers localhost:1 may register' in out
    dispatcher = servers[0]
    try:
        address = dispatcher.target.split('://')[1]
        assert data_service_cli.main(['data_service', 'worker', f'--dispatcher={address}']) == 1
        err = capsys.readouterr().err.strip()
        assert '\n' not in err and err.startswith(f'error: the dispatcher {address} did not accept this worker')
        assert 'Configured workers list: [localhost:1]' in err
    finally:
        dispatcher.stop()


def test_the_stall_line_says_the_whole_recovery_dispatcher_included():
    from fastclassify.pipelines import data_service
    cfg = data_service.ServiceConfig('grpc://d:5050', job_name='j', batch_size=8, image_size=32,
                                     stall_timeout_s=5)
    message = data_service._stall_message(cfg)  # pylint: disable=protected-access
    assert '\n' not in message
    assert 'start a worker in place of the dead one' in message and 'restart the dispatcher too' in message
    assert 'rerun the same train.py command' in message
