"""Faults that show only once a run starts: each gets one clear line, a non-zero exit, no partial files."""

import os

import pytest
import tensorflow as tf

from tests.conftest import SMALL, run_train
from fastclassify.training import loop


def _fails_with(capsys, *args):
    with pytest.raises(SystemExit) as e:
        run_train(*args)
    assert e.value.code != 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith('train.py: error:')]
    assert len(err) == 1
    return err[0]


def test_batch_larger_than_the_dataset(tmp_path, capsys):
    message = _fails_with(capsys, *SMALL, '--batch_size=4096', f'--model_dir={tmp_path / "run"}')
    assert '--batch_size=4096' in message and 'training examples' in message
    assert not (tmp_path / 'run').exists()


def test_out_of_memory_suggests_auto_batch_size_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    def fit_out_of_memory(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, 'OOM when allocating tensor with shape[64,512,56,56]')

    monkeypatch.setattr(loop.Trainer, 'fit', fit_out_of_memory)
    message = _fails_with(capsys, *SMALL, f'--model_dir={tmp_path / "run"}')
    assert 'out of memory' in message and '--batch_size=auto' in message and '--batch_size=16' in message
    assert not (tmp_path / 'run').exists()


def test_model_dir_that_cannot_be_created(tmp_path, capsys):
    (tmp_path / 'file').write_text('not a folder')
    message = _fails_with(capsys, *SMALL, f'--model_dir={tmp_path / "file" / "run"}')
    assert '--model_dir=' in message and 'not writable' in message
    assert os.listdir(tmp_path) == ['file']
