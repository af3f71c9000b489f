"""train.py's command line: bad input gets one clear line, a non-zero exit, and nothing written."""

import os
import re
import subprocess
import sys
import time

import pytest
from tests.conftest import ROOT



# absl-formatted log lines from libraries (e.g. TFDS's "no dataset_info.json" warning) are not ours.
_LIBRARY_LOG = re.compile(r'^[IWE]\d{4} ')


def _error_lines(stderr):
    return [line for line in stderr.splitlines() if line.strip() and not _LIBRARY_LOG.match(line)]


def _train(*args, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
    return subprocess.run([sys.executable, os.path.join(ROOT, 'train.py'), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize('args, needles', [
    (['--dataset=nope'], ['--dataset', 'nope', 'cifar100', 'caltech256']),
    (['--dataset=cifar100', '--model=resnet9000'], ['--model', 'resnet9000', 'convnext_tiny', 'cifar_resnet9']),
    (['--dataset=cifar100', '--optimizer=adagrad'], ['--optimizer', 'adagrad', 'nadam', 'sgd']),
    (['--dataset=cifar100', '--epochs=0'], ['--epochs', '0']),
    (['--dataset=cifar100', '--steps_per_epoch=-1'], ['--steps_per_epoch', '-1']),
    (['--dataset=cifar100', '--batch_size=0'], ['--batch_size', '0']),
    (['--dataset=cifar100', '--batch_size=big'], ['--batch_size', 'big', 'auto']),
    (['--dataset=cifar100', '--image_size=-3'], ['--image_size', '-3']),
    (['--dataset=cifar100', '--model=convnext_tiny', '--image_size=16'], ['--image_size', '16', 'convnext_tiny']),
    (['--dataset=cifar100', '--augment=seed+warp'], ['--augment', 'warp', 'mixup']),
    (['--dataset=cifar100', '--cache=gpu'], ['--cache', 'gpu', 'device']),
    (['--dataset=cifar100', '--precision=fp8'], ['--precision', 'fp8', 'mixed_bfloat16']),
    (['--dataset=caltech256', '--config=paper30'], ['--config', 'paper30', 'paper60']),
    (['--dataset=CIFAR100'], ['--dataset', 'did you mean cifar100']),
    (['--dataset=cifar100', '--model=cifar_resnet9', '--weights=imagenet'], ['--weights=imagenet', 'none']),
    (['--dataset=cifar100', '--strategy=mirorred'], ['--strategy', 'mirrored']),
    (['--dataset=folder'], ['--dataset=folder', '--manual_dir']),
])
@pytest.mark.slow  # starts a subprocess
def test_bad_flag_is_one_line_nonzero_and_writes_nothing(tmp_path, args, needles):
    model_dir = tmp_path / 'run'
    start = time.monotonic()
    result = _train(*args, f'--model_dir={model_dir}', f'--data_dir={tmp_path / "data"}', cwd=tmp_path)
    elapsed = time.monotonic() - start
    assert result.returncode != 0
    # Checked before TensorFlow is imported (training/presets.py): a typo costs a second, not fifteen.
    assert elapsed < 3.0, (args, elapsed)
    lines = _error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert 'Traceback' not in result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert not model_dir.exists()
    assert sorted(os.listdir(tmp_path)) == []


@pytest.mark.slow  # starts a subprocess
def test_missing_data_offline_names_what_is_missing(tmp_path):
    result = _train('--dataset=cifar100', '--nodownload', '--weights=none', f'--data_dir={tmp_path / "data"}',
                    f'--model_dir={tmp_path / "run"}', cwd=tmp_path)
    assert result.returncode != 0
    lines = _error_lines(result.stderr)
    assert len(lines) == 1 and 'Traceback' not in result.stderr, result.stderr
    assert 'cifar100' in lines[0] and 'cli.prepare' in lines[0]
    assert not (tmp_path / 'run').exists()


@pytest.mark.slow  # starts a subprocess
def test_missing_imagenet_weights_fail_before_the_folder_is_prepared(tmp_path):
    from tests import folder_trees  # pylint: disable=import-outside-toplevel

    source = folder_trees.write_dir(folder_trees.separable_tree(2, 10), tmp_path / 'images')
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', KERAS_HOME=str(tmp_path / 'keras'),
               HTTPS_PROXY='http://127.0.0.1:9', https_proxy='http://127.0.0.1:9')  # offline: refused at once
    result = subprocess.run([sys.executable, os.path.join(ROOT, 'train.py'), '--dataset=folder',
                             f'--manual_dir={source}', f'--data_dir={tmp_path / "data"}',
                             f'--model_dir={tmp_path / "run"}'], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 1
    lines = _error_lines(result.stderr)
    assert len(lines) == 1 and 'convnext_tiny_notop.h5' in lines[0] and 'place that file in' in lines[0], lines
    assert not (tmp_path / 'data').exists() and not (tmp_path / 'run').exists()  # nothing decoded or written
