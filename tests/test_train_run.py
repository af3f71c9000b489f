"""train.py end to end on CPU: synthetic data, a few steps, and what the run leaves in --model_dir."""

import json
import os

import keras
import numpy as np
import pytest

from tests.conftest import SMALL, run_train


@pytest.mark.backends
def test_synthetic_run_writes_config_metrics_model_and_plots(tmp_path, capsys):
    model_dir = tmp_path / 'run'
    run_train(*SMALL, f'--model_dir={model_dir}', '--learning_rate=0.01')
    out = capsys.readouterr().out
    assert 'config:' in out and 'images/s' in out

    config = json.load(open(model_dir / 'config.json'))
    assert config['model']['name'] == 'cifar_resnet9'
    assert config['run']['epochs'] == 2 and config['pipeline']['batch_size'] == 16
    assert config['optimizer']['name'] == 'rmsprop'  # the cifar100 preset fills what flags leave

    results = json.load(open(model_dir / 'results.json'))
    for key in ('top1', 'top5', 'mean_per_class_accuracy', 'num_examples', 'worst_classes'):
        assert key in results
    assert 0.0 <= results['top1'] <= results['top5'] <= 1.0
    assert results['optimizer_iterations'] == 2 * 3
    assert len(results['worst_classes']) == 10

    history = json.load(open(model_dir / 'history.json'))
    assert [row['epoch'] for row in history] == [1, 2]
    assert all(np.isfinite(row['loss']) and row['images_per_sec'] > 0 for row in history)  # 3 steps: 2 timed
    for png in ('accuracy.png', 'loss.png'):
        assert (model_dir / 'plots' / png).read_bytes()[:4] == b'\x89PNG'
    assert (model_dir / 'checkpoints' / 'last.weights.h5').exists()
    assert os.listdir(model_dir / 'logs')
    split = results['epoch_time']['whole_run']
    assert split['epochs'] == 2 and split['steps'] == 2 * 3 - 1  # the compiling first step apart
    assert split['line'] in out and 'input wait' in split['line']

    model = keras.saving.load_model(model_dir / 'model.keras')
    probs = model.predict(np.zeros((2, 32, 32, 3), np.uint8), verbose=0)
    assert probs.shape == (2, 100) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)


@pytest.mark.slow  # a whole train.py run (or several)
def test_rerunning_a_finished_run_does_not_retrain(tmp_path, capsys):
    model_dir = tmp_path / 'run'
    run_train(*SMALL, f'--model_dir={model_dir}', '--epochs=1')
    before = os.path.getmtime(model_dir / 'results.json')
    capsys.readouterr()
    run_train(*SMALL, f'--model_dir={model_dir}', '--epochs=1')
    assert 'already holds a finished run' in capsys.readouterr().out
    assert os.path.getmtime(model_dir / 'results.json') == before


@pytest.mark.slow  # a whole train.py run (or several)
def test_different_config_in_same_dir_is_refused(tmp_path, capsys):
    model_dir = tmp_path / 'run'
    run_train(*SMALL, f'--model_dir={model_dir}', '--epochs=1')
    with pytest.raises(SystemExit) as e:
        run_train(*SMALL, f'--model_dir={model_dir}', '--epochs=1', '--learning_rate=0.5')
    assert e.value.code != 0
    assert '--overwrite' in capsys.readouterr().err
    run_train(*SMALL, f'--model_dir={model_dir}', '--epochs=1', '--learning_rate=0.5', '--overwrite')
    assert json.load(open(model_dir / 'config.json'))['optimizer']['learning_rate'] == 0.5


@pytest.mark.slow  # a whole train.py run (or several)
def test_freeze_backbone_then_unfreeze_with_ema_and_label_smoothing(tmp_path):
    model_dir = tmp_path / 'run'
    run_train(*SMALL, f'--model_dir={model_dir}', '--freeze_backbone_epochs=1', '--ema_decay=0.9',
              '--label_smoothing=0.1', '--optimizer=sgd', '--warmup_epochs=1')
    results = json.load(open(model_dir / 'results.json'))
    assert results['optimizer_iterations'] == 2 * 3
    assert [row['epoch'] for row in json.load(open(model_dir / 'history.json'))] == [1, 2]


@pytest.mark.slow  # a whole train.py run (or several)
def test_benchmark_mode_reports_ceiling_end_to_end_and_verdict(tmp_path, capsys):
    run_train(*SMALL, f'--model_dir={tmp_path / "bench"}', '--benchmark')
    report = json.load(open(tmp_path / 'bench' / 'benchmark.json'))
    names = [row['name'] for row in report['results']]
    assert names == ['train_step_ceiling_on_device', 'train_end_to_end', 'epoch_end_to_end']
    assert all(row['images'] == 3 * 16 and row['images_per_sec'] > 0 for row in report['results'])
    assert report['input_bound'] == (report['end_to_end_over_ceiling'] < 0.97)
    # The real loop's steady-state step, part by part; validation and callbacks are not in the step.
    parts = report['per_step_seconds']
    assert set(parts) == {'input_wait', 'step', 'callbacks', 'validation', 'other', 'total'}
    assert parts['validation'] > 0 and parts['callbacks'] > 0 and parts['input_wait'] >= 0
    assert sum(v for k, v in parts.items() if k != 'total') == pytest.approx(parts['total'])
    end_to_end = report['results'][1]
    assert 16 / end_to_end['images_per_sec'] == pytest.approx(parts['step'] + parts['input_wait'])
    assert {'BackupCallback', 'CheckpointCallback', 'HistoryCallback'} <= set(
        report['epoch_time']['callback_seconds'])
    out = capsys.readouterr().out
    assert 'input-bound: ' in out and 'epoch time ' in out  # the measured run is a real run
    assert os.listdir(tmp_path / 'bench') == ['benchmark.json']  # its scratch run is removed


@pytest.mark.slow  # a whole train.py run (or several)
def test_device_cache_with_mixing_augmentation(tmp_path):
    model_dir = tmp_path / 'run'
    run_train(*SMALL, f'--model_dir={model_dir}', '--epochs=1', '--cache=device', '--augment=flip_crop+mixup')
    config = json.load(open(model_dir / 'config.json'))
    assert config['pipeline']['cache'] == 'device'
    assert json.load(open(model_dir / 'results.json'))['optimizer_iterations'] == 3


@pytest.mark.slow  # a whole train.py run (or several)
def test_caltech256_end_to_end_from_the_manual_archive_with_a_disk_cache(tmp_path):
    import shutil
    from fastclassify.pipelines.caltech256 import archive
    from fastclassify.pipelines.caltech256.make_dummy_data import DUMMY_ARCHIVE
    manual = tmp_path / 'manual'
    manual.mkdir()
    shutil.copy(DUMMY_ARCHIVE, manual / archive.ARCHIVE_NAME)
    model_dir = tmp_path / 'run'
    run_train('--dataset=caltech256', f'--manual_dir={manual}', '--allow_modified_archive',
              f'--data_dir={tmp_path / "data"}', f'--model_dir={model_dir}', '--model=cifar_resnet9',
              '--weights=none', '--head=gap', '--image_size=48', '--batch_size=4', '--steps_per_epoch=2',
              '--epochs=1', '--precision=float32', '--cache=disk', '--augment=rrc')
    results = json.load(open(model_dir / 'results.json'))
    # Test split of the dummy archive, every example once; class names come from the folders.
    assert results['num_examples'] == 5
    assert {w['name'] for w in results['worst_classes']} <= {'ak47', 'american-flag', 'dog', 'spider', 'clutter'}
    # The disk cache is one memory-mapped file per split and size, trusted only with a valid header page.
    from fastclassify.pipelines import cache as cache_lib
    files = sorted((tmp_path / 'data' / 'cache').rglob('*.u8cache'))
    assert files
    for path in files:
        header = cache_lib._read_header(str(path))  # pylint: disable=protected-access
        assert isinstance(header, cache_lib._Header), f'{path}: {header}'  # pylint: disable=protected-access
        assert header.count > 0 and header.image_shape[2] == 3
        assert path.stat().st_size == header.file_bytes


@pytest.mark.slow  # a whole train.py run (or several)
def test_flagfile_values_override_the_preset(tmp_path):
    flagfile = tmp_path / 'run.flags'
    flagfile.write_text('\n'.join(SMALL + [f'--model_dir={tmp_path / "run"}', '--epochs=1',
                                           '--optimizer=sgd', '--learning_rate=0.05']) + '\n')
    run_train(f'--flagfile={flagfile}')
    config = json.load(open(tmp_path / 'run' / 'config.json'))
    assert config['optimizer']['name'] == 'sgd' and config['optimizer']['learning_rate'] == 0.05
    assert config['model']['name'] == 'cifar_resnet9' and config['run']['epochs'] == 1
