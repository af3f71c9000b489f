"""Two runs started together on one new --model_dir (issue 23): whatever interleaving, each start ends
in a claim or one line (RunDirError), never a traceback. The other run is simulated deterministically:
it removes the (empty) folder right after this run made it, as its own writability probe does."""

import os

import pytest

from fastclassify.training import run_dir as run_dir_lib


class _Cfg:
    def __init__(self):
        self.run = type('Run', (), {'overwrite': False})()

    def to_dict(self):
        return {'run': {'epochs': 1}}


@pytest.fixture
def folder_removed_after_each_make(monkeypatch):
    """The first `times` makedirs of the run folder are each followed by the other run's rmdir."""
    real = os.makedirs
    state = {'left': 0, 'path': None}

    def makedirs(path, *args, **kwargs):
        real(path, *args, **kwargs)
        if os.path.abspath(path) == state['path'] and state['left'] > 0:
            state['left'] -= 1
            os.rmdir(path)

    monkeypatch.setattr(os, 'makedirs', makedirs)

    def arm(path, times):
        state.update(path=os.path.abspath(path), left=times)
    return arm


@pytest.mark.parametrize('removals', [1, 2])
def test_a_run_folder_removed_by_the_other_starting_run_is_made_again(tmp_path, folder_removed_after_each_make,
                                                                       removals):
    path = str(tmp_path / 'run')
    rd = run_dir_lib.RunDir(path)
    folder_removed_after_each_make(path, removals)
    rd.check_writable()  # used to raise "not writable: No such file or directory"
    folder_removed_after_each_make(path, removals)
    assert rd.claim(_Cfg()) == 'new'  # used to raise FileNotFoundError from the lock file's open
    assert os.path.exists(os.path.join(path, 'config.json'))
    rd.release()


def test_the_empty_folder_cleanup_tolerates_the_other_runs_files(tmp_path, monkeypatch):
    path = str(tmp_path / 'run')
    real_rmdir = os.rmdir

    def rmdir(p):
        if os.path.abspath(p) == os.path.abspath(path):
            raise OSError(39, 'Directory not empty')  # the other run's probe appeared meanwhile
        real_rmdir(p)

    monkeypatch.setattr(os, 'rmdir', rmdir)
    run_dir_lib.RunDir(path).check_writable()  # used to raise from its `finally`
