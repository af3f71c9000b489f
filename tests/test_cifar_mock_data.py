"""CIFAR-100 through TFDS's own `tfds.testing.mock_data` and the real pipeline and training code."""

import json

import pytest
import tensorflow_datasets as tfds

from tests import fake_cifar
from tests.conftest import run_train


@pytest.mark.slow  # a whole train.py run (or several)
def test_train_on_tfds_mock_data_through_the_real_pipeline(tmp_path):
    # mock_data (USE_FILES) needs the dataset's metadata: prepare a tiny real cifar100 once for it.
    extracted = fake_cifar.write_cifar100_binary(tmp_path / 'extracted', {'train': 40, 'test': 10})
    data_dir = tmp_path / 'data'
    with fake_cifar.offline_download(extracted):
        tfds.builder('cifar100', data_dir=str(data_dir)).download_and_prepare()
    model_dir = tmp_path / 'run'
    with tfds.testing.mock_data(num_examples=48, policy=tfds.testing.MockPolicy.USE_FILES,
                                data_dir=str(data_dir)):
        run_train('--dataset=cifar100', f'--data_dir={data_dir}', f'--model_dir={model_dir}',
                  '--model=cifar_resnet9', '--weights=none', '--head=gap', '--batch_size=16',
                  '--epochs=1', '--precision=float32', '--cache=memory', '--nodownload')
    results = json.load(open(model_dir / 'results.json'))
    # mock_data serves 48 generated examples for every split it is asked for: all 48 test examples
    # were decoded from TFDS's PNG encoding, cached, and each evaluated exactly once.
    assert results['num_examples'] == 48
    assert results['optimizer_iterations'] == 48 // 16
    config = json.load(open(model_dir / 'config.json'))
    assert config['source']['data_dir'] == str(data_dir) and not config['run']['synthetic_data']
