"""Faults injected across real processes: two writers of one --model_dir, two preparers of one dataset,
a SIGKILLed lock holder, `--data_dir` that is a file for every command-line entry point."""

import os
import signal
import subprocess
import sys
import time

import pytest

from fastclassify.pipelines.caltech256 import archive, make_dummy_data
from fastclassify.training import run_dir as run_dir_lib
from tests.conftest import ROOT

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
TRAIN = [sys.executable, os.path.join(ROOT, 'train.py'), '--dataset=cifar100', '--synthetic_data',
         '--model=cifar_resnet9', '--weights=none', '--head=gap', '--batch_size=8',
         '--steps_per_epoch=100000', '--epochs=1', '--precision=float32']


@pytest.mark.slow
def test_a_second_train_py_on_the_same_model_dir_refuses_naming_the_first(tmp_path):
    model_dir = tmp_path / 'run'
    first = subprocess.Popen([*TRAIN, f'--model_dir={model_dir}'], cwd=ROOT, env=ENV,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while not (model_dir / 'config.json').exists():  # written once the folder is claimed
            assert first.poll() is None and time.time() < deadline, first.stderr.read()
            time.sleep(0.1)
        second = subprocess.run([*TRAIN, f'--model_dir={model_dir}'], cwd=ROOT, env=ENV,
                                capture_output=True, text=True, timeout=240)
        assert second.returncode == 1
        errors = [l for l in second.stderr.splitlines() if l.startswith('train.py: error:')]
        assert len(errors) == 1 and f'is in use by pid {first.pid} on host ' in errors[0]
        assert 'Traceback' not in second.stderr
        assert first.poll() is None  # the holder trains on, undisturbed
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    # SIGKILL leaves the lock file but not the lock: the next run may take the folder at once.
    assert (model_dir / '.writer.lock').exists()
    run_dir_lib.RunDir(str(model_dir)).lock()


@pytest.mark.slow
def test_two_preparations_started_together_both_succeed_one_waiting(tmp_path):
    manual = tmp_path / 'manual'
    manual.mkdir()
    make_dummy_data.write_tar(manual / archive.ARCHIVE_NAME, make_dummy_data.full_size_members(300))
    cmd = [sys.executable, '-m', 'cli.prepare', '--dataset=caltech256', f'--manual_dir={manual}',
           f'--data_dir={tmp_path / "data"}', '--allow_modified_archive']
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
        assert 'FileExistsError' not in err and 'Traceback' not in err
        assert 'train: ' in out and 'examples' in out  # both print the same prepared dataset
    assert sum('Waiting for pid' in err for _, err in outputs) == 1
    reports = [out[out.index('caltech256/all in '):] for out, _ in outputs]  # after TFDS' own lines
    assert reports[0] == reports[1]


@pytest.mark.slow
@pytest.mark.parametrize('command', [
    ['train.py', '--dataset=cifar100', '--model_dir=unused'],
    ['-m', 'cli.prepare', '--dataset=cifar100'],
    ['-m', 'benchmarks.input_pipeline', '--dataset=cifar100'],
], ids=['train', 'prepare', 'benchmark'])
def test_data_dir_that_is_a_file_is_one_line_in_every_entry_point(tmp_path, command):
    blocker = tmp_path / 'data'
    blocker.write_text('a file, not a folder')
    result = subprocess.run([sys.executable, *command, f'--data_dir={blocker}'], cwd=ROOT, env=ENV,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 2
    assert 'Traceback' not in result.stderr and 'NotADirectoryError' not in result.stderr
    lines = [l for l in result.stderr.splitlines() if f'--data_dir={blocker} is a file' in l]
    assert len(lines) == 1
