"""Optimizers by name with warmup + cosine decay, batch-size learning-rate scaling, weight decay and EMA.

Label smoothing belongs to the loss (the train step), not here.

EMA: with `ema_decay > 0` the optimizer keeps Keras' built-in moving average of the trainable weights
(`use_ema`). Evaluate with it by adding `ema_callbacks(cfg)` to `fit` (it swaps the averages in for every
validation pass and back afterwards); at the end of `fit` Keras itself writes the averages into the model
(`optimizer.finalize_variable_values`), so the final `evaluate` and the saved model use EMA weights.
"""

import dataclasses

import keras

from fastclassify.training.choices import OPTIMIZERS, SCHEDULES  # noqa: F401  (checked before Keras loads)

# Names Keras gives to biases and normalisation offsets/scales: decaying them only hurts (they do not
# grow with the fan-in), the usual practice since Goyal et al. 2017 / timm.
_NO_DECAY_NAMES = ('bias', 'gamma', 'beta')


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """Optimizer flags; validated here so a bad flag fails before any model is built.

    Attributes:
        name: `--optimizer`: 'nadam', 'rmsprop' (the seed reports'), 'adamw' or 'sgd' (Nesterov).
        learning_rate: `--learning_rate`, the peak rate at `base_batch_size` images per step.
        base_batch_size: 0 = use `learning_rate` as is; else scale it by global_batch / base_batch_size
            (the linear scaling rule, Goyal et al. 2017).
        weight_decay: decoupled weight decay (`--weight_decay`); Keras multiplies it by the learning rate.
        warmup_epochs: linear warmup from 0 to the peak rate, in epochs (fractions allowed).
        schedule: 'cosine' (decay to 0 over the remaining steps) or 'constant'.
        ema_decay: 0 = off; else the momentum of an exponential moving average of the weights.
        momentum: momentum of 'sgd' (Nesterov) and 'rmsprop'.
        clipnorm: 0 = off; else clip each gradient to this L2 norm.
    """

    name: str = 'adamw'
    learning_rate: float = 1e-3
    base_batch_size: int = 0
    weight_decay: float = 0.0
    warmup_epochs: float = 0.0
    schedule: str = 'cosine'
    ema_decay: float = 0.0
    momentum: float = 0.9
    clipnorm: float = 0.0

    def __post_init__(self):
        if self.name not in OPTIMIZERS:
            raise ValueError(f'--optimizer={self.name!r} is not a known optimizer; valid: {", ".join(OPTIMIZERS)}')
        if self.schedule not in SCHEDULES:
            raise ValueError(f'--schedule={self.schedule!r} is not a known schedule; valid: {", ".join(SCHEDULES)}')
        if not self.learning_rate > 0:
            raise ValueError(f'--learning_rate={self.learning_rate!r} must be > 0')
        if self.base_batch_size < 0:
            raise ValueError(f'--base_batch_size={self.base_batch_size!r} must be >= 0 (0 = no scaling)')
        if self.weight_decay < 0:
            raise ValueError(f'--weight_decay={self.weight_decay!r} must be >= 0')
        if self.warmup_epochs < 0:
            raise ValueError(f'--warmup_epochs={self.warmup_epochs!r} must be >= 0')
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f'--ema_decay={self.ema_decay!r} must be in [0, 1) (0 = off; typical 0.999)')
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f'--momentum={self.momentum!r} must be in [0, 1)')
        if self.clipnorm < 0:
            raise ValueError(f'--clipnorm={self.clipnorm!r} must be >= 0 (0 = off)')


def peak_learning_rate(cfg: OptimizerConfig, global_batch_size: int) -> float:
    """`cfg.learning_rate`, scaled linearly by global_batch_size / base_batch_size when that is set."""
    if cfg.base_batch_size == 0:
        return cfg.learning_rate
    return cfg.learning_rate * global_batch_size / cfg.base_batch_size


def learning_rate_schedule(cfg: OptimizerConfig, *, steps_per_epoch: int, epochs: int,
                           global_batch_size: int) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The learning rate per optimizer step: linear warmup, then cosine decay to 0 (or constant).

    Returns a plain float when the rate never changes (no warmup, constant schedule).

    Raises:
        ValueError: non-positive steps/epochs, or a warmup as long as the whole run.
    """
    if steps_per_epoch < 1 or epochs < 1:
        raise ValueError(f'steps_per_epoch={steps_per_epoch} and epochs={epochs} must both be >= 1')
    peak = peak_learning_rate(cfg, global_batch_size)
    total_steps = steps_per_epoch * epochs
    warmup_steps = round(cfg.warmup_epochs * steps_per_epoch)
    if warmup_steps >= total_steps:
        raise ValueError(f'--warmup_epochs={cfg.warmup_epochs} covers the whole run of {epochs} epochs; '
                         f'make it shorter than --epochs')
    if cfg.schedule == 'constant' and warmup_steps == 0:
        return peak
    return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if warmup_steps else peak,
            decay_steps=total_steps - warmup_steps,
            alpha=1.0 if cfg.schedule == 'constant' else 0.0,  # alpha=1: the "decay" stays at the peak
            warmup_target=peak if warmup_steps else None,
            warmup_steps=warmup_steps)


def build_optimizer(cfg: OptimizerConfig, *, steps_per_epoch: int, epochs: int, global_batch_size: int,
                    model: keras.Model | None = None) -> keras.optimizers.Optimizer:
    """Builds the optimizer named by `cfg` with its schedule, weight decay, clipping and EMA.

    Args:
        cfg: optimizer flags.
        steps_per_epoch: optimizer steps per epoch (for the schedule).
        epochs: epochs of this training phase.
        global_batch_size: images per optimizer step over all replicas (for learning-rate scaling).
        model: when given, its 1-D trainable variables (biases, norm scales, layer scales) are excluded from
            weight decay by identity, on top of the name-based exclusion of bias/gamma/beta.

    Returns:
        An unbuilt Keras optimizer. Under mixed_float16, `Model.compile` wraps it for loss scaling.
    """
    lr = learning_rate_schedule(cfg, steps_per_epoch=steps_per_epoch, epochs=epochs,
                                global_batch_size=global_batch_size)
    common = dict(
            learning_rate=lr,
            weight_decay=cfg.weight_decay or None,
            clipnorm=cfg.clipnorm or None,
            use_ema=cfg.ema_decay > 0,
            ema_momentum=cfg.ema_decay or 0.99,
            name=cfg.name)
    if cfg.name == 'adamw':
        # AdamW insists on a number; 0.0 decays nothing.
        optimizer = keras.optimizers.AdamW(**{**common, 'weight_decay': cfg.weight_decay})
    elif cfg.name == 'nadam':
        optimizer = keras.optimizers.Nadam(**common)
    elif cfg.name == 'rmsprop':
        optimizer = keras.optimizers.RMSprop(momentum=cfg.momentum, **common)
    else:
        optimizer = keras.optimizers.SGD(momentum=cfg.momentum, nesterov=True, **common)
    if cfg.weight_decay:
        no_decay = [v for v in model.trainable_variables if len(v.shape) <= 1] if model is not None else None
        optimizer.exclude_from_weight_decay(var_list=no_decay, var_names=list(_NO_DECAY_NAMES))
    return optimizer


def ema_callbacks(cfg: OptimizerConfig) -> list[keras.callbacks.Callback]:
    """Callbacks that make validation during `fit` use the EMA weights; empty when EMA is off.

    `swap_on_epoch` stays False: with it, checkpoints written at epoch end would hold the averages as the
    model weights and a resumed run would continue training from them.
    """
    return [keras.callbacks.SwapEMAWeights(swap_on_epoch=False)] if cfg.ema_decay > 0 else []
