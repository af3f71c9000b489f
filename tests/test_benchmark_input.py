"""The side-by-side benchmark CLI: runs end to end on tiny data and writes the documented JSON schema."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from benchmarks import baselines, timing
from benchmarks import input_pipeline as benchmark
from tests.conftest import ROOT

ROWS = {'ours_first_epoch', 'ours_cached_epoch', 'ours_disk_first_epoch', 'ours_disk_cache_epoch',
        'ours_device_cache', 'naive_tf_data',
        'image_dataset_from_directory', 'memory_bandwidth_limit'}


@pytest.mark.slow
def test_cli_writes_the_report_schema(tmp_path):
    out = tmp_path / 'report.json'
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=ROOT)
    proc = subprocess.run(
            [sys.executable, '-m', 'benchmarks.input_pipeline', '--dataset=cifar100', '--examples=64', '--batch_size=16',
             '--min_seconds=0.05', f'--json={out}'],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report['dataset'] == 'cifar100' and report['image_size'] == 32
    assert report['cpu_count'] == os.cpu_count() and report['device']
    names = {r['name'] for r in report['results']}
    assert ROWS <= names
    # The seed's ImageDataGenerator row needs SciPy; without it the report says so instead of guessing.
    assert 'imagedatagenerator_seed_policy' in names or 'imagedatagenerator_seed_policy' in report['notes']['skipped']
    for r in report['results']:
        assert set(r) >= {'name', 'images_per_sec', 'images', 'seconds'}
        assert r['images'] > 0 and r['seconds'] > 0
        assert r['images_per_sec'] == pytest.approx(r['images'] / r['seconds'])
    first = next(r for r in report['results'] if r['name'] == 'ours_first_epoch')
    assert first['images'] == 64  # the first epoch decodes each example exactly once
    assert report['notes']['cache_expected_bytes'] == 64 * 32 * 32 * 3
    for name in ROWS:
        assert name in proc.stdout  # the printed table has every row


def test_table_shows_ratios_to_the_limit_and_to_imagedatagenerator():
    report = {'dataset': 'caltech256', 'image_size': 224, 'batch_size': 32, 'device': 'cpu', 'source': 'x',
              'results': [timing.row('ours_cached_epoch', 50_000, 1.0),
                          timing.row('imagedatagenerator_seed_policy', 100, 1.0),
                          timing.row('memory_bandwidth_limit', 100_000, 1.0),
                          timing.row('naive_tf_data', 700, 1.0),
                          timing.row('ours_first_epoch', 1_120, 1.0)],
              'notes': {'cores_x_one_thread_decode': 1_400, 'cache_resident_bytes': 1, 'cache_expected_bytes': 1,
                        'rss_growth_bytes': 1, 'peak_rss_bytes': 1}}
    table = benchmark.format_table(report)
    line = next(l for l in table.splitlines() if l.startswith('ours_cached_epoch'))
    assert '0.50' in line and '500.0' in line
    assert 'first epoch / (cores x one-thread decode): 0.80' in table


def test_time_dataset_counts_images_delivered():
    ds = tf.data.Dataset.from_tensors(tf.zeros([5, 2], tf.uint8)).repeat()
    row = benchmark.time_dataset(ds, name='x', min_seconds=0.05, min_images=100)
    assert row['images'] % 5 == 0 and row['images'] >= 100


def test_memory_bandwidth_limit_gathers_whole_batches():
    images = np.zeros((64, 4, 4, 3), np.uint8)
    row = baselines.memory_bandwidth_limit(images, 16, min_seconds=0.01)
    assert row['name'] == 'memory_bandwidth_limit' and row['images'] % 16 == 0 and row['images'] >= 64


@pytest.mark.parametrize('kwargs, message', [
        ({'dataset': 'mnist'}, "--dataset='mnist'"),
        ({'dataset': 'cifar100', 'cache': 'none'}, "--cache='none' is not benchmarked; valid: memory, disk, device"),
        ({'dataset': 'cifar100', 'examples': 10, 'batch_size': 8}, '--examples=10 must be at least two batches'),
])
def test_config_errors_name_the_flag(kwargs, message):
    with pytest.raises(ValueError, match=message):
        benchmark.BenchmarkConfig(**kwargs)


def test_augment_only_mode_reports_rows_in_the_pipeline_schema():
    import types
    from benchmarks import input_pipeline as benchmark_cli
    flag_values = types.SimpleNamespace(augment='flip_crop,mixup', image_size=32, batch_size=8, seed=0)
    report = benchmark_cli.augment_only_report(flag_values)
    names = [row['name'] for row in report['results']]
    assert names[:2] == ['augment_flip_crop_device', 'augment_flip_crop_host']
    assert 'augment_mixup_device' in names
    assert all(row['images_per_sec'] > 0 and row['images'] > 0 for row in report['results'])
    assert report['image_size'] == 32 and report['cpu_count'] >= 1 and report['device']
