"""Where a run's epoch time goes: train steps (and, inside them, input wait), validation, callbacks.

Every run prints one line from this at its end and writes it to results.json; `train.py --benchmark`
reports the same split per step.
"""

import collections
import dataclasses
import threading
import time

import keras
import numpy as np
import tensorflow as tf


@dataclasses.dataclass
class TimeSplit:
    """Wall-clock seconds of finished epochs, split into disjoint parts (plus `input_wait`, a subpart).

    Attributes:
      epochs: finished epochs counted.
      steps: train steps counted (the first of each `fit` call is in `first_step_seconds` instead).
      epoch_seconds: first `on_epoch_begin` to the last callback's `on_epoch_end`, summed.
      first_step_seconds: the first step of each `fit` call: tracing, compilation, the iterator's
        start; kept apart so that it neither inflates the step time nor passes for input wait.
      step_seconds: the other train steps, batch begin to batch end, input wait included, the
        callbacks' own batch hooks excluded.
      input_wait_seconds: the part of `step_seconds` the step sat waiting for its batch (None when the
        input could not be probed, e.g. an already distributed dataset).
      validation_seconds: `fit`'s validation pass at epoch ends (its callback hooks included).
      callback_seconds: our callbacks' hooks outside validation: checkpoints, backups, history and
        plots, TensorBoard, the per-step loss checks.
    """

    epochs: int = 0
    steps: int = 0
    epoch_seconds: float = 0.0
    first_step_seconds: float = 0.0
    step_seconds: float = 0.0
    input_wait_seconds: float | None = 0.0
    validation_seconds: float = 0.0
    callback_seconds: float = 0.0

    @property
    def other_seconds(self) -> float:
        """What is left: Keras' own per-step bookkeeping, its progress bar, starting the iterator."""
        return max(0.0, self.epoch_seconds - self.first_step_seconds - self.step_seconds
                   - self.validation_seconds - self.callback_seconds)

    def __add__(self, other: 'TimeSplit') -> 'TimeSplit':
        waits = (None if self.input_wait_seconds is None or other.input_wait_seconds is None
                 else self.input_wait_seconds + other.input_wait_seconds)
        return TimeSplit(
            epochs=self.epochs + other.epochs, steps=self.steps + other.steps,
            epoch_seconds=self.epoch_seconds + other.epoch_seconds,
            first_step_seconds=self.first_step_seconds + other.first_step_seconds,
            step_seconds=self.step_seconds + other.step_seconds, input_wait_seconds=waits,
            validation_seconds=self.validation_seconds + other.validation_seconds,
            callback_seconds=self.callback_seconds + other.callback_seconds)

    def _share(self, seconds: float | None) -> float | None:
        if seconds is None:
            return None
        return seconds / self.epoch_seconds if self.epoch_seconds > 0 else 0.0

    def _per_step(self, seconds: float | None) -> float | None:
        if seconds is None:
            return None
        return seconds / self.steps if self.steps else 0.0

    def as_dict(self) -> dict:
        """Seconds, shares of the epoch time, and per-train-step seconds of every part."""
        parts = {'first_step': self.first_step_seconds, 'train_steps': self.step_seconds, 'input_wait': self.input_wait_seconds,
                 'validation': self.validation_seconds, 'callbacks': self.callback_seconds,
                 'other': self.other_seconds}
        return {
            'epochs': self.epochs, 'steps': self.steps, 'epoch_seconds': self.epoch_seconds,
            'seconds': parts,
            'share': {k: self._share(v) for k, v in parts.items()},
            # Validation and callbacks happen per epoch; spread over the steps they say what one
            # step of a real epoch costs (the disjoint parts add up to epoch time / steps).
            'per_step_seconds': {**{k: self._per_step(v) for k, v in parts.items()},
                                 'compute': self._per_step(self.step_seconds
                                                           - (self.input_wait_seconds or 0.0)),
                                 'total': self._per_step(self.epoch_seconds)},
            'line': self.line(),
        }

    def line(self) -> str:
        """E.g. `epoch time 42 s over 2 epochs: 95% train steps (410 ms/step), 3% validation, ...`."""
        if not self.epochs:
            return 'epoch time: no finished epoch'
        pct = lambda seconds: f'{100 * self._share(seconds):.0f}%'  # noqa: E731
        text = (f'epoch time {self.epoch_seconds:.0f} s over {self.epochs} epoch'
                f'{"s" if self.epochs != 1 else ""}: {pct(self.step_seconds)} train steps '
                f'({1000 * self._per_step(self.step_seconds):.0f} ms/step), '
                f'{pct(self.validation_seconds)} validation, '
                f'{pct(self.callback_seconds)} checkpoints and plots')
        if self._share(self.first_step_seconds) >= 0.005:
            text += f', {pct(self.first_step_seconds)} first steps (tracing, compilation)'
        if self._share(self.other_seconds) >= 0.005:
            text += f', {pct(self.other_seconds)} other'
        if self.input_wait_seconds is None:
            return text + '; input wait not measured'
        return text + f'; input wait {100 * self._share(self.input_wait_seconds):.1f}%'


class InputProbe:
    """Records when each training batch leaves the host pipeline, to measure how long steps wait.

    `wrap(dataset)` appends one sequential map whose only effect is a `time.perf_counter()` stamp per
    batch (a `tf.py_function`, ~0.1 ms of host time per batch). The stamp is taken where the batch is
    handed on: to the step itself, or to the buffer Keras / tf.distribute put in front of the device
    (a copy away). A step that started at `t` and whose batch was stamped at `r` waited `max(0, r - t)`:
    a batch that was ready early (the normal case) costs nothing, one that came late is counted in full.
    Batches are stamped and consumed in the same order (every stage after the probe keeps order).
    """

    def __init__(self):
        self._ready = collections.deque()
        self._lock = threading.Lock()
        self.enabled = False

    def wrap(self, dataset):
        """Returns `dataset` with the stamp appended; anything but a tf.data.Dataset goes unprobed."""
        if not isinstance(dataset, tf.data.Dataset):
            return dataset
        self.enabled = True

        def stamp():
            with self._lock:
                self._ready.append(time.perf_counter())
            return 0

        def probe(*batch):
            done = tf.py_function(stamp, [], tf.int32)
            with tf.control_dependencies([done]):
                batch = tf.nest.map_structure(tf.identity, batch)
            return batch if len(batch) > 1 else batch[0]

        # Sequential (a py_function is stateful, so tf.data never parallelizes it): stamps keep order.
        # No `deterministic=`: without num_parallel_calls it does nothing, and TensorFlow warns on every run.
        return dataset.map(probe)

    def reset(self, since: float) -> None:
        """Forgets stamps taken before `since` (batches a previous iterator made and never used)."""
        with self._lock:
            while self._ready and self._ready[0] < since:
                self._ready.popleft()

    def wait(self, started: float, batches: int, ended: float | None = None) -> float:
        """Seconds the step (or execution of `batches` steps) that ran from `started` to `ended` waited.

        With several batches per execution (`--steps_per_execution`) the later batches are requested
        inside the compiled loop, where no clock runs: step i is taken to need its batch once the steps
        before it are done, each lasting the execution's time not spent waiting over `batches`, and it
        waited for as long as its batch's stamp was later than that.
        """
        with self._lock:
            ready = [self._ready.popleft() for _ in range(min(batches, len(self._ready)))]
        if not ready:
            return 0.0
        if ended is None or len(ready) == 1:
            return max(0.0, ready[0] - started)
        # Step i starts at i * step + max(started, max over j <= i of (stamp_j - j * step)), so the waits add
        # up to max(0, max_j(stamp_j - j * step) - started). The step time excludes the waits, which depend
        # on it: a few fixed-point rounds (each moves it less).
        stamps, index, waited = np.asarray(ready), np.arange(len(ready)), 0.0
        for _ in range(20):
            step = max(0.0, ended - started - waited) / batches
            previous, waited = waited, max(0.0, float(np.max(stamps - index * step)) - started)
            if abs(waited - previous) < 1e-6:
                break
        return min(waited, ended - started)


class TimedCallbacks(keras.callbacks.Callback):
    """Runs `callbacks` in order (hook for hook, as Keras would) and times them and everything else.

    Wrapping (instead of sitting beside them in Keras' list) is what lets their own time be told
    apart from the step's: each hook of theirs is timed directly. Keras' own History and progress bar
    run after this and land in `other`.
    """

    def __init__(self, callbacks: list, probe: InputProbe | None = None):
        super().__init__()
        self.callbacks = list(callbacks)
        self.probe = probe
        self.total = TimeSplit()
        self.epoch_splits: list[TimeSplit] = []
        # Seconds per callback class outside validation, whole run: which callback costs what.
        self.callback_seconds_by_name: dict[str, float] = collections.defaultdict(float)
        self._epoch = None
        self._in_validation = False
        self._validation_start = 0.0
        self._step_start = 0.0
        self._begin_step = 0
        self._first_step = True

    def set_model(self, model):
        super().set_model(model)
        for callback in self.callbacks:
            callback.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        for callback in self.callbacks:
            callback.set_params(params)

    def _call(self, hook: str, *args) -> float:
        start = end = time.perf_counter()
        counted = self._epoch is not None and not self._in_validation
        for callback in self.callbacks:
            getattr(callback, hook)(*args)
            if counted:
                now = time.perf_counter()
                self.callback_seconds_by_name[type(callback).__name__] += now - end
                end = now
        end = time.perf_counter()
        if counted:
            self._epoch.callback_seconds += end - start
        return end

    def on_train_begin(self, logs=None):
        if self.probe is not None:
            self.probe.reset(time.perf_counter())
        self._first_step = True
        self._call('on_train_begin', logs)

    def on_train_end(self, logs=None):
        self._call('on_train_end', logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        self._epoch = TimeSplit(epochs=1, input_wait_seconds=0.0 if self._probed() else None)
        self._call('on_epoch_begin', epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        end = self._call('on_epoch_end', epoch, logs)
        split, self._epoch = self._epoch, None
        if split is None:
            return
        split.epoch_seconds = end - self._epoch_start
        self.epoch_splits.append(split)
        self.total = self.total + split

    def on_train_batch_begin(self, batch, logs=None):
        self._begin_step = batch
        self._step_start = self._call('on_train_batch_begin', batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        # Keras has already turned the logs into Python numbers: the device is done with this step.
        end = time.perf_counter()
        if self._epoch is not None:
            batches = batch - self._begin_step + 1
            waited = self.probe.wait(self._step_start, batches, end) if self._probed() else 0.0
            if self._first_step:
                # Its batch is stamped after tracing: that is compilation, not waiting for input.
                self._epoch.first_step_seconds += end - self._step_start
            else:
                self._epoch.steps += batches
                self._epoch.step_seconds += end - self._step_start
                if self._epoch.input_wait_seconds is not None:
                    self._epoch.input_wait_seconds += waited
            self._first_step = False
        self._call('on_train_batch_end', batch, logs)

    def on_test_begin(self, logs=None):
        self._in_validation = True
        self._validation_start = time.perf_counter()
        self._call('on_test_begin', logs)

    def on_test_end(self, logs=None):
        end = self._call('on_test_end', logs)
        self._in_validation = False
        if self._epoch is not None:
            self._epoch.validation_seconds += end - self._validation_start

    def on_test_batch_begin(self, batch, logs=None):
        self._call('on_test_batch_begin', batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        self._call('on_test_batch_end', batch, logs)

    def on_predict_begin(self, logs=None):
        self._call('on_predict_begin', logs)

    def on_predict_end(self, logs=None):
        self._call('on_predict_end', logs)

    def on_predict_batch_begin(self, batch, logs=None):
        self._call('on_predict_batch_begin', batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._call('on_predict_batch_end', batch, logs)

    def _probed(self) -> bool:
        return self.probe is not None and self.probe.enabled

    def report(self) -> dict:
        """What results.json records: the whole run, its steady state, and each callback's seconds."""
        return {'whole_run': self.total.as_dict(), 'steady_state': self.steady_state().as_dict(),
                'callback_seconds': dict(self.callback_seconds_by_name)}

    def steady_state(self) -> TimeSplit:
        """The run's epochs after the first (which carries tracing and compilation), or all if one."""
        later = self.epoch_splits[1:] or self.epoch_splits
        total = TimeSplit(input_wait_seconds=0.0 if self._probed() else None)
        for split in later:
            total = total + split
        return total
