"""The augmentation benchmark's rows: names, schema and plausible numbers, on a tiny run."""

import importlib.util
import json

from absl import flags
import keras
import pytest

from benchmarks import augment as augment_benchmark


def test_rows_for_each_policy_and_the_seed_baselines():
    rows = augment_benchmark.run_augment_benchmark(['seed', 'flip_crop+mixup'], image_size=32, batch_size=8,
                                                   num_batches=2)
    names = [row['name'] for row in rows]
    tensorflow = keras.backend.backend() == 'tensorflow'  # host tf.data and KerasCV rows need it
    expected = ['augment_seed_device'] + (['augment_seed_host', 'augment_seed_keras_cv_layers'] if tensorflow else [])
    if importlib.util.find_spec('scipy') is not None:
        expected.append('augment_seed_imagedatagenerator')
    expected += ['augment_flip_crop+mixup_device'] + (['augment_flip_crop+mixup_host'] if tensorflow else [])
    assert names == expected
    for row in rows:
        assert set(row) == {'name', 'images_per_sec', 'images', 'seconds'}
        assert row['images'] > 0 and row['seconds'] > 0
        assert row['images_per_sec'] == pytest.approx(row['images'] / row['seconds'])
    assert rows[0]['images'] == 16  # warm-up batch excluded


def test_unknown_policy_fails_before_measuring():
    with pytest.raises(ValueError, match='valid names'):
        augment_benchmark.run_augment_benchmark(['sed'], image_size=32, batch_size=4, num_batches=1)


def test_main_writes_json_with_the_backend(tmp_path, capsys):
    path = tmp_path / 'rows.json'
    flag_values = flags.FlagValues()
    augment_benchmark.define_flags(flag_values)
    flag_values(['augment_benchmark', '--augment=flip_crop', '--image_size=16', '--batch_size=4',
                 '--num_batches=1', f'--json={path}'])
    augment_benchmark.main([], flag_values)
    rows = json.loads(path.read_text())
    backend = keras.backend.backend()
    assert [row['name'] for row in rows] == ['augment_flip_crop_device'] + (
            ['augment_flip_crop_host'] if backend == 'tensorflow' else [])
    assert {row['backend'] for row in rows} == {backend}
    assert f'backend: {backend}' in capsys.readouterr().out
