"""The disk cache: a memory-mapped file with the memory cache's layout, checked before use, rebuilt when bad."""

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from fastclassify.pipelines import cache
from fastclassify.pipelines import pipeline
from tests.conftest import ROOT

N, SIZE, BATCH = 30, 8, 4


def _examples(n=N, size=SIZE):
    # Label = example id, so a batch says which examples it holds.
    images = np.arange(n * size * size * 3, dtype=np.int64).reshape(n, size, size, 3) % 251
    return tf.data.Dataset.from_tensor_slices((images.astype(np.uint8), np.arange(n, dtype=np.int32)))


def _expected_images(n=N, size=SIZE):
    return np.stack([image for image, _ in _examples(n, size).as_numpy_iterator()])


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.fixture
def path(tmp_path):
    return cache.file_cache_path(str(tmp_path), 'toy_train_8px')


def test_round_trip_is_a_mapping_of_the_file_shared_with_tensorflow(path):
    host = cache.file_cache(_examples(), path)
    np.testing.assert_array_equal(host.images.numpy(), _expected_images())
    np.testing.assert_array_equal(host.labels.numpy(), np.arange(N))
    # The tensor's buffer is the array's, and the array lies in a mapping of the cache file: no copy.
    assert np.from_dlpack(host.images).ctypes.data == host.array.ctypes.data
    address = host.array.ctypes.data
    with open('/proc/self/maps') as f:
        mapped = [line.split() for line in f if line.rstrip().endswith(os.path.basename(path))]
    assert any(int(m[0].split('-')[0], 16) <= address < int(m[0].split('-')[1], 16) for m in mapped)
    assert cache.is_complete(path)
    inode = os.stat(path).st_ino
    # A second run maps the existing file (even given other data): not rewritten.
    again = cache.file_cache(_examples(), path)
    assert os.stat(path).st_ino == inode and again.num_examples == N


def _rss_anon():
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith('RssAnon:'))


def _read_two_epochs(host, batch=50):
    """Reads two epochs and returns the iterator (a copy made at its creation lives as long as it does)."""
    iterator = iter(pipeline.train_from_host_cache(host, batch, seed=0, deterministic=False))
    for _ in range(2 * (host.num_examples // batch)):
        next(iterator)
    return iterator


def _large_examples(n=1400, size=128):
    # 69 MB: larger than glibc's largest mmap threshold (32 MB), so a copy of it is a fresh mapping that
    # shows in RssAnon, never a reuse of freed heap. Built by tf.fill: no large temporaries.
    return tf.data.Dataset.range(n).map(
            lambda i: (tf.fill([size, size, 3], tf.cast(i % 251, tf.uint8)), tf.cast(i, tf.int32)))


def test_reading_epochs_puts_no_copy_of_the_file_in_process_memory(tmp_path):
    host = cache.file_cache(_large_examples(), cache.file_cache_path(str(tmp_path), 'big'))
    before = _rss_anon()
    iterator = _read_two_epochs(host)  # a tf.data graph rewrite would copy the captured cache here
    assert _rss_anon() - before < 0.5 * host.nbytes
    del iterator
    # What is resident of the mapping is the file's own pages (page cache), never private copies.
    assert cache.resident_bytes(host.array) > 0.9 * host.nbytes


def test_a_resident_limit_keeps_the_mapped_pages_out_of_rss(tmp_path):
    host = cache.file_cache(_large_examples(), cache.file_cache_path(str(tmp_path), 'big'),
                            resident_limit_bytes=8 << 20)
    _read_two_epochs(host)
    time.sleep(0.3)  # the trimming thread polls every 50 ms
    assert cache.resident_bytes(host.array) < 0.5 * host.nbytes
    # Pages dropped from the process read back correctly from the page cache.
    labels = np.array([0, 700, 1399])
    images = tf.gather(host.images, labels).numpy()
    np.testing.assert_array_equal(images[:, 5, 7, 1], labels % 251)


def test_every_example_once_per_epoch_from_the_disk_path(path):
    host = cache.file_cache(_examples(), path)
    it = iter(pipeline.train_from_host_cache(host, BATCH, seed=3, deterministic=False))
    steps = N // BATCH
    epochs = []
    for _ in range(3):
        batches = [next(it) for _ in range(steps)]
        for images, labels in batches:
            # Each image is the one its label names.
            np.testing.assert_array_equal(images.numpy(), _expected_images()[labels.numpy()])
        epochs.append(np.concatenate([labels.numpy() for _, labels in batches]))
    for epoch in epochs:
        assert len(set(epoch)) == steps * BATCH
    assert not np.array_equal(epochs[0], epochs[1])
    evaluated = [labels.numpy() for _, labels in pipeline.eval_from_host_cache(host, BATCH)]
    np.testing.assert_array_equal(np.concatenate(evaluated), np.arange(N))  # each once, in order


def test_same_seed_same_batches_from_memory_and_from_disk(path):
    memory = cache.materialize(_examples(), SIZE)
    disk = cache.file_cache(_examples(), path)
    take = lambda host: list(pipeline.train_from_host_cache(host, BATCH, seed=7, deterministic=True).take(12))  # noqa: E731
    for (mi, ml), (di, dl) in zip(take(memory), take(disk)):
        np.testing.assert_array_equal(mi.numpy(), di.numpy())
        np.testing.assert_array_equal(ml.numpy(), dl.numpy())


def _truncate(path):
    with open(path, 'r+b') as f:
        f.truncate(os.path.getsize(path) - 100)


def _wrong_header(path):
    with open(path, 'r+b') as f:
        f.write(b'not a cache')


def _flip_pixel(path):
    with open(path, 'r+b') as f:
        f.seek(4096 + 1234)
        byte = f.read(1)
        f.seek(4096 + 1234)
        f.write(bytes([byte[0] ^ 0x10]))


def _rewrite_header(path, **changes):
    with open(path, 'r+b') as f:
        magic, text = f.read(4096).split(b'\n', 2)[:2]
        fields = json.loads(text)
        fields.update(changes)
        f.seek(0)
        f.write((magic + b'\n' + json.dumps(fields).encode() + b'\n').ljust(4096, b'\0'))


def _older_version(path):
    _rewrite_header(path, version=1)


def _lost_examples(path):
    # A header and file that agree with each other but hold fewer examples than the split.
    _rewrite_header(path, count=N - 5)


@pytest.mark.parametrize('damage, says', [
        (_truncate, 'truncated'),
        (_wrong_header, 'no file-cache header'),
        (_flip_pixel, 'fails its checksum'),
        (_older_version, 'format version 1'),
        (_lost_examples, f'holds {N - 5} examples, the split has {N}'),
])
def test_a_damaged_cache_is_reported_in_one_line_and_rebuilt(path, caplog, damage, says):
    cache.file_cache(_examples(), path)
    damage(path)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        host = cache.file_cache(_examples(), path)
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and '\n' not in warnings[0], warnings
    assert path in warnings[0] and says in warnings[0] and 'rebuilding' in warnings[0]
    np.testing.assert_array_equal(host.images.numpy(), _expected_images())
    np.testing.assert_array_equal(host.labels.numpy(), np.arange(N))
    caplog.clear()
    cache.file_cache(_examples(), path)
    assert not _warnings(caplog)  # the rebuilt file passes every check


def test_other_decode_settings_rebuild(path, caplog):
    cache.file_cache(_examples(), path, settings={'image_size': SIZE, 'source': 'a'})
    with caplog.at_level(logging.WARNING):
        cache.file_cache(_examples(), path, settings={'image_size': SIZE, 'source': 'b'})
    assert "'source': 'a'" in caplog.text and 'rebuilding' in caplog.text


def test_an_interrupted_write_is_never_trusted(path):
    def fail_at_ten(image, label):
        tf.debugging.assert_less(label, 10, message='simulated crash mid-epoch')
        return image, label

    with pytest.raises(tf.errors.InvalidArgumentError, match='simulated crash'):
        cache.file_cache(_examples().map(fail_at_ten), path)
    assert not os.path.exists(path)
    assert not [n for n in os.listdir(os.path.dirname(path)) if 'partial' in n]
    assert cache.file_cache(_examples(), path).num_examples == N


def test_stale_partials_lockfiles_and_older_formats_are_removed(tmp_path, caplog):
    dead = tmp_path / 'toy.u8cache.partial-999999999-abcd'  # no such pid
    dead.write_bytes(b'\0' * 5000)
    (tmp_path / 'old_cache.lockfile').write_text('')
    (tmp_path / 'old_cache.index').write_text('')
    removed = cache.remove_stale(str(tmp_path))
    assert str(dead) in removed and not dead.exists()
    assert not (tmp_path / 'old_cache.lockfile').exists() and not (tmp_path / 'old_cache.index').exists()

    legacy = tmp_path / 'toy.v1'  # a version-1 cache: TFRecord shards in a directory
    legacy.mkdir()
    (legacy / 'shard-00000-of-00008.tfrecord').write_bytes(b'x')
    with caplog.at_level(logging.WARNING):
        cache.file_cache(_examples(), cache.file_cache_path(str(tmp_path), 'toy'))
    assert not legacy.exists() and 'older format' in caplog.text


def test_a_cache_that_does_not_fit_the_disk_fails_in_one_line_before_writing(path, monkeypatch):
    real = os.statvfs(os.path.dirname(path))

    class Full:
        f_bavail, f_frsize = 1, real.f_frsize

    monkeypatch.setattr(cache.os, 'statvfs', lambda _: Full)
    with pytest.raises(ValueError, match=r'needs .* bytes .* free \(.* short\); free space there, or use --cache=memory'):
        cache.file_cache(_examples(), path)
    assert os.listdir(os.path.dirname(path)) == ['.lock']


def test_two_writers_of_one_cache_take_turns(path, caplog):
    def slow(image, label):
        return tf.py_function(lambda x: (time.sleep(0.01), x)[1], [image], tf.uint8), label

    decoded = _examples().map(slow)
    decoded = decoded.map(lambda image, label: (tf.ensure_shape(image, (SIZE, SIZE, 3)), label))
    results, errors = [None, None], []

    def run(i):
        try:
            results[i] = cache.file_cache(decoded, path)
        except Exception as e:  # pylint: disable=broad-except
            errors.append(e)

    # On absl's logger itself: a train.py run earlier in the session leaves absl's verbosity above INFO.
    with caplog.at_level(logging.INFO, logger='absl'):
        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    assert caplog.text.count('Writing file cache') == 1 and 'Waiting for another process' in caplog.text
    for host in results:
        np.testing.assert_array_equal(host.images.numpy(), _expected_images())


@pytest.mark.slow
def test_sigkill_while_writing_leaves_nothing_a_later_run_trusts(tmp_path, caplog):
    path = cache.file_cache_path(str(tmp_path), 'killed')
    script = textwrap.dedent(f"""
        import time
        import numpy as np
        import tensorflow as tf
        from fastclassify.pipelines import cache
        images = np.zeros((2000, 64, 64, 3), np.uint8)
        ds = tf.data.Dataset.from_tensor_slices((images, np.arange(2000, dtype=np.int32)))
        def slow(image, label):
            return tf.py_function(lambda x: (time.sleep(0.005), x)[1], [image], tf.uint8), label
        ds = ds.map(slow).map(lambda i, l: (tf.ensure_shape(i, (64, 64, 3)), l))
        cache.file_cache(ds, {path!r}, chunk=16)
    """)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, '-c', script], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    partial = None
    while time.time() < deadline and proc.poll() is None:
        partials = [n for n in os.listdir(tmp_path) if '.partial-' in n]
        if partials and os.path.getsize(tmp_path / partials[0]) > 4096 + 64 * 64 * 3 * 64:
            partial = tmp_path / partials[0]
            break
        time.sleep(0.05)
    if proc.poll() is not None:
        pytest.fail(f'the writer ended before it could be killed: {proc.stdout.read().decode()[-2000:]}')
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert partial is not None and partial.exists() and not os.path.exists(path)
    assert not cache.is_complete(str(partial))  # no header: not even the partial file claims to be whole

    with caplog.at_level(logging.INFO):
        host = cache.file_cache(_examples(), path)
    assert 'Removing an interrupted file cache' in caplog.text and not partial.exists()
    np.testing.assert_array_equal(host.labels.numpy(), np.arange(N))
