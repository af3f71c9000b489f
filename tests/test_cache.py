"""Cache placement: the auto decision and the RAM cache without copies (file cache: test_disk_cache.py)."""


import numpy as np
import pytest
import tensorflow as tf

from fastclassify.pipelines import cache


def _examples(n, size=8):
    images = np.arange(n * size * size * 3, dtype=np.int64).reshape(n, size, size, 3) % 251
    return tf.data.Dataset.from_tensor_slices((images.astype(np.uint8), np.arange(n, dtype=np.int32)))


def test_auto_picks_memory_when_it_fits_and_says_why():
    d = cache.decide_cache('auto', num_examples=24_485, image_size=224, ram_budget_bytes=10 * 10**9)
    assert d.placement == 'memory'
    assert '3.7 GB' in d.reason and 'fits' in d.reason


def test_auto_falls_back_to_disk_then_none_over_budget(tmp_path):
    over = dict(num_examples=24_485, image_size=224, ram_budget_bytes=10**9)
    assert cache.decide_cache('auto', cache_dir=str(tmp_path), **over).placement == 'disk'
    d = cache.decide_cache('auto', **over)
    assert d.placement == 'none' and 'no cache directory' in d.reason


def test_explicit_choice_is_kept_and_bad_ones_list_the_choices():
    assert cache.decide_cache('device', num_examples=10, image_size=32).placement == 'device'
    with pytest.raises(ValueError, match=r"--cache='ram'.*auto, memory, disk, device, none"):
        cache.decide_cache('ram', num_examples=10, image_size=32)
    with pytest.raises(ValueError, match='--cache=disk needs a cache directory'):
        cache.decide_cache('disk', num_examples=10, image_size=32)


def test_cached_bytes_is_examples_times_pixels_times_channels():
    assert cache.cached_bytes(50_000, 32) == 153_600_000


def test_materialize_keeps_order_and_uses_only_the_cache_size_in_ram():
    host = cache.materialize(_examples(300, size=64), 64, chunk=64)
    assert host.images.dtype == tf.uint8 and host.images.shape == (300, 64, 64, 3)
    np.testing.assert_array_equal(host.labels.numpy(), np.arange(300))
    expected = next(iter(_examples(300, size=64).skip(123)))[0].numpy()
    np.testing.assert_array_equal(host.images[123].numpy(), expected)
    resident = cache.resident_bytes(host.array)
    assert abs(resident - cache.cached_bytes(300, 64)) <= 0.1 * cache.cached_bytes(300, 64)


def test_materialize_handles_unknown_cardinality():
    filtered = _examples(20).filter(lambda image, label: label % 2 == 0)
    host = cache.materialize(filtered, 8, chunk=3)
    np.testing.assert_array_equal(host.labels.numpy(), np.arange(0, 20, 2))


def test_host_cache_shares_the_numpy_buffer():
    images = cache.aligned_empty((4, 2, 2, 3))
    images[...] = 1
    host = cache.host_cache_from_arrays(images, np.zeros(4, np.int32))
    images[2, 0, 0, 0] = 77  # visible through the tensor only if no copy was made
    assert int(host.images[2, 0, 0, 0]) == 77


def test_iterating_the_train_stream_does_not_copy_the_memory_cache():
    from fastclassify.pipelines import pipeline  # pylint: disable=import-outside-toplevel

    def rss_anon():
        with open('/proc/self/status') as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith('RssAnon:'))

    n, size = 1400, 128  # 69 MB: above glibc's mmap threshold, a copy would be a fresh RssAnon mapping
    host = cache.materialize(tf.data.Dataset.range(n).map(
            lambda i: (tf.fill([size, size, 3], tf.cast(i % 251, tf.uint8)), tf.cast(i, tf.int32))), size)
    before = rss_anon()
    # A tf.data graph rewrite when the iterator is made would serialize the captured cache: a full copy.
    for dataset in (pipeline.train_from_host_cache(host, 50, seed=0, deterministic=False),
                    pipeline.eval_from_host_cache(host, 50)):
        iterator = iter(dataset)
        for _ in range(8):
            next(iterator)
        assert rss_anon() - before < 0.5 * host.nbytes  # measured while the iterator lives
        del iterator
