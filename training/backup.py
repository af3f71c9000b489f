"""Resumable backups: the whole training state saved within epochs, atomically, with a fallback copy.

Keras' `BackupAndRestore` restores only at epoch boundaries (a kill late in an epoch redoes the
whole epoch); this saves and restores the exact optimizer step, and also saves on SIGTERM.
"""

import json
import math
import os
import shutil
import signal

import keras
from absl import logging

from fastclassify.training.run_dir import UNREADABLE_MARKER, RunDirError, write_json_atomic

_WEIGHTS = 'state.weights.h5'
_META = 'state.json'
_KEEP = 2  # the latest and one fallback


class BackupError(RunDirError):
    """No backup in `--model_dir` can be read; the message names them and the flag that starts over."""


def _backups(backup_dir: str) -> list[str]:
    """Complete backups, newest first (a backup folder appears only once fully written)."""
    if not os.path.isdir(backup_dir):
        return []
    names = sorted((n for n in os.listdir(backup_dir) if n.startswith('step-')), reverse=True)
    return [os.path.join(backup_dir, n) for n in names]


class Position:
    """Where training stands: epochs completed and steps done in the current epoch."""

    def __init__(self, global_step: int, steps_per_epoch: int):
        self.global_step = global_step
        self.epoch, self.step_in_epoch = divmod(global_step, steps_per_epoch)

    def __repr__(self):
        return f'epoch {self.epoch} step {self.step_in_epoch} (global step {self.global_step})'


def latest_step(backup_dir: str) -> int | None:
    """Global step of the newest backup, read from its metadata only (no weights loaded)."""
    for path in _backups(backup_dir):
        try:
            with open(os.path.join(path, _META)) as f:
                return int(json.load(f)['global_step'])
        except (OSError, ValueError, KeyError):
            continue
    return None


def restore(model: keras.Model, backup_dir: str) -> tuple[int, dict] | None:
    """Loads the newest readable backup into `model` (optimizer and augmentation RNG included).

    The optimizer's learning rate stays the one `model` was compiled with: a resume may change
    `--learning_rate` (training/run_dir.py), and a constant rate is an optimizer variable that the
    backup would otherwise put back.

    Returns:
      `(global_step, metadata)`, or None when there is no backup. A corrupt latest backup falls
      back to the previous one, and says so.

    Raises:
      BackupError: there are backups and none is readable (training from step 0 instead would
        silently throw the run away); `--overwrite` then starts over.
    """
    optimizer = model.optimizer
    unreadable = []
    for path in _backups(backup_dir):
        try:
            with open(os.path.join(path, _META)) as f:
                metadata = json.load(f)
            if optimizer is not None and not optimizer.built:
                optimizer.build(model.trainable_variables)
            rates = [(v, v.numpy()) for v in (optimizer.variables if optimizer is not None else [])
                     if v.name == 'learning_rate']
            model.load_weights(os.path.join(path, _WEIGHTS))
            for variable, value in rates:
                variable.assign(value)
            global_step = int(metadata['global_step'])
        except (OSError, ValueError, KeyError, TypeError) as e:
            logging.warning('Backup %s is unreadable (%s); trying the previous one.', path, _one_line(e))
            unreadable.append((path, _one_line(e)))
            continue
        if unreadable:
            logging.warning('Resumed from an older backup (%s): newer ones were unreadable (%s).', path,
                            ', '.join(os.path.basename(p) for p, _ in unreadable))
        return global_step, metadata
    if not unreadable:
        return None
    write_json_atomic(os.path.join(backup_dir, UNREADABLE_MARKER),
                      [{'backup': p, 'error': reason} for p, reason in unreadable])
    shown = '; '.join(f'{os.path.basename(p)}: {reason[:80]}' for p, reason in unreadable)
    raise BackupError(
        f'no backup in {backup_dir} is readable ({shown}); nothing to resume from. Rerun with '
        f'--overwrite to start over from step 0 (it clears {os.path.dirname(backup_dir)}), or move '
        f'the backups away to inspect them')


def non_finite_loss_message(backup_dir: str, checkpoint_dir: str, *, epoch: int,
                            learning_rate: float) -> str:
    """The NaN stop's one line: where the last good state is (only folders that exist) and a rerun
    that resumes from it with a lower rate (a resume accepts a changed --learning_rate)."""
    lower = f'--learning_rate={learning_rate / 10:g}'
    step = latest_step(backup_dir)
    if step is None:
        return (f'the loss became NaN/Inf in epoch {epoch}; training stopped before any state was '
                f'saved. Rerun the same command with a lower rate, e.g. {lower} (it starts from step '
                f'0), or check the data')
    where = f'the backup at global step {step} in {backup_dir}'
    last = os.path.join(checkpoint_dir, 'last.weights.h5')
    if os.path.exists(last):
        where += f' (weights of the last complete epoch: {last})'
    return (f'the loss became NaN/Inf in epoch {epoch}; training stopped. The last good state is '
            f'{where}; rerun the same command with a lower rate, e.g. {lower}, to resume from it (a '
            f'resume accepts a changed --learning_rate or --epochs), or check the data')


class BackupCallback(keras.callbacks.Callback):
    """Saves the training state every `every_steps` steps, at each epoch end, and on SIGTERM.

    Each save writes a new folder under a temporary name and renames it, keeping the one before as
    a fallback: a kill at any moment leaves at least one complete backup. A state
    whose running loss is not finite is never saved, so the last good backup survives a NaN.
    """

    def __init__(self, backup_dir: str, *, every_steps: int, initial_global_step: int):
        super().__init__()
        self.backup_dir = backup_dir
        self.every_steps = every_steps
        self.global_step = initial_global_step
        self._epoch_base = initial_global_step
        self._last_saved = initial_global_step
        self.preempted = False
        self._previous_handler = None

    def install_sigterm_handler(self) -> None:
        def handler(signum, frame):
            # Only flag it: saving happens between steps, where the state is consistent.
            self.preempted = True
        self._previous_handler = signal.signal(signal.SIGTERM, handler)

    def uninstall_sigterm_handler(self) -> None:
        if self._previous_handler is not None:
            signal.signal(signal.SIGTERM, self._previous_handler)
            self._previous_handler = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_base = self.global_step

    def on_train_batch_end(self, batch, logs=None):
        # Once per execution: `batch` is its last step (k steps per call divide `every_steps`).
        self.global_step = self._epoch_base + batch + 1
        if not _finite(logs):
            return
        due = self.every_steps and self.global_step - self._last_saved >= self.every_steps
        if due or self.preempted:
            self.save()
        if self.preempted:
            logging.warning('SIGTERM: saved the training state at global step %d; stopping.',
                            self.global_step)
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if _finite(logs) and self.global_step != self._last_saved:
            self.save()

    def save(self) -> None:
        os.makedirs(self.backup_dir, exist_ok=True)
        final = os.path.join(self.backup_dir, f'step-{self.global_step:010d}')
        tmp = os.path.join(self.backup_dir, f'.tmp-step-{self.global_step:010d}')
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        self.model.save_weights(os.path.join(tmp, _WEIGHTS), overwrite=True)
        write_json_atomic(os.path.join(tmp, _META), {'global_step': self.global_step})
        shutil.rmtree(final, ignore_errors=True)
        # A folder rename is atomic: a backup is either complete or absent.
        os.replace(tmp, final)
        _retain(self.backup_dir, final)
        self._last_saved = self.global_step


def _retain(backup_dir: str, newest: str) -> None:
    """Keeps `newest` (just written, so readable) and the `_KEEP - 1` backups just before it.

    Backups of later steps are from before a fallback (unreadable ones the run resumed past): they
    would otherwise sort first and push the fresh backup out.
    """
    names = sorted(os.path.basename(p) for p in _backups(backup_dir))
    older = [n for n in names if n < os.path.basename(newest)]
    keep = {os.path.basename(newest), *older[max(0, len(older) - (_KEEP - 1)):]}
    for name in names:
        if name not in keep:
            shutil.rmtree(os.path.join(backup_dir, name), ignore_errors=True)
    marker = os.path.join(backup_dir, UNREADABLE_MARKER)
    if os.path.exists(marker):
        os.remove(marker)  # a readable backup exists again


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _finite(logs) -> bool:
    loss = (logs or {}).get('loss')
    return loss is None or math.isfinite(float(loss))
