"""Faults injected on purpose (issue 11): each ends in one line naming the file, flag or process.

One writer per folder, preparations that wait for each other, unreadable backups, the NaN stop's
advice, truncated or corrupt TFDS shards, a `--data_dir` or `--model_dir` that is a file, and flag
values named as the user typed them. The subprocess versions are in test_reliability_runs.py.
"""

import fcntl
import json
import os
import shutil
import threading
import time

import numpy as np
import pytest

from fastclassify.models.config import MAX_IMAGE_SIZE, ModelConfig
from cli import prepare
from fastclassify.pipelines import sources
from fastclassify.pipelines.caltech256 import archive
from fastclassify.pipelines.caltech256.make_dummy_data import DUMMY_ARCHIVE
from fastclassify.pipelines.folder_lock import FolderLock
from tests.conftest import SMALL, compile_with_nan_loss_from, run_train, tiny_model
from fastclassify.training import backup, loop, run_dir as run_dir_lib


def _error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith('train.py: error:')]
    assert len(err) == 1, err
    return err[0]


def _fails(capsys, *args) -> str:
    with pytest.raises(SystemExit) as e:
        run_train(*args)
    assert e.value.code != 0
    return _error_line(capsys)


# --- One writer per --model_dir ---------------------------------------------------------------------

class _Cfg:
    def __init__(self, overwrite=False):
        self.run = type('Run', (), {'overwrite': overwrite})()

    def to_dict(self):
        return {'run': {'epochs': 1}, 'model': {'name': 'm'}}


def _hold_lock(path: str, holder: str) -> int:
    """Takes the flock from a separate open file description, as another process would."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.ftruncate(fd, 0)
    os.write(fd, holder.encode())
    return fd


def test_a_second_writer_of_a_model_dir_is_refused_naming_the_holder(tmp_path):
    model_dir = tmp_path / 'run'
    fd = _hold_lock(str(model_dir / '.writer.lock'), 'pid 4242 on host gpu7')
    try:
        with pytest.raises(run_dir_lib.RunDirError) as e:
            run_dir_lib.RunDir(str(model_dir)).claim(_Cfg())
        assert 'in use by pid 4242 on host gpu7' in str(e.value) and '\n' not in str(e.value)
        assert not (model_dir / 'config.json').exists()  # the refused run wrote nothing
    finally:
        os.close(fd)  # the holder dies: the kernel drops its lock, no stale file matters
    assert run_dir_lib.RunDir(str(model_dir)).claim(_Cfg()) == 'new'


def test_the_lock_file_names_this_process_and_is_kept_by_overwrite(tmp_path):
    rd = run_dir_lib.RunDir(str(tmp_path / 'run'))
    rd.claim(_Cfg())
    assert open(tmp_path / 'run' / '.writer.lock').read().startswith(f'pid {os.getpid()} on host ')
    rd.clear()
    assert os.listdir(tmp_path / 'run') == ['.writer.lock']


# --- Two preparations of one dataset ----------------------------------------------------------------

@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
    """The dummy Caltech-256 archive prepared once; tests copy it before corrupting anything."""
    root = tmp_path_factory.mktemp('prepared')
    manual = root / 'manual'
    manual.mkdir()
    shutil.copy(DUMMY_ARCHIVE, manual / archive.ARCHIVE_NAME)
    cfg = sources.SourceConfig('caltech256', data_dir=str(root / 'data'), manual_dir=str(manual),
                               allow_modified_archive=True, download=False)
    sources.prepare(cfg)
    return root


def _copy(prepared, tmp_path):
    shutil.copytree(prepared / 'data', tmp_path / 'data')
    cfg = sources.SourceConfig('caltech256', data_dir=str(tmp_path / 'data'),
                               manual_dir=str(prepared / 'manual'), allow_modified_archive=True,
                               download=False)
    return cfg, sources.prepare(cfg)


def test_a_second_preparer_waits_and_leaves_the_live_build_alone(prepared, tmp_path, caplog):
    data = tmp_path / 'data'
    folder = data / 'caltech256' / 'all'
    live_build = folder / 'incomplete.ABC123_1.0.0'  # what a live TFDS build looks like
    live_build.mkdir(parents=True)
    fd = _hold_lock(str(folder / '.prepare.lock'), 'pid 777 on host login1')
    cfg = sources.SourceConfig('caltech256', data_dir=str(data), manual_dir=str(prepared / 'manual'),
                               allow_modified_archive=True, download=False)
    result = {}
    waiter = threading.Thread(target=lambda: result.update(builder=sources.prepare(cfg)))
    waiter.start()
    time.sleep(2.0)
    assert waiter.is_alive()  # waiting for the holder, not building beside it
    assert live_build.exists()  # its writer is alive: not "interrupted"
    assert 'Waiting for pid 777 on host login1' in caplog.text
    os.close(fd)  # the first preparer dies without finishing
    waiter.join(timeout=120)
    assert not live_build.exists()  # now its writer is gone: removed and built again
    assert sources.split_sizes(result['builder']) == {'train': 18, 'test': 5}


# --- Corrupt or missing data ------------------------------------------------------------------------

def _train_shard(builder) -> str:
    return os.path.join(builder.data_dir, 'caltech256-train.tfrecord-00000-of-00001')


def test_a_truncated_shard_is_one_line_naming_it_and_the_rebuild_command(prepared, tmp_path, capsys):
    cfg, builder = _copy(prepared, tmp_path)
    shard = _train_shard(builder)
    with open(shard, 'r+b') as f:
        f.truncate(os.path.getsize(shard) // 2)
    with pytest.raises(sources.DataCorruptError) as e:
        sources.prepare(cfg)
    message = str(e.value)
    assert message.startswith(f'{shard} is truncated or corrupt') and '\n' not in message
    assert ('`python -m cli.prepare --dataset=caltech256 '
            f'--data_dir={tmp_path / "data"} --manual_dir={prepared / "manual"} '
            '--allow_modified_archive --rebuild`') in message
    argv = ['prepare', '--dataset=caltech256', f'--data_dir={tmp_path / "data"}',
            f'--manual_dir={prepared / "manual"}', '--allow_modified_archive']
    assert prepare.main(argv) == 2  # the prepare command reports it too, in the same line
    assert capsys.readouterr().err.strip() == f'error: {message}'
    assert prepare.main(argv + ['--rebuild']) == 0  # the command the line names repairs it
    assert sources.split_sizes(sources.prepare(cfg))['train'] == 18


@pytest.mark.parametrize('cache', ['memory', 'none'])
def test_a_truncated_shard_stops_train_py_in_one_line(prepared, tmp_path, capsys, cache):
    cfg, builder = _copy(prepared, tmp_path)
    shard = _train_shard(builder)
    with open(shard, 'r+b') as f:
        f.truncate(os.path.getsize(shard) - 100)
    message = _fails(capsys, '--dataset=caltech256', f'--data_dir={cfg.data_dir}',
                     f'--manual_dir={cfg.manual_dir}', '--allow_modified_archive', '--image_size=32',
                     '--model=cifar_resnet9', '--weights=none', '--head=gap', '--batch_size=4',
                     '--epochs=1', f'--cache={cache}', f'--model_dir={tmp_path / "run"}')
    assert shard in message and '--rebuild' in message and 'Traceback' not in message
    assert not (tmp_path / 'run').exists()


def _flip_a_byte(path: str) -> None:
    """Same size, one byte of an image changed: only TFRecord's CRC can tell."""
    with open(path, 'r+b') as f:
        f.seek(os.path.getsize(path) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.parametrize('cache', ['memory', 'device', 'disk', 'none'])
def test_a_flipped_byte_in_a_shard_stops_train_py_in_one_line(prepared, tmp_path, capsys, cache):
    cfg, builder = _copy(prepared, tmp_path)
    shard = _train_shard(builder)
    _flip_a_byte(shard)
    sources.prepare(cfg)  # the size check cannot see it
    message = _fails(capsys, '--dataset=caltech256', f'--data_dir={cfg.data_dir}',
                     f'--manual_dir={cfg.manual_dir}', '--allow_modified_archive', '--image_size=32',
                     '--model=cifar_resnet9', '--weights=none', '--head=gap', '--batch_size=4',
                     '--epochs=1', '--precision=float32', f'--cache={cache}',
                     f'--model_dir={tmp_path / "run"}')
    assert message.startswith(f'train.py: error: {shard} is corrupt')
    assert '--rebuild' in message


def test_data_dir_that_is_a_file_is_one_line(tmp_path, capsys):
    blocker = tmp_path / 'data'
    blocker.write_text('not a folder')
    with pytest.raises(ValueError, match=r'--data_dir=.*data is a file, not a folder'):
        sources.SourceConfig('cifar100', data_dir=str(blocker))
    with pytest.raises(ValueError, match=r'is under .*data, a file'):
        sources.SourceConfig('cifar100', data_dir=str(blocker / 'below'))
    assert prepare.main(['prepare', '--dataset=cifar100', f'--data_dir={blocker}']) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'is a file, not a folder' in err
    message = _fails(capsys, *SMALL, f'--data_dir={blocker}', f'--model_dir={tmp_path / "run"}')
    assert f'--data_dir={blocker} is a file, not a folder' in message


# --- Backups ----------------------------------------------------------------------------------------

def _save(model, backup_dir, step):
    cb = backup.BackupCallback(str(backup_dir), every_steps=1, initial_global_step=step)
    cb.set_model(model)
    cb.save()


def _corrupt(backup_dir, step):
    path = backup_dir / f'step-{step:010d}' / 'state.weights.h5'
    path.write_bytes(path.read_bytes()[:100])


def test_all_backups_unreadable_stops_in_one_line_and_overwrite_starts_over(tmp_path):
    rd = run_dir_lib.RunDir(str(tmp_path / 'run'))
    rd.claim(_Cfg())
    model = tiny_model()
    for step in (2, 4):
        _save(model, rd.backup, step)
        _corrupt(tmp_path / 'run' / 'backup', step)
    with pytest.raises(run_dir_lib.RunDirError) as e:  # train.py prints RunDirError as one line
        backup.restore(tiny_model(), rd.backup)
    message = str(e.value)
    assert 'step-0000000004' in message and 'step-0000000002' in message and '--overwrite' in message
    assert '\n' not in message
    assert rd.claim(_Cfg()) == 'resume'  # a plain rerun meets the same line again, never step 0
    with pytest.raises(backup.BackupError):
        backup.restore(tiny_model(), rd.backup)
    assert rd.claim(_Cfg(overwrite=True)) == 'new'  # the flag the line names starts over
    assert not os.path.exists(rd.backup) and backup.restore(tiny_model(), rd.backup) is None


def test_retention_never_deletes_the_fresh_backup_after_a_fallback(tmp_path):
    model = tiny_model()
    for step in (4, 6):
        _save(model, tmp_path, step)
    _corrupt(tmp_path, 6)
    step, _ = backup.restore(model, str(tmp_path))
    assert step == 4
    _save(model, tmp_path, 5)  # the resumed run's first backup sorts below the corrupt step-6
    assert sorted(os.listdir(tmp_path)) == ['step-0000000004', 'step-0000000005']
    assert backup.restore(tiny_model(), str(tmp_path))[0] == 5


def test_a_resume_keeps_the_new_constant_learning_rate(tmp_path):
    before = tiny_model(learning_rate=0.1)
    before.optimizer.iterations.assign(3)
    _save(before, tmp_path, 3)
    lowered = tiny_model(learning_rate=0.01)
    backup.restore(lowered, str(tmp_path))
    assert int(lowered.optimizer.iterations.numpy()) == 3  # the rest of the state is the backup's
    assert float(lowered.optimizer.learning_rate.numpy()) == pytest.approx(0.01)


def test_nan_advice_names_only_folders_that_exist(tmp_path):
    message = backup.non_finite_loss_message(str(tmp_path / 'backup'), str(tmp_path / 'checkpoints'),
                                             epoch=1, learning_rate=0.5)
    assert 'before any state was saved' in message and '--learning_rate=0.05' in message
    assert str(tmp_path / 'checkpoints') not in message and str(tmp_path / 'backup') not in message
    _save(tiny_model(), tmp_path / 'backup', 4)
    message = backup.non_finite_loss_message(str(tmp_path / 'backup'), str(tmp_path / 'checkpoints'),
                                             epoch=1, learning_rate=0.5)
    assert f'the backup at global step 4 in {tmp_path / "backup"}' in message
    assert 'checkpoints' not in message and '--overwrite' not in message


@pytest.mark.slow
def test_nan_stop_advice_is_a_rerun_that_resumes(tmp_path, monkeypatch, capsys):
    original = loop.compile_trainer
    args = [*SMALL, '--steps_per_epoch=6', '--epochs=1', '--checkpoint_every_steps=2',
            '--learning_rate=0.01', f'--model_dir={tmp_path / "run"}']
    monkeypatch.setattr(loop, 'compile_trainer', compile_with_nan_loss_from(4, original))
    message = _fails(capsys, *args)
    assert f'the backup at global step 4 in {tmp_path / "run" / "backup"}' in message
    assert os.path.isdir(tmp_path / 'run' / 'backup' / 'step-0000000004')
    advice = '--learning_rate=0.001'
    assert advice in message
    monkeypatch.setattr(loop, 'compile_trainer', original)
    run_train(*args[:-2], advice, args[-1])  # the advised rerun: accepted as a resume
    out = capsys.readouterr().out
    assert 'optimizer.learning_rate: 0.01 -> 0.001' in out and 'resuming from the backup' in out
    results = json.load(open(tmp_path / 'run' / 'results.json'))
    assert results['optimizer_iterations'] == 6


# --- Flags named as typed ---------------------------------------------------------------------------

def test_negative_ram_budget_is_named_as_the_flag(tmp_path, capsys):
    message = _fails(capsys, *SMALL, '--ram_budget_gb=-3', f'--model_dir={tmp_path / "run"}')
    assert '--ram_budget_gb=-3 is not valid' in message and 'ram_budget_bytes' not in message


def test_model_dir_that_is_a_file_is_one_clear_line(tmp_path, capsys):
    (tmp_path / 'file').write_text('x')
    message = _fails(capsys, *SMALL, f'--model_dir={tmp_path / "file"}')
    assert f'--model_dir={tmp_path / "file"} is a file, not a folder' in message
    assert 'File exists' not in message


def test_image_size_beyond_the_limit_is_refused_before_allocating(tmp_path, capsys):
    with pytest.raises(ValueError, match=rf'--image_size=100000 is too large: at most {MAX_IMAGE_SIZE} px'):
        ModelConfig('cifar_resnet9', 10, 100000)
    message = _fails(capsys, *SMALL, '--image_size=100000', f'--model_dir={tmp_path / "run"}')
    assert f'at most {MAX_IMAGE_SIZE} px' in message
    assert not (tmp_path / 'run').exists()


def test_folder_lock_is_reentrant_in_one_process_and_released_on_close(tmp_path):
    path = str(tmp_path / 'x.lock')
    first, second = FolderLock(path), FolderLock(path)
    first.try_acquire()
    second.try_acquire()  # same process: the same writer
    first.release()
    second.release()
    fd = _hold_lock(path, 'pid 1 on host h')  # now free for anyone else
    os.close(fd)
