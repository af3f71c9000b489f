"""The run directory's rules: writable check, resume/finished detection, config changes refused."""

import json
import os
import stat

import pytest

from fastclassify.training import run_dir as run_dir_lib


class _Cfg:
    """Stands in for TrainConfig: claim() only needs to_dict() and run.overwrite."""

    def __init__(self, epochs=3, overwrite=False, data_dir='/data', model='resnet', learning_rate=0.1):
        self._d = {'run': {'epochs': epochs, 'overwrite': overwrite, 'model_dir': 'x'},
                   'source': {'data_dir': data_dir}, 'model': {'name': model},
                   'optimizer': {'learning_rate': learning_rate}}
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
    rd.claim(_Cfg(model='resnet'))
    open(os.path.join(rd.path, 'keep.txt'), 'w').close()
    with pytest.raises(run_dir_lib.RunDirError, match=r'--overwrite.*') as e:
        rd.claim(_Cfg(model='convnext'))
    assert "model.name: 'resnet' -> 'convnext'" in str(e.value) and '\n' not in str(e.value)
    assert '--learning_rate and --epochs' in str(e.value)  # what a resume would have accepted
    assert os.path.exists(os.path.join(rd.path, 'keep.txt'))
    assert rd.claim(_Cfg(model='convnext', overwrite=True)) == 'new'
    assert not os.path.exists(os.path.join(rd.path, 'keep.txt'))


def test_a_resume_accepts_a_new_learning_rate_and_epochs_and_says_so(tmp_path, capsys):
    rd = run_dir_lib.RunDir(str(tmp_path / 'run'))
    rd.claim(_Cfg(epochs=3, learning_rate=0.1))
    assert rd.claim(_Cfg(epochs=5, learning_rate=0.01)) == 'resume'
    out = capsys.readouterr().out
    assert 'optimizer.learning_rate: 0.1 -> 0.01' in out and 'run.epochs: 3 -> 5' in out
    assert json.load(open(rd.config))['optimizer']['learning_rate'] == 0.01  # the record follows


def test_a_finished_run_is_not_extended_silently(tmp_path):
    rd = run_dir_lib.RunDir(str(tmp_path / 'run'))
    rd.claim(_Cfg(epochs=3))
    run_dir_lib.write_json_atomic(rd.results, {'top1': 0.5})
    with pytest.raises(run_dir_lib.RunDirError, match=r'finished run.*--weights=.*model\.keras'):
        rd.claim(_Cfg(epochs=5))
    assert rd.claim(_Cfg(epochs=5, overwrite=True)) == 'new'


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
    with pytest.raises(run_dir_lib.RunDirError, match=r'--model_dir=.*not writable') as e:
        run_dir_lib.RunDir(str(blocker / 'run')).check_writable()
    assert f'{blocker} is a file, not a folder' in str(e.value)
    assert sorted(os.listdir(tmp_path)) == ['file']


def test_model_dir_that_is_a_file_is_named_as_such(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    with pytest.raises(run_dir_lib.RunDirError) as e:
        run_dir_lib.RunDir(str(blocker)).check_writable()
    assert str(e.value) == (f'--model_dir={blocker} is a file, not a folder; choose a folder '
                            '(it is created if absent)')
    assert 'File exists' not in str(e.value) and blocker.read_text() == 'x'


def test_check_writable_leaves_no_trace(tmp_path):
    run_dir_lib.RunDir(str(tmp_path / 'fresh')).check_writable()
    assert not os.path.exists(tmp_path / 'fresh')


def test_write_atomic_leaves_no_temp_files(tmp_path):
    path = tmp_path / 'a.json'
    run_dir_lib.write_json_atomic(str(path), {'a': 1})
    run_dir_lib.write_json_atomic(str(path), {'a': 2})
    assert json.load(open(path)) == {'a': 2}
    assert os.listdir(tmp_path) == ['a.json']
