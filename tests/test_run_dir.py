"""The run directory's rules: writable check, resume/finished detection, config changes refused."""

import json
import os
import stat

import pytest

from training import run_dir as run_dir_lib


class _Cfg:
    """Stands in for TrainConfig: claim() only needs to_dict() and run.overwrite."""

    def __init__(self, epochs=3, overwrite=False, data_dir='/data'):
        self._d = {'run': {'epochs': epochs, 'overwrite': overwrite, 'model_dir': 'x'},
                   'source': {'data_dir': data_dir}}
        self.run = type('Run', (), {'overwrite': overwrite})()

    def to_dict(self):
        return self._d


def test_new_then_resume_then_finished(tmp_path):
    rd = run_dir_lib.RunDir(str(tmp_path / 'run'))
    assert rd.claim(_Cfg()) == 'new'
    assert json.load(open(rd.config))['run']['epochs'] == 3
    assert rd.claim(_Cfg()) == 'resume'
    # Operational fields (where the data lives) may change between reruns.
    assert rd.claim(_Cfg(data_dir='/elsewhere')) == 'resume'
    run_dir_lib.write_json_atomic(rd.results, {'top1': 0.5})
    assert rd.claim(_Cfg()) == 'finished'


def test_different_config_is_refused_unless_overwrite(tmp_path):
    rd = run_dir_lib.RunDir(str(tmp_path / 'run'))
    rd.claim(_Cfg(epochs=3))
    open(os.path.join(rd.path, 'keep.txt'), 'w').close()
    with pytest.raises(run_dir_lib.RunDirError, match=r'--overwrite.*') as e:
        rd.claim(_Cfg(epochs=5))
    assert 'run.epochs: 3 -> 5' in str(e.value) and '\n' not in str(e.value)
    assert os.path.exists(os.path.join(rd.path, 'keep.txt'))
    assert rd.claim(_Cfg(epochs=5, overwrite=True)) == 'new'
    assert not os.path.exists(os.path.join(rd.path, 'keep.txt'))


@pytest.mark.skipif(os.geteuid() == 0, reason='root can write anywhere')
def test_unwritable_dir_is_refused(tmp_path):
    locked = tmp_path / 'locked'
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    with pytest.raises(run_dir_lib.RunDirError, match='not writable'):
        run_dir_lib.RunDir(str(locked / 'run')).check_writable()


def test_path_under_a_file_is_refused_without_leaving_anything(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    with pytest.raises(run_dir_lib.RunDirError, match=r'--model_dir=.*not writable'):
        run_dir_lib.RunDir(str(blocker / 'run')).check_writable()
    assert sorted(os.listdir(tmp_path)) == ['file']


def test_check_writable_leaves_no_trace(tmp_path):
    run_dir_lib.RunDir(str(tmp_path / 'fresh')).check_writable()
    assert not os.path.exists(tmp_path / 'fresh')


def test_write_atomic_leaves_no_temp_files(tmp_path):
    path = tmp_path / 'a.json'
    run_dir_lib.write_json_atomic(str(path), {'a': 1})
    run_dir_lib.write_json_atomic(str(path), {'a': 2})
    assert json.load(open(path)) == {'a': 2}
    assert os.listdir(tmp_path) == ['a.json']
