"""The resolved training configuration: one frozen dataclass per concern, composed into `TrainConfig`."""

import dataclasses
import json
from typing import Any

from fastclassify.models.config import ModelConfig
from fastclassify.models.precision import JIT_CHOICES, PRECISIONS
from fastclassify.pipelines.augment import AugmentConfig
from fastclassify.pipelines.data_service import DEFAULT_STALL_TIMEOUT_S, MODES as DATA_SERVICE_MODES
from fastclassify.pipelines.pipeline import PipelineConfig
from fastclassify.pipelines.sources import SourceConfig
from fastclassify.training import execution
from fastclassify.training.backend import BACKENDS
from fastclassify.training.optimizers import OptimizerConfig
from fastclassify.training.strategy import STRATEGIES

# The choices are defined where they are acted on; RunConfig checks a flag against them early.

MAX_SEED = 2**32 - 1


def _check_choice(flag: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f'--{flag}={value!r} is not valid; valid: {", ".join(choices)}')


def _check_positive(flag: str, value: int | float, *, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        bound = 'a non-negative' if allow_zero else 'a positive'
        raise ValueError(f'--{flag}={value} is not valid; it must be {bound} number')


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """How the run itself behaves: length, where it writes, determinism, precision, recovery.

    Attributes:
      model_dir: where config, checkpoints, backup, logs, plots and results go.
      epochs: training epochs.
      steps_per_epoch: optimizer steps per epoch; 0 means one pass over the training split.
      seed: the run's one seed: weights init here, and `TrainConfig` copies it into the pipeline's
        shuffles and the augmenter's draws.
      deterministic: bit-identical reruns on CPU (op determinism, ordered tf.data), slower; `TrainConfig`
        copies it into the pipeline config.
      synthetic_data: random tensors of the dataset's shape instead of the dataset.
      precision: Keras dtype policy; `auto` picks per accelerator.
      jit_compile: XLA for the train step; `auto` uses it on GPU/TPU.
      steps_per_execution: train steps per compiled call (fewer host round trips): a number, or `auto`
        (the largest that divides the epoch and the backup period within ~100 ms of device work, from a
        short measured warm-up; training/execution.py).
      label_smoothing: for the cross-entropy loss.
      freeze_backbone_epochs: epochs that train only the head before the backbone is unfrozen.
      checkpoint_every_steps: in-epoch backup period for resuming after a kill; 0 = epoch ends only.
      overwrite: allow a different config in an existing `model_dir` (the old run there is deleted).
      auto_batch_size: probe the largest batch that fits the accelerator.
      strategy: tf.distribute strategy (TensorFlow backend), or data_parallel (JAX backend).
      backend: the Keras backend the run uses (`--backend` / KERAS_BACKEND), recorded in config.json.
      data_service: `grpc://HOST:PORT` of a tf.data service dispatcher, or '' for local input.
      data_service_mode: `distributed_epoch` (each example once per epoch) or `parallel_epochs`.
      data_service_stall_timeout_s: fail (one line) when the service sends no batch this long,
        e.g. after a worker died (TF's client would wait on it forever).
      benchmark: measure the model-side ceiling and end-to-end throughput instead of training.
    """

    model_dir: str
    epochs: int = 10
    steps_per_epoch: int = 0
    seed: int = 0
    deterministic: bool = False
    synthetic_data: bool = False
    precision: str = 'auto'
    jit_compile: str = 'auto'
    steps_per_execution: int | str = execution.AUTO
    label_smoothing: float = 0.0
    freeze_backbone_epochs: int = 0
    checkpoint_every_steps: int = 0
    overwrite: bool = False
    auto_batch_size: bool = False
    strategy: str = 'auto'
    backend: str = 'tensorflow'
    data_service: str = ''
    data_service_mode: str = 'distributed_epoch'
    data_service_stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S
    benchmark: bool = False

    def __post_init__(self):
        if not self.model_dir:
            raise ValueError(f'--model_dir={self.model_dir!r} is not valid; name the folder this run writes to '
                             '(without the flag: runs/DATASET-MODEL)')
        # NumPy's seeding (keras.utils.set_random_seed) takes 0..2**32 - 1 and nothing else.
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f'--seed={self.seed} is not valid; it must be an integer in 0..{MAX_SEED}')
        _check_positive('epochs', self.epochs)
        _check_positive('steps_per_epoch', self.steps_per_epoch, allow_zero=True)
        # Frozen: the one normalisation ('8' -> 8) happens here, before anyone reads it.
        object.__setattr__(self, 'steps_per_execution', execution.parse_flag(self.steps_per_execution))
        _check_positive('freeze_backbone_epochs', self.freeze_backbone_epochs, allow_zero=True)
        _check_positive('checkpoint_every_steps', self.checkpoint_every_steps, allow_zero=True)
        # Keras runs whole executions: an epoch (or backup period) that is not a multiple would train
        # extra steps and break the step count a resume relies on (`auto` picks a k that divides both).
        fixed = self.steps_per_execution if self.steps_per_execution != execution.AUTO else 1
        for flag, steps in (('steps_per_epoch', self.steps_per_epoch),
                            ('checkpoint_every_steps', self.checkpoint_every_steps)):
            if steps % fixed:
                raise ValueError(f'--{flag}={steps} is not valid with --steps_per_execution='
                                 f'{self.steps_per_execution}; it must be a multiple of it')
        _check_choice('precision', self.precision, PRECISIONS)
        _check_choice('jit_compile', self.jit_compile, JIT_CHOICES)
        _check_choice('strategy', self.strategy, STRATEGIES)
        _check_choice('backend', self.backend, BACKENDS)
        _check_choice('data_service_mode', self.data_service_mode, DATA_SERVICE_MODES)
        _check_positive('data_service_stall_timeout_s', self.data_service_stall_timeout_s)
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f'--label_smoothing={self.label_smoothing} is not valid; it must be in [0, 1)')
        if self.freeze_backbone_epochs >= self.epochs and self.freeze_backbone_epochs:
            raise ValueError(
                f'--freeze_backbone_epochs={self.freeze_backbone_epochs} is not valid; it must be smaller '
                f'than --epochs={self.epochs} (the backbone would never be trained)')
        if self.data_service and not self.data_service.startswith('grpc://'):
            raise ValueError(f'--data_service={self.data_service!r} is not valid; use grpc://HOST:PORT')


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs, resolved from a dataset preset and flag overrides.

    `run.seed` and `run.deterministic` are the run's only copies that count: the pipeline and the
    augmenter keep their own fields (each is usable alone), and this config overwrites them from `run`.
    """

    source: SourceConfig
    pipeline: PipelineConfig
    augment: AugmentConfig
    model: ModelConfig
    optimizer: OptimizerConfig
    run: RunConfig

    def __post_init__(self):
        # Frozen: the derived copies are set through object.__setattr__, once, before anyone reads them.
        object.__setattr__(self, 'pipeline', dataclasses.replace(
            self.pipeline, seed=self.run.seed, deterministic=self.run.deterministic))
        object.__setattr__(self, 'augment', dataclasses.replace(self.augment, seed=self.run.seed))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)
