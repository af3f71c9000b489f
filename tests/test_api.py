"""The public API as a user calls it: `fastclassify.load`, `Augment`, `AugmentedModel`, `build_model`."""

import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests import folder_trees
from tests.conftest import ROOT


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp('api')
    folder = folder_trees.write_dir(folder_trees.separable_tree(3, 30, size=24), root / 'photos')
    return folder, str(root / 'tfds')


@pytest.fixture(scope='module')
def data(photos):
    import fastclassify
    folder, data_dir = photos
    return fastclassify.load(folder, image_size=24, batch_size=8, data_dir=data_dir, cache='device')


def _labels(dataset):
    return [int(y) for _, labels in dataset for y in labels.numpy()]


def test_importing_the_package_prints_nothing_and_loads_no_tensorflow():
    code = ('import sys, fastclassify; print(sorted(fastclassify.__all__)); '
            'print("tensorflow" in sys.modules, "keras" in sys.modules, "jax" in sys.modules)')
    result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stderr == ''
    assert result.stdout.splitlines()[1] == 'False False False'
    assert 'load' in result.stdout and 'AugmentedModel' in result.stdout


def test_load_gives_finite_datasets_that_reshuffle_every_epoch(data):
    assert (data.num_classes, data.class_names) == (3, ('class_0', 'class_1', 'class_2'))
    assert data.num_train + data.num_validation + data.num_test == 90
    assert data.cache == 'device' and data.device_cache.shape == (data.num_train, 24, 24, 3)
    assert data.steps_per_epoch == data.num_train // 8
    images, labels = next(iter(data.train))
    assert images.shape == (8, 24, 24, 3) and images.dtype.name == 'uint8' and labels.dtype.name == 'int32'
    first, second = ([b.numpy().tolist() for b, _ in data.train_indices] for _ in range(2))
    assert len(first) == len(second) == data.steps_per_epoch  # finite: one epoch per iteration
    for epoch in (first, second):
        flat = [i for batch in epoch for i in batch]
        assert len(set(flat)) == len(flat)  # each example at most once per epoch
    assert first != second  # a fresh permutation every epoch
    assert len(list(data.train)) == data.steps_per_epoch
    assert len(_labels(data.test)) == data.num_test and len(_labels(data.validation)) == data.num_validation
    assert next(iter(data.test))[0].shape[1:] == (24, 24, 3)  # evaluation at the model's size


def test_same_seed_same_epochs(photos):
    import fastclassify
    folder, data_dir = photos
    runs = [fastclassify.load(folder, image_size=24, batch_size=8, data_dir=data_dir, seed=3, cache='memory')
            for _ in range(2)]
    first, again = _labels(runs[0].train), _labels(runs[0].train)
    assert _labels(runs[1].train) == first and _labels(runs[1].train) == again and first != again


def test_one_hot_labels_and_a_larger_cache_size(photos):
    import fastclassify
    folder, data_dir = photos
    data = fastclassify.load(folder, image_size=16, cache_size=20, batch_size=8, data_dir=data_dir,
                             one_hot=True, validation_split=0)
    images, labels = next(iter(data.train))
    assert images.shape == (8, 20, 20, 3) and labels.shape == (8, 3)
    assert np.allclose(labels.numpy().sum(axis=1), 1)
    assert data.validation is None


@pytest.mark.parametrize('kwargs, named', [
    ({'image_size': 0}, 'image_size=0'),
    ({'batch_size': 1000}, 'batch_size=1000'),
    ({'batch_size': -1}, 'batch_size=-1'),
    ({'cache': 'gpu'}, "cache='gpu'"),
    ({'seed': -1}, 'seed=-1'),
    ({'validation_split': 1.0}, 'validation_split=1.0'),
    ({'cache_size': 8}, 'cache_size=8'),
])
def test_errors_name_the_argument(photos, kwargs, named):
    import fastclassify
    folder, data_dir = photos
    args = {'image_size': 24, 'batch_size': 8, 'data_dir': data_dir, **kwargs}
    with pytest.raises(ValueError) as e:
        fastclassify.load(folder, **args)
    assert named in str(e.value) and '--' not in str(e.value)


def test_unknown_sources_name_source(tmp_path):
    import fastclassify
    with pytest.raises(FileNotFoundError, match='source='):
        fastclassify.load(str(tmp_path / 'nope'), image_size=24, batch_size=8)
    with pytest.raises(ValueError, match=r"source='cifar1000' is not a known dataset.*cifar100"):
        fastclassify.load('cifar1000', image_size=24, batch_size=8, data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="name='resnet_9000'"):
        fastclassify.build_model('resnet_9000', num_classes=3, image_size=32)


@pytest.mark.backends
def test_augment_layer_in_a_sequential_model_is_inactive_at_inference():
    import keras
    import fastclassify
    model = keras.Sequential([keras.Input((24, 24, 3)), fastclassify.Augment('flip_crop', seed=1),
                              keras.layers.Identity()])
    images = np.random.default_rng(0).integers(0, 256, (4, 24, 24, 3)).astype('uint8')
    assert np.array_equal(keras.ops.convert_to_numpy(model(images, training=False)), images)
    trained = keras.ops.convert_to_numpy(model(images, training=True))
    assert trained.shape == images.shape and not np.array_equal(trained, images)
    crop = keras.Sequential([keras.Input((28, 28, 3)), fastclassify.Augment('rrc', image_size=24)])
    assert tuple(crop(np.zeros((2, 28, 28, 3), 'uint8'), training=True).shape) == (2, 24, 24, 3)
    assert tuple(crop(np.zeros((2, 28, 28, 3), 'uint8')).shape) == (2, 24, 24, 3)


def test_augment_refuses_label_mixing_and_unknown_policies():
    import fastclassify
    with pytest.raises(ValueError, match=r"policy='rrc\+mixup'.*AugmentedModel"):
        fastclassify.Augment('rrc+mixup')
    with pytest.raises(ValueError, match=r"policy='flip'.*flip_crop"):
        fastclassify.Augment('flip')


def test_augment_layer_saves_and_loads_with_the_model(tmp_path):
    import keras
    import fastclassify
    inputs = keras.Input((24, 24, 3))
    x = fastclassify.Augment('rrc+erasing', image_size=16, seed=5)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, activation='softmax')(keras.layers.Flatten()(x)))
    model.save(tmp_path / 'm.keras')
    loaded = keras.models.load_model(tmp_path / 'm.keras')
    layer = loaded.layers[1]
    assert (layer.policy, layer.image_size, layer.seed) == ('rrc+erasing', 16, 5)
    images = np.random.default_rng(1).integers(0, 256, (2, 24, 24, 3)).astype('uint8')
    assert np.allclose(keras.ops.convert_to_numpy(loaded(images)), keras.ops.convert_to_numpy(model(images)))


@pytest.mark.backends
def test_augmented_model_trains_a_users_model_from_the_device_cache(data):
    import keras
    import fastclassify
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((24, 24, 3)), fastclassify.Augment('flip_crop'),
                              keras.layers.Rescaling(1 / 255), keras.layers.Conv2D(8, 3, activation='relu'),
                              keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(data.num_classes, activation='softmax')])
    trainer = fastclassify.AugmentedModel(model, augment='mixup', data=data)
    assert trainer.device_cache is not None
    trainer.compile(optimizer=keras.optimizers.Adam(0.03), metrics=['accuracy'])
    history = trainer.fit(data, epochs=6, verbose=0)
    assert len(history.history['loss']) == 6 and 'val_accuracy' in history.history
    assert history.history['loss'][-1] < history.history['loss'][0]
    model.compile(loss='sparse_categorical_crossentropy', metrics=['accuracy'])
    loss, accuracy = model.evaluate(data.test, verbose=0)
    assert accuracy > 0.5  # three separable colours; chance is 1/3
    assert trainer.evaluate(data, verbose=0)[0] == pytest.approx(loss, rel=1e-4)


def test_user_project_with_its_own_models_and_training_beside_the_package(tmp_path):
    # A user's models.py, training/ and tests/ must not collide with the library's folders.
    (tmp_path / 'models.py').write_text('def build_model():\n    return "mine"\n')
    (tmp_path / 'training').mkdir()
    (tmp_path / 'training' / '__init__.py').write_text('NAME = "my training"\n')
    (tmp_path / 'tests').mkdir()
    (tmp_path / 'tests' / '__init__.py').write_text('')
    code = ('import models, training, fastclassify\n'
            'from fastclassify.models import build_model\n'
            'import fastclassify.training.loop\n'
            'print(models.build_model(), training.NAME, callable(build_model), fastclassify.build_model.__module__)\n')
    result = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, 'PYTHONPATH': _package_path()}, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ['mine', 'my', 'training', 'True', 'fastclassify.run']


def _package_path() -> str:
    """Where `import fastclassify` finds the package from outside the checkout: the editable install of the
    README's set-up (nothing to add), else the checkout's root (the user's own folders still come first)."""
    import importlib.metadata
    try:
        importlib.metadata.distribution('fastclassify')
        return ''
    except importlib.metadata.PackageNotFoundError:
        return ROOT


@pytest.mark.slow
def test_installed_wheel_trains_a_users_script_outside_the_repository(tmp_path):
    """`pip install .` then a 15-line script, outside the checkout, beside its own models.py."""
    wheel_dir, target, source = tmp_path / 'wheel', tmp_path / 'site', tmp_path / 'source'
    # Built from a copy: setuptools writes build/ and *.egg-info beside the sources it builds.
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns('.venv', '.git', 'build', '*.egg-info', '__pycache__',
                                                                'runs', 'data', '.gpu', '.pytest_cache'))
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '--no-build-isolation',
                    '-w', str(wheel_dir), str(source)], check=True, capture_output=True, timeout=300)
    wheel = next(wheel_dir.glob('fastclassify-*.whl'))
    subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--target', str(target),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    installed = sorted(p.name for p in target.iterdir() if not p.name.endswith('.dist-info'))
    assert installed == ['fastclassify']  # one import name; no models/, training/, tests/ at top level
    assert (target / 'fastclassify' / 'pipelines' / 'caltech256' / 'checksums.tsv').is_file()
    project = tmp_path / 'project'
    folder_trees.write_dir(folder_trees.separable_tree(3, 24, size=24), project / 'photos')
    (project / 'models.py').write_text('def build_model():\n    return "mine"\n')
    example = pathlib.Path(ROOT, 'examples', 'own_model_on_a_folder.py').read_text()
    (project / 'train_mine.py').write_text(example)
    result = subprocess.run([sys.executable, 'train_mine.py', 'photos', '--epochs=2', '--image_size=24',
                             f'--data_dir={tmp_path / "tfds"}'],
                            cwd=project, capture_output=True, text=True, timeout=600,
                            env={**os.environ, 'PYTHONPATH': str(target), 'PYTHONNOUSERSITE': '1'})
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'test accuracy' in result.stdout
    assert str(target) in result.stdout  # the installed package ran, not the checkout


def test_train_errors_name_the_choice(photos):
    import fastclassify
    folder, data_dir = photos
    with pytest.raises(ValueError, match=r'^epochs=0') as e:
        fastclassify.train(folder, epochs=0, data_dir=data_dir)
    assert '--' not in str(e.value)
    with pytest.raises(ValueError, match='epoch: not a choice of train'):
        fastclassify.train(folder, epoch=3)


@pytest.mark.slow
def test_train_runs_a_whole_run_from_python(photos, tmp_path):
    import fastclassify
    folder, data_dir = photos
    results = fastclassify.train(folder, model='cifar_resnet9', image_size=24, batch_size=8, epochs=1,
                                 steps_per_epoch=3, precision='float32', data_dir=data_dir,
                                 model_dir=str(tmp_path / 'run'))
    assert results['model_dir'] == str(tmp_path / 'run') and results['num_examples'] == 18
    assert (tmp_path / 'run' / 'results.json').is_file() and (tmp_path / 'run' / 'model.keras').is_file()
