"""Resumable backups: the whole training state saved within epochs, atomically, with a fallback copy.

Keras' `BackupAndRestore` restores only at epoch boundaries (a kill late in an epoch redoes the
whole epoch); this saves and restores the exact optimizer step, and also saves on SIGTERM.
"""

import gc
import io
import json
import math
import os
import shutil
import signal

import keras
import numpy as np
from absl import logging

from fastclassify.pipelines.disk_space import free_bytes, is_disk_full
from fastclassify.training.run_dir import (UNREADABLE_MARKER, DiskFullError, RunDirError, disk_full_message,
                                           remove_temporaries, write_json_atomic)

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


class Preempted(Exception):
    """Raised by `BackupCallback` once the SIGTERM's backup is saved: it ends `fit` at once.

    `model.stop_training` would end the epoch's steps but still run its validation, which can outlast a
    preemption's grace period (Kubernetes: 30 s by default) and turn a clean stop into a SIGKILL.
    """


class BackupCallback(keras.callbacks.Callback):
    """Saves the training state every `every_steps` steps, at each epoch end, and on SIGTERM.

    Each save writes a new folder under a temporary name and renames it, keeping the one before as
    a fallback: a kill at any moment leaves at least one complete backup. A state
    whose running loss is not finite is never saved, so the last good backup survives a NaN.

    In a multi-process job (`shared_stop`, training/multiprocess.py) a SIGTERM to any process stops
    every process after the same step, the one `shared_stop` gives; each then ends as on its own SIGTERM.
    """

    def __init__(self, backup_dir: str, *, every_steps: int, initial_global_step: int, shared_stop=None):
        super().__init__()
        self.backup_dir = backup_dir
        self.every_steps = every_steps
        self.global_step = initial_global_step
        self._epoch_base = initial_global_step
        self._last_saved = initial_global_step
        self.preempted = False
        self._shared_stop = shared_stop
        self._signalled = False  # this process's SIGTERM, when the job decides the stop
        self._previous_handler = None

    def install_sigterm_handler(self) -> None:
        def handler(signum, frame):
            # Only flag it: saving happens between steps, where the state is consistent.
            if self._shared_stop is None:
                self.preempted = True
            else:
                self._signalled = True
        self._previous_handler = signal.signal(signal.SIGTERM, handler)

    def uninstall_sigterm_handler(self) -> None:
        if self._previous_handler is not None:
            previous, self._previous_handler = self._previous_handler, None
            signal.signal(signal.SIGTERM, previous)
            if self._signalled and not self.preempted and callable(previous):
                previous(signal.SIGTERM, None)  # no step was left to stop after: the handler underneath's

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_base = self.global_step

    def on_train_batch_end(self, batch, logs=None):
        # Once per execution: `batch` is its last step (k steps per call divide `every_steps`).
        self.global_step = self._epoch_base + batch + 1
        if self._shared_stop is not None and not self.preempted:
            self.preempted = self._shared_stop.stops_after(self.global_step, self._signalled)
        if not _finite(logs):
            return
        due = self.every_steps and self.global_step - self._last_saved >= self.every_steps
        if due or self.preempted:
            self.save()
        if self.preempted:
            logging.warning('SIGTERM: saved the training state at global step %d; stopping.',
                            self.global_step)
            self.model.stop_training = True
            raise Preempted(self.global_step)

    def on_epoch_end(self, epoch, logs=None):
        if _finite(logs) and self.global_step != self._last_saved:
            self.save()

    def save(self) -> None:
        """Writes the backup of this step; a full disk is one line (DiskFullError) and leaves no trace."""
        os.makedirs(self.backup_dir, exist_ok=True)
        # A failed or killed save of any step left its temporary folder; none is ever read.
        remove_temporaries(self.backup_dir, subfolders=())
        final = os.path.join(self.backup_dir, f'step-{self.global_step:010d}')
        tmp = os.path.join(self.backup_dir, f'.tmp-step-{self.global_step:010d}')
        need = _state_bytes(self.model, self.backup_dir)
        # Refused before writing when it cannot fit: a half-written HDF5 file is what crashes h5py.
        if free_bytes(self.backup_dir) < need:
            raise DiskFullError(self._disk_full(need))
        try:
            os.makedirs(tmp)
            save_weights(self.model, os.path.join(tmp, _WEIGHTS))
            write_json_atomic(os.path.join(tmp, _META), {'global_step': self.global_step})
        except OSError as e:
            if not is_disk_full(e):
                raise
            # Another writer took the space after the check: h5py left its file open, and closing it
            # at exit (after its folder is gone) crashes the interpreter, so it is closed here.
            close_h5_files_under(tmp)
            shutil.rmtree(tmp, ignore_errors=True)
            raise DiskFullError(self._disk_full(need)) from e
        shutil.rmtree(final, ignore_errors=True)
        # A folder rename is atomic: a backup is either complete or absent.
        os.replace(tmp, final)
        _retain(self.backup_dir, final)
        self._last_saved = self.global_step

    def _disk_full(self, need: int) -> str:
        previous = latest_step(self.backup_dir)
        intact = ('no backup was saved before it, so a rerun starts from step 0' if previous is None else
                  f'the previous backup, at global step {previous}, is intact')
        return disk_full_message(self.backup_dir, f'saving the backup at global step {self.global_step}',
                                 need, intact)


def save_weights(model: keras.Model, path: str) -> None:
    """`model.save_weights(path)`, where a full disk is an OSError (ENOSPC) and never a crash.

    HDF5 can crash the process (SIGSEGV in its close) after one of its writes failed, so the file is
    built in memory (h5py on a BytesIO, through Keras' own weight store: the same file) and written
    with plain writes. A state over a quarter of the available memory is written by h5py directly
    (the caller's free-space check then guards it; a disk filled during that write can still crash).
    """
    try:  # Keras' own weight store (private: a Keras without it saves directly, as before)
        from keras.src.saving import saving_lib  # pylint: disable=import-outside-toplevel
        store_cls, save_state = saving_lib.H5IOStore, saving_lib._save_state  # pylint: disable=protected-access
    except (ImportError, AttributeError):
        store_cls = save_state = None
    if store_cls is None or _state_bytes(model, None) > _available_memory() // 4:
        model.save_weights(path, overwrite=True)
        return
    buffer = io.BytesIO()
    store = store_cls(buffer, mode='w')
    try:
        save_state(model, weights_store=store, assets_store=None, inner_path='', visited_saveables=set())
    finally:
        store.close()
    try:
        with open(path, 'wb') as f:  # not synced, as h5py's own write was not: a kill is what it survives
            f.write(buffer.getbuffer())
    except BaseException:
        if os.path.exists(path):
            os.remove(path)
        raise


def _available_memory() -> int:
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')


def _state_bytes(model: keras.Model, backup_dir: str | None) -> int:
    """Bytes a backup takes: the newest backup's file when there is one, else the variables' sizes."""
    for path in _backups(backup_dir) if backup_dir else []:
        try:
            return os.path.getsize(os.path.join(path, _WEIGHTS))
        except OSError:
            continue
    variables = list(model.weights)
    if getattr(model, 'optimizer', None) is not None:
        variables += list(model.optimizer.variables)
    raw = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables)
    return raw + 64 * 1024 + 1024 * len(variables)  # HDF5 headers, one object per variable


def close_h5_files_under(folder: str) -> None:
    """Closes h5py files left open under `folder` by a failed write (their close may fail too: ignored)."""
    import h5py  # pylint: disable=import-outside-toplevel  (Keras imports it to save; it is loaded here)

    prefix = os.path.abspath(folder) + os.sep
    for obj in gc.get_objects():
        try:
            if isinstance(obj, h5py.File) and obj.id.valid and os.path.abspath(obj.filename).startswith(prefix):
                obj.close()
        except Exception:  # pylint: disable=broad-except  (a failed close still invalidates the file id)
            pass


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
