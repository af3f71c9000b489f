"""Weights: save/reload round trips, safe_mode refusals, legacy .h5 refusal, ImageNet offline errors."""

import os
import time
import urllib.error

import keras
import numpy as np
import pytest
from keras.src.backend import config as keras_config
from keras.src.utils import file_utils

from fastclassify.models import builder
from fastclassify.models import registry
from fastclassify.models import weights
from fastclassify.models.config import ModelConfig

SIZE = 16


@pytest.fixture(autouse=True)
def _fresh_keras():
    yield
    keras.backend.clear_session()


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty Keras home and a network that refuses every download (fast, like a machine with no route)."""
    origins = []

    def refuse(origin, *args, **kwargs):
        origins.append(origin)
        raise urllib.error.URLError('[Errno -2] Name or service not known')

    monkeypatch.setattr(file_utils, 'urlretrieve', refuse)
    home = tmp_path / 'keras_home'
    home.mkdir()
    monkeypatch.setattr(keras_config, 'keras_home', lambda: str(home))
    return home, origins


def _pixels(seed=0):
    return np.random.default_rng(seed).integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)


def _trained_model(num_classes=4, head='gap'):
    """A model whose weights differ from a fresh build (so a reload that silently did nothing would fail)."""
    model = builder.build_model(ModelConfig('cifar_resnet9', num_classes, SIZE, head=head))
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss='sparse_categorical_crossentropy', run_eagerly=True)
    model.train_on_batch(_pixels(1), np.arange(3) % num_classes)
    return model


def test_weights_h5_save_and_reload_give_identical_predictions(tmp_path):
    model = _trained_model()
    path = str(tmp_path / 'run.weights.h5')
    model.save_weights(path)
    expected = model.predict_on_batch(_pixels())
    keras.backend.clear_session()
    reloaded = builder.build_model(ModelConfig('cifar_resnet9', 4, SIZE, weights=path))
    fresh = builder.build_model(ModelConfig('cifar_resnet9', 4, SIZE))
    np.testing.assert_array_equal(reloaded.predict_on_batch(_pixels()), expected)
    assert not np.allclose(fresh.predict_on_batch(_pixels()), expected)


def test_keras_file_reload_gives_identical_predictions(tmp_path):
    model = _trained_model(head='seed_cifar')
    path = str(tmp_path / 'run.keras')
    model.save(path)
    expected = model.predict_on_batch(_pixels())
    keras.backend.clear_session()
    reloaded = builder.build_model(ModelConfig('cifar_resnet9', 4, SIZE, head='seed_cifar', weights=path))
    np.testing.assert_array_equal(reloaded.predict_on_batch(_pixels()), expected)


def test_resnet50_preprocessing_layer_round_trips_in_safe_mode(tmp_path):
    inputs = keras.Input((SIZE, SIZE, 3))
    model = keras.Model(inputs, registry.CaffePreprocessing(name='preprocessing')(inputs))
    path = str(tmp_path / 'caffe.keras')
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False, safe_mode=True)
    assert isinstance(loaded.get_layer('preprocessing'), registry.CaffePreprocessing)
    np.testing.assert_array_equal(loaded.predict_on_batch(_pixels()), model.predict_on_batch(_pixels()))


def test_keras_file_with_other_head_loads_the_backbone_only(tmp_path):
    model = _trained_model(num_classes=4)
    path = str(tmp_path / 'other_task.keras')
    model.save(path)
    target = builder.build_model(ModelConfig('cifar_resnet9', 9, SIZE, weights=path))
    for a, b in zip(model.get_layer('backbone').get_weights(), target.get_layer('backbone').get_weights()):
        np.testing.assert_array_equal(a, b)
    assert target.get_layer('predictions').kernel.shape == (256, 9)


def test_keras_file_with_a_lambda_layer_is_refused_and_its_code_never_runs(tmp_path):
    marker = tmp_path / 'pwned'
    payload = eval(f"lambda x: (open({str(marker)!r}, 'w').close(), x)[1]")  # a file write stands in for harm
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Lambda(payload, name='payload')(inputs)
    malicious = keras.Model(inputs, keras.layers.Dense(4, activation='softmax')(x))
    marker.unlink()  # building the model above ran the lambda once, here, by us
    path = str(tmp_path / 'malicious.keras')
    malicious.save(path)
    assert not marker.exists()

    target = builder.build_model(ModelConfig('cifar_resnet9', 4, SIZE))
    with pytest.raises(weights.WeightsError, match=r'malicious\.keras: refused.*[Ll]ambda') as error:
        weights.load_weights_file(target, path)
    assert '\n' not in str(error.value)
    assert not marker.exists()
    # The payload is live: without safe_mode, loading alone would have run it.
    keras.saving.load_model(path, compile=False, safe_mode=False)
    assert marker.exists()


def test_legacy_full_model_h5_is_refused(tmp_path):
    path = str(tmp_path / 'legacy.h5')
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(path)
    target = builder.build_model(ModelConfig('cifar_resnet9', 4, SIZE))
    with pytest.raises(weights.WeightsError, match=r'legacy\.h5: legacy full-model \.h5 .*safe_mode'):
        weights.load_weights_file(target, path)


def test_mismatched_weights_h5_names_the_file(tmp_path):
    path = str(tmp_path / 'wrong.weights.h5')
    _trained_model(num_classes=4).save_weights(path)
    with pytest.raises(weights.WeightsError, match=r'wrong\.weights\.h5: does not fit'):
        builder.build_model(ModelConfig('cifar_resnet9', 4, SIZE, head='seed_caltech', weights=path))


def test_missing_weights_file_names_it(tmp_path):
    with pytest.raises(weights.WeightsError, match=r'nothere\.keras: file not found'):
        builder.build_model(ModelConfig('cifar_resnet9', 4, SIZE, weights=str(tmp_path / 'nothere.keras')))


def test_imagenet_offline_is_one_fast_line_naming_file_and_folder(offline):
    home, origins = offline
    start = time.monotonic()
    with pytest.raises(weights.WeightsError) as error:
        builder.build_model(ModelConfig('convnext_tiny', 10, 32, weights='imagenet'))
    message = str(error.value)
    assert time.monotonic() - start < 30
    assert '\n' not in message
    assert 'convnext_tiny_notop.h5' in message
    assert os.path.join(str(home), 'models') in message
    assert '$KERAS_HOME/models' in message
    assert origins == [registry.FAMILIES['convnext_tiny'].imagenet_weights_url]


def test_imagenet_file_placed_by_hand_is_used_without_download(offline):
    home, origins = offline
    (home / 'models').mkdir()
    placed = home / 'models' / 'resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5'
    placed.write_bytes(b'placed by hand')
    assert weights.fetch_imagenet_weights('resnet50') == str(placed)
    assert origins == []


def test_imagenet_file_with_wrong_hash_is_reported(offline):
    home, _ = offline
    (home / 'models').mkdir()
    (home / 'models' / 'efficientnetv2-b0_notop.h5').write_bytes(b'truncated download')
    with pytest.raises(weights.WeightsError, match=r'efficientnetv2-b0_notop\.h5 does not match the hash'):
        builder.build_model(ModelConfig('efficientnetv2_b0', 10, 32, weights='imagenet'))


def _imagenet_params():
    return [pytest.param(name, marks=[pytest.mark.slow] if family.large else [])
            for name, family in registry.FAMILIES.items() if family.imagenet_weights_file]


@pytest.mark.parametrize('name', _imagenet_params())
def test_registry_names_the_file_keras_itself_downloads(name, offline):
    """Keras' own constructor, offline, asks for exactly the URL (and so file) our table names."""
    _, origins = offline
    family = registry.FAMILIES[name]
    with pytest.raises(Exception, match='URL fetch failure'):
        family.backbone((32, 32, 3), 'imagenet')
    assert origins == [family.imagenet_weights_url]
    assert os.path.basename(origins[0]) == family.imagenet_weights_file


def test_from_scratch_family_has_no_imagenet_weights():
    with pytest.raises(weights.WeightsError, match='wide_resnet28_10 has no ImageNet weights'):
        weights.fetch_imagenet_weights('wide_resnet28_10')


def _zip_bomb(path, member: str, inflated_bytes: int) -> None:
    """A small .keras-named zip whose `member` inflates to `inflated_bytes` of zeros."""
    import zipfile
    chunk = bytes(2**20)
    with zipfile.ZipFile(path, 'w', compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr('metadata.json', '{"keras_version": "3.15.1"}')
        with archive.open(member, 'w', force_zip64=True) as f:
            for _ in range(inflated_bytes // len(chunk)):
                f.write(chunk)


@pytest.mark.parametrize('member', ['config.json', 'model.weights.h5'])
def test_a_keras_zip_bomb_is_refused_before_anything_is_inflated(tmp_path, member):
    import resource
    path = tmp_path / 'bomb.keras'
    _zip_bomb(path, member, 2**30)
    assert os.path.getsize(path) < 8 * 2**20  # a few MB on disk, 1 GiB inflated
    target = builder.build_model(ModelConfig('cifar_resnet9', 4, SIZE))
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    start = time.perf_counter()
    with pytest.raises(weights.WeightsError, match=rf'bomb\.keras: refused before inflating: its {member}') as e:
        weights.load_weights_file(target, str(path))
    assert '1,073,741,824' in str(e.value) and '\n' not in str(e.value)
    assert time.perf_counter() - start < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 64 * 1024


@pytest.mark.parametrize('content, what', [
    (b'just some text, not an archive', "a file of another kind (its first bytes: b'just som')"),
    (b'', 'an empty file (0 bytes)'),
    (b'\x89HDF\r\n\x1a\n' + bytes(64), 'an HDF5 file (rename it to .weights.h5'),
], ids=['text', 'empty', 'hdf5'])
def test_a_keras_file_that_is_not_a_zip_says_what_it_is(tmp_path, content, what):
    path = tmp_path / 'model.keras'
    path.write_bytes(content)
    target = builder.build_model(ModelConfig('cifar_resnet9', 4, SIZE))
    with pytest.raises(weights.WeightsError) as e:
        weights.load_weights_file(target, str(path))
    message = str(e.value)
    assert message.startswith(f'--weights={path}: it is {what}') and 'not found' not in message
    assert 'not a .keras file (a zip archive)' in message
