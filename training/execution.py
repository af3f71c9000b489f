"""`--steps_per_execution`: train steps per compiled call; `auto` picks it from a short measured warm-up.

Keras brings the logs to the host after every call (our callbacks read them), so a device that finishes a
step in well under a millisecond (cifar_resnet9 at batch 512 on an H200) idles while Python runs between
steps. k steps per call make that once per k steps. `auto` times a few steps of the real train step on
a dummy batch (the training state is put back afterwards) and takes the largest k that divides the epoch
and the backup period and keeps one call within `TARGET_SECONDS`; a step that already takes half of it
(a big model) keeps k = 1, where batching steps would buy nothing and only coarsen the callbacks.
"""

import math
import time

import keras
import numpy as np
from absl import logging

AUTO = 'auto'
# One call's device work. ~100 ms amortises a ~1 ms host round trip to ~1%, and keeps SIGTERM, NaN and
# backup reactions (which happen between calls) well under a second.
TARGET_SECONDS = 0.1
# The warm-up: an untimed call first (tracing, compilation), then timed ones until either bound (a big
# model's step passes the time bound at once: 2 steps in all, a few seconds of a long run).
_UNTIMED_STEPS = 1
_MAX_TIMED_STEPS = 10
_MAX_TIMED_SECONDS = 0.5


def parse_flag(value: str | int) -> str | int:
    """`--steps_per_execution` as given: 'auto', or a positive number of steps.

    Raises:
        ValueError: naming the flag, the value and what it accepts.
    """
    if isinstance(value, int):
        steps = value
    elif str(value).strip().lower() == AUTO:
        return AUTO
    else:
        try:
            steps = int(str(value).strip())
        except ValueError:
            steps = 0
    if steps <= 0:
        raise ValueError(f'--steps_per_execution={value!r} is not valid; use auto or a positive number '
                         'of steps')
    return steps


def period(steps_per_epoch: int, checkpoint_every_steps: int = 0, steps_done_in_epoch: int = 0) -> int:
    """Steps every execution count must divide: the epoch, the backup period when set, and the rest of an
    epoch a resumed run finishes first (its backup may come from a run that used another k)."""
    return math.gcd(steps_per_epoch, checkpoint_every_steps, steps_per_epoch - steps_done_in_epoch)


def choose(step_seconds: float, steps_per_epoch: int, checkpoint_every_steps: int = 0, *,
           steps_done_in_epoch: int = 0, target_seconds: float = TARGET_SECONDS) -> int:
    """The largest k dividing the epoch and the backup period with k steps within `target_seconds`.

    Args:
        step_seconds: one train step as measured with a host round trip after it.
        steps_per_epoch: steps of one epoch (whole executions: k must divide it).
        checkpoint_every_steps: `--checkpoint_every_steps`; 0 = epoch ends only.
        steps_done_in_epoch: steps of the current epoch a resumed run starts after.
        target_seconds: the wanted duration of one call.
    """
    whole = period(steps_per_epoch, checkpoint_every_steps, steps_done_in_epoch)
    most = max(1, int(target_seconds / max(step_seconds, 1e-9) + 1e-6))  # + 1e-6: 0.1 / 1e-5 is 9999.99...
    return max(k for k in range(1, min(whole, most) + 1) if whole % k == 0)


def dummy_batch(batch_size: int, image_size: int, *, device_cache: bool):
    """A training batch in the Trainer's format, all zeros: `((pixels or indices, labels), labels)`."""
    labels = np.zeros((batch_size,), np.int32)
    if device_cache:
        inputs = np.zeros((batch_size,), np.int32)
    else:
        inputs = np.zeros((batch_size, image_size, image_size, 3), np.uint8)
    return (inputs, labels), labels


def _state(model: keras.Model) -> list:
    """Every variable a train step writes: weights, BatchNorm statistics, RNG states, optimizer, metrics.

    Read-only inputs (a device cache's pixels, possibly gigabytes) are left out.
    """
    variables, seen = [], set()
    for v in [*model.variables, *model.optimizer.variables, *model.metrics_variables]:
        if id(v) in seen or (v.dtype == 'uint8' and not v.trainable):
            continue
        seen.add(id(v))
        variables.append(v)
    return variables


def measure_step_seconds(model: keras.Model, batch) -> float:
    """Seconds of one train step with a host round trip after it, from a few steps on `batch`.

    The model's whole training state is read before and written back after, so the warm-up leaves no
    trace: the run trains as if it had not happened (a resumed run stays bit-identical).
    """
    variables = _state(model)
    saved = [keras.ops.convert_to_numpy(v.value) for v in variables]
    x, y = batch
    try:
        for _ in range(_UNTIMED_STEPS):
            model.train_on_batch(x, y)  # returns host values: the device is done
        times = []
        start = time.perf_counter()
        while len(times) < _MAX_TIMED_STEPS and time.perf_counter() - start < _MAX_TIMED_SECONDS:
            begin = time.perf_counter()
            model.train_on_batch(x, y)
            times.append(time.perf_counter() - begin)
    finally:
        for variable, value in zip(variables, saved):
            variable.assign(value)
    return float(np.median(times))


def apply(model: keras.Model, steps_per_execution: int) -> None:
    """Makes a compiled model run `steps_per_execution` steps per call from its next `fit` on."""
    if model.steps_per_execution == steps_per_execution:
        return
    model.steps_per_execution = steps_per_execution
    model.make_train_function(force=True)
    model.make_test_function(force=True)


def resolve(model: keras.Model, setting: str | int, *, steps_per_epoch: int, checkpoint_every_steps: int,
            batch, steps_done_in_epoch: int = 0, multi_process: bool = False) -> int:
    """The run's steps per execution: `setting` itself, or for `auto` the measured choice (logged).

    Args:
        model: the compiled Trainer (compiled with 1 step per execution; the warm-up runs it).
        setting: `--steps_per_execution`, an int or 'auto'.
        steps_per_epoch: the run's epoch.
        checkpoint_every_steps: `--checkpoint_every_steps`.
        batch: a training batch for the warm-up (`dummy_batch`).
        steps_done_in_epoch: where a resumed run starts within its epoch.
        multi_process: several processes train together; each would time its own warm-up and could
            pick another k (their collectives would then no longer pair up), so `auto` is 1 there.
    """
    if setting != AUTO:
        return int(setting)
    if multi_process:
        logging.info('--steps_per_execution=auto: 1 (several processes would each measure their own)')
        return 1
    step_seconds = measure_step_seconds(model, batch)
    k = choose(step_seconds, steps_per_epoch, checkpoint_every_steps, steps_done_in_epoch=steps_done_in_epoch)
    print(f'--steps_per_execution=auto: {k} (a step takes {1000 * step_seconds:.1f} ms with a host round '
          f'trip; {k} steps are the most within {1000 * TARGET_SECONDS:.0f} ms that divide '
          f'{period(steps_per_epoch, checkpoint_every_steps, steps_done_in_epoch)})', flush=True)
    return k
