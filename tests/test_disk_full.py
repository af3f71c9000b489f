"""Full disks (issue 23): a backup save, the run's records, a preparation and the disk cache each stop
in one line saying where, how much was needed and what is intact, and leave no temporary file.

The disk is a real small tmpfs (mounted per test; we run as root), so ENOSPC comes from the real
writers (h5py, TensorFlow, Matplotlib); a machine that cannot mount one skips these tests.
"""

import os
import subprocess
import sys

import pytest

from fastclassify.training import backup, run_dir as run_dir_lib
from tests.conftest import ROOT, SMALL, tiny_model
from tests.full_disk import fill, tmpfs

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', PYTHONPATH=ROOT)


@pytest.fixture
def small_disk(tmp_path, request):
    size = getattr(request, 'param', '4m')
    try:
        with tmpfs(str(tmp_path / 'disk'), size) as path:
            yield path
    except OSError as e:
        if 'cannot mount' in str(e):
            pytest.skip(str(e))
        raise


def _temporaries(folder: str) -> list[str]:
    return [os.path.join(d, n) for d, dirs, files in os.walk(folder) for n in dirs + files
            if n.startswith('.tmp-') or n.endswith('.tmp.png')]


def _callback(model_dir: str, step: int) -> backup.BackupCallback:
    cb = backup.BackupCallback(os.path.join(model_dir, 'backup'), every_steps=3, initial_global_step=step)
    cb.set_model(tiny_model())
    return cb


@pytest.mark.parametrize('checked', [True, False], ids=['refused_before_writing', 'h5py_meets_it'])
def test_a_backup_on_a_full_disk_is_one_line_and_keeps_the_previous_backup(small_disk, monkeypatch, checked):
    model_dir = os.path.join(small_disk, 'run')
    _callback(model_dir, 3).save()
    os.makedirs(os.path.join(model_dir, 'backup', '.tmp-step-0000000002'))  # a killed save's leftover
    filler = fill(small_disk, leave_bytes=0 if checked else 4096)
    if not checked:  # the space goes after the check: h5py itself meets ENOSPC
        monkeypatch.setattr(backup, 'free_bytes', lambda path: 1 << 50)
    cb = _callback(model_dir, 6)
    with pytest.raises(run_dir_lib.DiskFullError) as e:
        cb.save()
    message = str(e.value)
    assert '\n' not in message
    assert f'the disk holding {model_dir}/backup is full' in message
    assert 'global step 6 needs about' in message and 'free there' in message
    assert 'the previous backup, at global step 3, is intact' in message
    assert _temporaries(model_dir) == []
    assert backup.latest_step(os.path.join(model_dir, 'backup')) == 3
    os.remove(filler)
    cb.save()  # space again: the same callback saves
    assert backup.latest_step(os.path.join(model_dir, 'backup')) == 6


@pytest.mark.slow
@pytest.mark.parametrize('small_disk', ['160m'], indirect=True)
def test_train_py_on_a_full_disk_stops_in_one_line_and_the_rerun_resumes(small_disk):
    model_dir = os.path.join(small_disk, 'run')
    command = [sys.executable, '-m', 'tests.full_disk', *SMALL, f'--model_dir={model_dir}']
    # The disk fills before the second backup (the end of epoch 2), after the first one (step 3).
    env = dict(ENV, FILL_AT_SAVE='2', FILL_DIR=small_disk, NO_PRECHECK='1')
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    errors = [line for line in done.stderr.splitlines() if line.startswith('train.py: error:')]
    assert done.returncode == 1, done.stderr[-3000:]  # not 139: h5py's file is closed before exit
    assert len(errors) == 1 and 'Traceback' not in done.stderr, done.stderr[-3000:]
    assert f'the disk holding {model_dir}/backup is full' in errors[0]
    assert 'the previous backup, at global step 3, is intact' in errors[0]
    assert _temporaries(model_dir) == []
    os.remove(os.path.join(small_disk, 'filler'))
    rerun = subprocess.run([sys.executable, 'train.py', *SMALL, f'--model_dir={model_dir}'], cwd=ROOT,
                           env=ENV, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert 'global step 3)' in rerun.stdout and os.path.exists(os.path.join(model_dir, 'results.json'))


# --- The disk cache -------------------------------------------------------------------------------------

def _images(n, side, on_first=None):
    """n uint8 images as a tf.data generator (a known cardinality); `on_first` runs as the first is made."""
    import numpy as np
    import tensorflow as tf

    def gen():
        for i in range(n):
            if i == 0 and on_first is not None:
                on_first()
            yield np.full((side, side, 3), i % 251, np.uint8), np.int32(i)

    spec = (tf.TensorSpec((side, side, 3), tf.uint8), tf.TensorSpec((), tf.int32))
    return tf.data.Dataset.from_generator(gen, output_signature=spec).apply(
        tf.data.experimental.assert_cardinality(n))


def test_a_disk_cache_whose_space_goes_during_the_write_is_one_line(small_disk):
    from fastclassify.pipelines import cache
    path = cache.file_cache_path(os.path.join(small_disk, 'cache'), 'toy_train_64px')
    # 50 x 12 KB fits the 4 MB disk at the check; another process then takes all but 100 KB of it.
    decoded = _images(50, 64, on_first=lambda: fill(small_disk, leave_bytes=100_000))
    with pytest.raises(ValueError) as e:
        cache.file_cache(decoded, path, chunk=4)
    message = str(e.value)
    assert '\n' not in message and message.startswith(f'the disk filled while writing the file cache {path}')
    assert 'bytes (' in message and 'another process took the space after the free-space check' in message
    assert os.listdir(os.path.dirname(path)) in ([], ['.lock']) or all(
        'partial' not in n for n in os.listdir(os.path.dirname(path)))


def test_a_disk_cache_refused_for_space_shows_numbers_that_explain_it(small_disk):
    from fastclassify.pipelines import cache
    path = cache.file_cache_path(os.path.join(small_disk, 'cache'), 'toy_train_64px')
    os.makedirs(os.path.dirname(path))
    need = 50 * 64 * 64 * 3
    fill(small_disk, leave_bytes=need - 4096)  # a few KB short: rounded to MB both would read the same
    with pytest.raises(ValueError) as e:
        cache.file_cache(_images(50, 64), path, chunk=4)
    message = str(e.value)
    import re
    numbers = [int(n.replace(',', '')) for n in re.findall(r'([\d,]+) bytes', message)]
    assert len(numbers) == 3 and numbers[0] > numbers[1] and numbers[2] == numbers[0] - numbers[1], message


# --- Preparation ----------------------------------------------------------------------------------------

@pytest.mark.parametrize('small_disk', ['200k'], indirect=True)
@pytest.mark.parametrize('entry', ['cli.prepare', 'train.py'])
def test_preparing_onto_a_full_disk_is_one_line(small_disk, tmp_path, capsys, entry):
    from cli import prepare
    from tests.conftest import run_train
    from tests.folder_trees import separable_tree, write_dir

    source = write_dir(separable_tree(3, 30, size=96), tmp_path / 'src')  # ~350 KB of JPEGs, a 200 KB disk
    data = os.path.join(small_disk, 'data')
    args = ['--dataset=folder', f'--manual_dir={source}', f'--data_dir={data}']
    capsys.readouterr()
    if entry == 'cli.prepare':
        assert prepare.main(['prepare', *args]) == 2
    else:
        with pytest.raises(SystemExit) as e:
            run_train(*args, '--model=cifar_resnet9', '--weights=none', f'--model_dir={tmp_path / "run"}')
        assert e.value.code == 2
    err = capsys.readouterr().err  # also holds TFDS's progress bars
    errors = [line for line in err.split('\n') if 'error: ' in line]
    assert len(errors) == 1 and 'Traceback' not in err, err[-2000:]
    line = errors[0][errors[0].index('error: '):]
    assert f'the disk holding {data}/class_folders/src-' in line
    assert 'failed writing class_folders-train.tfrecord' in line and 'the images in --manual_dir take' in line
    assert 'free there with the partial build removed' in line
    leftovers = [d for d, _, _ in os.walk(data) if 'incomplete' in d]
    assert leftovers == []
