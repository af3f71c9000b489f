"""Per-epoch records of a run: last/best checkpoints, history + plots, throughput line, NaN stop."""

import csv
import io
import json
import math
import os
import shutil
import threading
import time

import keras
from absl import logging

from fastclassify.training.backup import save_weights
from fastclassify.training.plots import plot_history
from fastclassify.training.run_dir import RunDir, write_atomic, write_json_atomic


class CheckpointCallback(keras.callbacks.Callback):
    """Saves the classifier's weights as `last` every epoch and `best` by validation accuracy.

    Only the classifier is saved (not the optimizer): these files are what `--weights=PATH` loads.
    Writes go through a temporary file and a rename, so a kill never leaves a torn checkpoint.
    """

    def __init__(self, checkpoint_dir: str, classifier: keras.Model, monitor: str = 'val_accuracy'):
        super().__init__()
        self.checkpoint_dir = checkpoint_dir
        self.classifier = classifier
        self.monitor = monitor
        self._best_file = os.path.join(checkpoint_dir, 'best.json')
        self.best = -math.inf
        if os.path.exists(self._best_file):
            with open(self._best_file) as f:
                self.best = json.load(f)['value']

    def _path(self, name: str) -> str:
        return os.path.join(self.checkpoint_dir, f'{name}.weights.h5')

    def _save(self, name: str) -> None:
        os.makedirs(self.checkpoint_dir, exist_ok=True)
        tmp = os.path.join(self.checkpoint_dir, f'.tmp-{name}.weights.h5')
        save_weights(self.classifier, tmp)  # a full disk: an OSError, the temporary file removed
        os.replace(tmp, self._path(name))

    def _copy_last_to_best(self) -> None:
        # `best` is this epoch's `last`: a hard link shares the bytes instead of serializing them a
        # second time (the next `last` is a new file renamed over the name, so `best` stays intact).
        tmp = os.path.join(self.checkpoint_dir, '.tmp-best.weights.h5')
        if os.path.exists(tmp):
            os.remove(tmp)
        try:
            os.link(self._path('last'), tmp)
        except OSError:  # a filesystem without hard links
            shutil.copyfile(self._path('last'), tmp)
        os.replace(tmp, self._path('best'))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.model.stop_training or not math.isfinite(float(logs.get('loss', 0.0))):
            return  # an epoch cut short (SIGTERM, NaN) is not an epoch: the backup holds its state
        self._save('last')
        value = logs.get(self.monitor, logs.get('accuracy'))
        if value is not None and value > self.best:
            self.best = float(value)
            self._copy_last_to_best()
            write_json_atomic(self._best_file, {'epoch': epoch + 1, 'monitor': self.monitor,
                                                'value': self.best})


class HistoryCallback(keras.callbacks.Callback):
    """Appends each epoch's metrics to `history.json` / `history.csv` and redraws the plots.

    The history lives on disk, not in memory, so a resumed run continues the same record. The plots
    (~0.3-0.7 s of Matplotlib per epoch on a small CPU, the largest per-epoch cost of a short epoch)
    are drawn on a background thread while the next epoch trains; `on_train_end` waits for the last
    drawing, so the plots are complete when `fit` returns.
    """

    def __init__(self, run_dir: RunDir, *, chief: bool = True):
        super().__init__()
        self.run_dir = run_dir
        self.chief = chief
        self.history = load_history(run_dir.history_json)
        self._start = None
        self.images_per_sec = None
        self._plotter = None
        self._plot_error = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if self.model.stop_training:
            return  # cut short (SIGTERM, NaN): the resumed run records the whole epoch
        row = {'epoch': epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        row['seconds'] = time.perf_counter() - self._start
        # A resumed epoch replaces its earlier partial record.
        self.history = [r for r in self.history if r['epoch'] != row['epoch']] + [row]
        if not self.chief:
            return
        write_json_atomic(self.run_dir.history_json, self.history)
        write_atomic(self.run_dir.history_csv, _to_csv(self.history))
        self._wait_for_plots()  # one drawing at a time; epochs are much longer than a drawing
        self._plotter = threading.Thread(target=self._plot, args=(list(self.history),),
                                         name='history-plots', daemon=True)
        self._plotter.start()

    def _plot(self, history: list[dict]) -> None:
        try:
            plot_history(history, self.run_dir.plots)
        except Exception as e:  # pylint: disable=broad-except  (re-raised on the training thread)
            self._plot_error = e

    def _wait_for_plots(self) -> None:
        if self._plotter is not None:
            self._plotter.join()
            self._plotter = None
        if self._plot_error is not None:
            error, self._plot_error = self._plot_error, None
            raise error

    def on_train_end(self, logs=None):
        self._wait_for_plots()

    def stop_plotting(self) -> None:
        """Waits for a drawing still running when `fit` failed (a daemon thread drawing while the
        interpreter exits can abort it); its own error is dropped: the failure being raised matters."""
        if self._plotter is not None:
            self._plotter.join()
            self._plotter = None
        self._plot_error = None


class ThroughputCallback(keras.callbacks.Callback):
    """Prints one summary line per epoch with training images/s (validation excluded).

    The first execution of each `fit` call (one step, or `--steps_per_execution` of them) is left out of
    the rate: it includes tracing and compilation.
    """

    def __init__(self, global_batch_size: int, epochs: int):
        super().__init__()
        self.global_batch_size = global_batch_size
        self.epochs = epochs
        self._first_epoch_of_fit = True

    def on_train_begin(self, logs=None):
        self._first_epoch_of_fit = True

    def on_epoch_begin(self, epoch, logs=None):
        self._steps, self._timed_steps, self._seconds = 0, 0, 0.0
        self._last_end = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        done = batch + 1 - self._steps
        self._steps = batch + 1
        if not (self._first_epoch_of_fit and self._steps == done):  # not the fit's first execution
            self._seconds += now - self._last_end
            self._timed_steps += done
        self._last_end = now

    def on_epoch_end(self, epoch, logs=None):
        self._first_epoch_of_fit = False
        logs = logs if logs is not None else {}
        rate = self._timed_steps * self.global_batch_size / self._seconds if self._seconds else 0.0
        logs['images_per_sec'] = rate
        shown = ', '.join(f'{k}={v:.4f}' for k, v in sorted(logs.items())
                          if k != 'images_per_sec' and isinstance(v, (int, float)))
        print(f'epoch {epoch + 1}/{self.epochs}: {rate:,.1f} images/s over {self._steps} steps; '
              f'{shown}', flush=True)


class NonFiniteLossCallback(keras.callbacks.Callback):
    """Stops training at the first NaN/Inf loss; the backups made before it stay intact.

    It reads the logs Keras already brought to the host after each execution: `loss` there is the epoch's
    running mean, accumulated on the device, so one non-finite step in an execution of k makes it
    non-finite at that execution's end (no per-step read), and `tripped_at` is that execution's last step.
    """

    def __init__(self):
        super().__init__()
        self.tripped_at = None

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get('loss')
        if loss is not None and not math.isfinite(float(loss)) and self.tripped_at is None:
            self.tripped_at = batch
            logging.error('Loss became %s at batch %d: stopping.', loss, batch)
            self.model.stop_training = True


def load_history(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return json.load(f)


def _to_csv(history: list[dict]) -> str:
    keys = ['epoch'] + sorted({k for row in history for k in row} - {'epoch'})
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=keys)
    writer.writeheader()
    writer.writerows(history)
    return out.getvalue()
