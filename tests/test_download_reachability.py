"""Offline, a download fails in seconds with its one line; a host that answers still goes to TFDS's download."""

import socket
import time

import pytest
import tensorflow_datasets as tfds

from fastclassify.pipelines import sources
from fastclassify.pipelines.caltech256 import caltech256_dataset_builder


def _closed_port() -> int:
    """A local port nothing listens on: connecting is refused at once (no network involved)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture
def listening_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    for name in ('https_proxy', 'http_proxy', 'all_proxy'):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def test_unreachable_host_names_host_port_and_why():
    port = _closed_port()
    start = time.perf_counter()
    message = sources.unreachable_host([f'https://127.0.0.1:{port}/a.tar', f'https://127.0.0.1:{port}/b.tar'])
    assert time.perf_counter() - start < 2
    assert message.startswith(f'127.0.0.1:{port} is unreachable: ConnectionRefusedError'), message


def test_a_host_that_answers_is_reachable(listening_port):
    assert sources.unreachable_host([f'http://127.0.0.1:{listening_port}/data.tgz']) is None
    assert sources.unreachable_host([]) is None


def test_a_silent_host_fails_within_the_timeout(monkeypatch):
    # A resolver or SYN that never answers: stands in for a firewalled machine without touching the network.
    monkeypatch.setattr(socket, 'create_connection', lambda *a, **k: time.sleep(30))
    start = time.perf_counter()
    message = sources.unreachable_host(['https://data.example/x.tar'], timeout_s=0.3)
    assert time.perf_counter() - start < 2
    assert message == 'data.example:443 is unreachable: no answer within 0.3 s'


def test_behind_a_proxy_the_proxy_must_answer(monkeypatch, listening_port):
    monkeypatch.setenv('https_proxy', f'http://127.0.0.1:{listening_port}')
    assert sources.unreachable_host(['https://unresolvable.invalid/x.tar']) is None
    port = _closed_port()
    monkeypatch.setenv('https_proxy', f'127.0.0.1:{port}')
    assert sources.unreachable_host(['https://unresolvable.invalid/x.tar']).startswith(f'127.0.0.1:{port}')


def test_prepare_offline_fails_fast_before_tfds_retries(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(caltech256_dataset_builder.Builder, 'download_and_prepare',
                        lambda *a, **k: calls.append(1))
    port = _closed_port()
    monkeypatch.setattr(sources, '_download_urls', lambda builder: [f'https://127.0.0.1:{port}/256.tar'])
    cfg = sources.SourceConfig('caltech256', data_dir=str(tmp_path))
    start = time.perf_counter()
    with pytest.raises(sources.DataMissingError) as e:
        sources.prepare(cfg)
    assert time.perf_counter() - start < 30
    assert calls == []  # TFDS's download (and its retries) never started
    message = str(e.value)
    assert '\n' not in message
    assert message.startswith(f'could not download caltech256 (127.0.0.1:{port} is unreachable')
    assert '--manual_dir=DIR' in message


def test_prepare_with_a_reachable_host_goes_on_to_tfds(tmp_path, monkeypatch, listening_port):
    def download_and_prepare(*args, **kwargs):
        raise tfds.download.DownloadError('HTTP 503 after retries')
    monkeypatch.setattr(caltech256_dataset_builder.Builder, 'download_and_prepare', download_and_prepare)
    monkeypatch.setattr(sources, '_download_urls',
                        lambda builder: [f'http://127.0.0.1:{listening_port}/256.tar'])
    with pytest.raises(sources.DataMissingError, match=r'could not download caltech256 \(DownloadError: HTTP 503'):
        sources.prepare(sources.SourceConfig('caltech256', data_dir=str(tmp_path)))


def test_the_builders_list_their_download_urls():
    assert sources._download_urls(tfds.builder('caltech256')) == [  # pylint: disable=protected-access
        'https://data.caltech.edu/records/nyy15-4j048/files/256_ObjectCategories.tar']
