"""Several devices on JAX: keras.distribution.DataParallel over 2 forced host devices, device cache on."""

import json
import os
import subprocess
import sys

import pytest
from tests.conftest import ROOT



@pytest.mark.slow
def test_train_py_on_two_jax_devices_with_the_device_cache(tmp_path):
    env = dict(os.environ, KERAS_BACKEND='jax', TF_CPP_MIN_LOG_LEVEL='3',
               XLA_FLAGS='--xla_force_host_platform_device_count=2')
    model_dir = tmp_path / 'run'
    result = subprocess.run(
        [sys.executable, 'train.py', '--dataset=cifar100', '--synthetic_data', '--model=cifar_resnet9',
         '--weights=none', '--head=gap', '--batch_size=16', '--steps_per_epoch=2', '--epochs=1',
         '--precision=float32', '--cache=device', '--augment=flip_crop', f'--model_dir={model_dir}'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert 'batch: 16 global, 8 per replica on 2 replica(s)' in result.stdout
    assert 'backend jax' in result.stdout
    results = json.load(open(model_dir / 'results.json'))
    assert results['optimizer_iterations'] == 2
    assert results['num_examples'] == 512  # every test example once, split over the two devices
    config = json.load(open(model_dir / 'config.json'))
    assert config['run']['backend'] == 'jax'
