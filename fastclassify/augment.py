"""Augmentation for any Keras model, on the accelerator inside the compiled step.

`Augment` is an images-only layer for `keras.Sequential` and functional models (inactive at inference);
`AugmentedModel` wraps a model to add what needs the labels or the device cache (MixUp, CutMix, batches
gathered from a uint8 cache resident on the accelerator), trained with the usual `compile` / `fit`.
"""

from __future__ import annotations

from fastclassify import _errors
from fastclassify import _quiet

_quiet.import_tensorflow()

import keras  # noqa: E402  pylint: disable=wrong-import-position

from fastclassify.pipelines.augment.config import AugmentConfig, POLICIES  # noqa: E402
from fastclassify.pipelines.augment.layer import Augmenter  # noqa: E402
from fastclassify.training.trainer import Trainer  # noqa: E402

_LABEL_POLICIES = ('mixup', 'cutmix')
# Keras' sparse names, for labels that `AugmentedModel` turns into one-hot (and mixed) targets.
_ONE_HOT_NAMES = {'sparse_categorical_crossentropy': 'categorical_crossentropy',
                  'sparse_categorical_accuracy': 'categorical_accuracy',
                  'sparse_top_k_categorical_accuracy': 'top_k_categorical_accuracy'}


def _config(policy: str, *, image_size: int, num_classes: int, seed: int, argument: str, **params) -> AugmentConfig:
    with _errors.as_arguments(renamed={'augment': argument}):
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
            raise ValueError(f'seed={seed!r} must be an integer in [0, 2**32)')
        if not isinstance(policy, str):
            raise ValueError(f'{argument}={policy!r} must be a policy name; valid, joined with "+": '
                             f'{", ".join(POLICIES)}')
        return AugmentConfig(policy=policy, image_size=image_size, num_classes=num_classes, seed=seed, **params)


@keras.saving.register_keras_serializable(package='fastclassify')
class Augment(keras.layers.Layer):
    """Augments a batch of images on the accelerator while training; the evaluation view otherwise.

    Put it first in a model (`keras.Sequential([keras.Input((S, S, 3)), fastclassify.Augment('rrc'), ...])`).
    Training (`fit`): the policy, a whole batch at a time, inside the compiled step. Inference
    (`evaluate`, `predict`, `training=False`): a centre crop to `image_size` (nothing when the input is
    already that size). Output: floats 0..255 in the layer's compute dtype, `[B, image_size, image_size, 3]`;
    input: uint8 or float pixels 0..255. Seeded: the same seed and batch give the same result on the
    TensorFlow and the JAX backend; the generator's state is a variable, saved with the model.

    Args:
        policy: names from `fastclassify.POLICIES` joined with '+', without the label-mixing ones:
            'flip_crop', 'rrc' (random-resized crop + flip), 'seed' (the Caltech report's affine jitter),
            'randaugment', 'erasing', e.g. 'rrc+randaugment+erasing'; 'none' passes images through.
            MixUp and CutMix mix labels too: use `AugmentedModel(model, augment='mixup')`.
        image_size: side of the output; default: the input's (then crops are taken at the input size).
        seed: the augmentation seed.
        randaugment_layers / randaugment_magnitude: RandAugment N ops per image, magnitude M in [0, 10].
        erasing_probability: chance that an image gets one erased box.
        **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`).
    """

    def __init__(self, policy: str, *, image_size: int | None = None, seed: int = 0, randaugment_layers: int = 2,
                 randaugment_magnitude: float = 9.0, erasing_probability: float = 0.25, **kwargs):
        super().__init__(**kwargs)
        if image_size is not None:
            _errors.positive_int('image_size', image_size, minimum=8, maximum=2048)
        self.policy, self.image_size, self.seed = policy, image_size, seed
        self.params = {'randaugment_layers': randaugment_layers, 'randaugment_magnitude': randaugment_magnitude,
                       'erasing_probability': erasing_probability}
        # Checked now, so a bad policy fails where it is written, not at the model's first call.
        cfg = _config(policy, image_size=image_size or 224, num_classes=1, seed=seed, argument='policy',
                      **self.params)
        mixing = [p for p in cfg.parts if p in _LABEL_POLICIES]
        if mixing:
            raise ValueError(f'policy={policy!r}: {" and ".join(mixing)} mix labels too, which an images-only '
                             f'layer never sees; use fastclassify.AugmentedModel(model, augment='
                             f'{"+".join(mixing)!r}) for them')
        self._augmenter = None
        self._convert_input_args = False  # uint8 pixels stay uint8 until the policy's own gathers

    def build(self, input_shape):
        side = input_shape[1]
        if side is None or input_shape[2] != side:
            raise ValueError(f'Augment({self.policy!r}) needs square inputs of a static size; got {input_shape}')
        size = self.image_size or side
        if size > side:
            raise ValueError(f'image_size={size} is larger than the {side}px input; it crops, never enlarges')
        self._augmenter = Augmenter(_config(self.policy, image_size=size, num_classes=1, seed=self.seed,
                                            argument='policy', **self.params), name='augmenter')
        self.built = True

    def call(self, images, training=None):
        batch = keras.ops.shape(images)[0]
        out, _ = self._augmenter(images, keras.ops.zeros((batch, 1)), training=bool(training))
        return out

    def compute_output_shape(self, input_shape):
        size = self.image_size or input_shape[1]
        return (input_shape[0], size, size, input_shape[3])

    def get_config(self):
        return {**super().get_config(), 'policy': self.policy, 'image_size': self.image_size, 'seed': self.seed,
                **self.params}


class AugmentedModel(Trainer):
    """Trains `model` with augmentation inside the compiled step, from a device cache when `data` has one.

    The wrapper gathers each batch from the accelerator-resident uint8 cache (`load(..., cache='device')`),
    applies the policy to images and one-hot labels together (MixUp and CutMix mix both), and trains
    `model` on the result; evaluation and prediction run `model` on the centre view. `model` itself stays a
    plain Keras model: save it, evaluate it, export it as usual.

        data = fastclassify.load('photos/', image_size=64, batch_size=32, cache='device')
        trainer = fastclassify.AugmentedModel(model, augment='flip_crop+mixup', data=data)
        trainer.compile(optimizer='adam', metrics=['accuracy'])
        trainer.fit(data, epochs=5)          # train (device cache), validation_data=data.validation
        model.evaluate(data.test)            # the user's own model, compiled by the user

    Targets inside the step are one-hot (and mixed): the loss defaults to categorical cross-entropy, and
    Keras' sparse loss / metric names are taken as their one-hot twins.

    Args:
        model: a Keras model: images `[B, S, S, 3]` (floats 0..255) in, `num_classes` probabilities out.
        augment: policy names joined with '+' (`fastclassify.POLICIES`), e.g. 'rrc+mixup'; 'none' = only
            the gather.
        data: a `Data` from `fastclassify.load`; with cache='device' its training images go to the device.
        device_cache: a uint8 `[N, S, S, 3]` array to gather training batches from, instead of `data`'s.
        seed: the augmentation seed.
        mixup_alpha / cutmix_alpha / randaugment_layers / randaugment_magnitude / erasing_probability:
            the policies' parameters (see `Augment`).
        **kwargs: `keras.Model` arguments (`name`).
    """

    def __init__(self, model: keras.Model, augment: str = 'none', *, data=None, device_cache=None, seed: int = 0,
                 mixup_alpha: float = 0.2, cutmix_alpha: float = 1.0, randaugment_layers: int = 2,
                 randaugment_magnitude: float = 9.0, erasing_probability: float = 0.25, **kwargs):
        if not isinstance(model, keras.Model):
            raise ValueError(f'model={model!r} must be a keras.Model')
        shape = tuple(model.input_shape) if not isinstance(model.input_shape, list) else None
        if shape is None or len(shape) != 4 or shape[1] is None or shape[1] != shape[2]:
            raise ValueError(f'model takes inputs of shape {model.input_shape}; AugmentedModel needs one input '
                             'of square images [B, S, S, 3] with a static S')
        num_classes = model.output_shape[-1]
        if num_classes is None or num_classes < 2:
            raise ValueError(f'model outputs shape {model.output_shape}; AugmentedModel needs class '
                             'probabilities [B, num_classes]')
        if data is not None and data.num_classes != num_classes:
            raise ValueError(f'model has {num_classes} outputs but data has {data.num_classes} classes')
        if device_cache is None and data is not None:
            device_cache = data.device_cache
        cfg = _config(augment, image_size=int(shape[1]), num_classes=int(num_classes), seed=seed,
                      argument='augment', mixup_alpha=mixup_alpha, cutmix_alpha=cutmix_alpha,
                      randaugment_layers=randaugment_layers, randaugment_magnitude=randaugment_magnitude,
                      erasing_probability=erasing_probability)
        super().__init__(model, Augmenter(cfg, name='augmenter'), int(num_classes), device_cache=device_cache,
                         **kwargs)
        self.data = data
        self.build()

    def compile(self, optimizer='adam', loss=None, metrics=None, **kwargs):
        """`keras.Model.compile`; `loss` defaults to categorical cross-entropy on the one-hot targets."""
        loss = keras.losses.CategoricalCrossentropy() if loss is None else _ONE_HOT_NAMES.get(loss, loss)
        metrics = [_ONE_HOT_NAMES.get(m, m) if isinstance(m, str) else m for m in (metrics or [])]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def fit(self, x=None, y=None, *, validation_data=None, **kwargs):
        """`keras.Model.fit`; `x` is a `Data` (its training epoch; its validation split unless
        `validation_data` is given) or a dataset of `(images or indices, int labels)` batches."""
        from fastclassify.data import Data  # pylint: disable=import-outside-toplevel
        if isinstance(x, Data):
            if validation_data is None:
                validation_data = x.validation
            x = x.train_indices if self.device_cache is not None and x.train_indices is not None else x.train
        if y is not None:
            raise ValueError('y: AugmentedModel.fit takes (inputs, labels) batches as x (a Data or a dataset)')
        kwargs.setdefault('shuffle', False)  # the batches are shuffled already (Keras would warn)
        return super().fit(_training_batches(x), validation_data=validation_data, **kwargs)

    def evaluate(self, x=None, y=None, **kwargs):
        """`keras.Model.evaluate`; `x` may be a `Data` (its test split)."""
        from fastclassify.data import Data  # pylint: disable=import-outside-toplevel
        return super().evaluate(x.test if isinstance(x, Data) else x, y, **kwargs)


def _training_batches(dataset):
    """`(inputs, labels)` batches in the Trainer's training form, `((inputs, labels), labels)`."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    if not isinstance(dataset, tf.data.Dataset) or not isinstance(dataset.element_spec, tuple) \
            or len(dataset.element_spec) != 2:
        raise ValueError('x must be a fastclassify Data or a tf.data.Dataset of (images or indices, labels) '
                         f'batches; got {type(dataset).__name__}')
    if len(dataset.element_spec[1].shape) == 2:  # one-hot labels (load(..., one_hot=True)) back to ids
        dataset = dataset.map(lambda x, y: (x, tf.argmax(y, axis=-1, output_type=tf.int32)))
    return dataset.map(lambda x, y: ((x, y), y))
