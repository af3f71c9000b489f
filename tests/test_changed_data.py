"""Data that changed under a run (issue 23): a resume compares the prepared dataset's identity with the
one the run started on and refuses a changed dataset in one line."""

import glob
import json
import os
import shutil

import pytest

from fastclassify.pipelines import sources
from fastclassify.training import loop, run_dir as run_dir_lib
from tests.conftest import compile_with_nan_loss_from, run_train
from tests.folder_trees import separable_tree, write_dir


class _Cfg:
    def __init__(self, overwrite=False):
        self.run = type('Run', (), {'overwrite': overwrite})()

    def to_dict(self):
        return {'run': {'epochs': 1}, 'model': {'name': 'm'}}


IDENTITY = {'dataset': 'class_folders/src-1', 'version': '1.0.0', 'examples': {'train': 60, 'test': 15},
            'bytes': {'train': 6000, 'test': 1500}, 'classes': '3 names, sha256 ab', 'source_fingerprint': 'cd'}


def test_a_resume_on_changed_data_is_refused_naming_the_change(tmp_path):
    path = str(tmp_path / 'run')
    assert run_dir_lib.RunDir(path).claim(_Cfg(), data_identity=IDENTITY) == 'new'
    assert json.load(open(os.path.join(path, 'data.json'))) == IDENTITY
    os.makedirs(os.path.join(path, 'backup', 'step-0000000003'))
    assert run_dir_lib.RunDir(path).claim(_Cfg(), data_identity=IDENTITY) == 'resume'
    changed = dict(IDENTITY, bytes={'train': 6100, 'test': 1500}, source_fingerprint='ef')
    with pytest.raises(run_dir_lib.RunDirError) as e:
        run_dir_lib.RunDir(path).claim(_Cfg(), data_identity=changed)
    message = str(e.value)
    assert '\n' not in message and 'trained on other data' in message
    assert "data bytes: {'test': 1500, 'train': 6000} -> {'test': 1500, 'train': 6100}" in message
    assert "data source_fingerprint: 'cd' -> 'ef'" in message and '--overwrite' in message
    assert os.path.isdir(os.path.join(path, 'backup', 'step-0000000003'))  # refused: nothing touched
    assert run_dir_lib.RunDir(path).claim(_Cfg(overwrite=True), data_identity=changed) == 'new'
    assert not os.path.exists(os.path.join(path, 'backup'))
    assert json.load(open(os.path.join(path, 'data.json'))) == changed


def _move_images(source):
    """The issue's change: 15 images leave class_0, 15 of class_1 are copied into class_2."""
    for name in sorted(os.listdir(source / 'class_0'))[:15]:
        os.remove(source / 'class_0' / name)
    for name in sorted(os.listdir(source / 'class_1'))[:15]:
        shutil.copy(source / 'class_1' / name, source / 'class_2' / f'copy_{name}')


FOLDER_RUN = ['--dataset=folder', '--model=cifar_resnet9', '--weights=none', '--head=gap', '--image_size=32',
              '--augment=none', '--batch_size=8', '--steps_per_epoch=6', '--epochs=1',
              '--checkpoint_every_steps=2', '--precision=float32', '--cache=memory', '--learning_rate=0.01']


@pytest.mark.slow
def test_a_folder_run_resumed_on_changed_data_is_refused(tmp_path, monkeypatch, capsys):
    source = write_dir(separable_tree(3, 20, size=16), tmp_path / 'src')
    args = [*FOLDER_RUN, f'--manual_dir={source}', f'--data_dir={tmp_path / "data"}',
            f'--model_dir={tmp_path / "run"}']
    original = loop.compile_trainer
    # Killed after a backup: the NaN stop leaves the backup at step 4 and the run unfinished.
    monkeypatch.setattr(loop, 'compile_trainer', compile_with_nan_loss_from(4, original))
    with pytest.raises(SystemExit):
        run_train(*args)
    assert os.path.isdir(tmp_path / 'run' / 'backup' / 'step-0000000004')
    # The run counted itself as the prepared dataset's reader (issue 23, a preparer must not delete it).
    readers = glob.glob(str(tmp_path / 'data' / 'class_folders' / '*' / '.readers' / f'pid-{os.getpid()}-*'))
    assert len(readers) == 1
    monkeypatch.setattr(loop, 'compile_trainer', original)
    _move_images(source)
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        run_train(*args)
    assert e.value.code == 1
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith('train.py: error:')]
    assert len(errors) == 1 and 'trained on other data' in errors[0], captured.err[-2000:]
    assert 'data bytes' in errors[0] or 'data examples' in errors[0]
    assert 'resuming from the backup' not in captured.out
    assert os.path.isdir(tmp_path / 'run' / 'backup' / 'step-0000000004')  # the old run is kept
