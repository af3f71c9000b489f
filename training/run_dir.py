"""The run directory: what a run writes where, atomic writes, one writer at a time, the rules for reruns."""

import json
import os
import shutil
import tempfile
from typing import Any

from fastclassify.pipelines.disk_space import free_bytes, human_bytes
from fastclassify.pipelines.folder_lock import FolderBusyError, FolderLock, file_on_the_way


# Fields that change where or how a run executes but not what it learns: a rerun may differ in them.
OPERATIONAL_FIELDS = frozenset({
    'source.data_dir', 'source.manual_dir', 'source.download', 'source.allow_modified_archive',
    'pipeline.cache', 'pipeline.cache_dir', 'pipeline.ram_budget_bytes',
    'run.overwrite', 'run.checkpoint_every_steps', 'run.model_dir', 'run.benchmark',
    'run.strategy', 'run.data_service', 'run.data_service_stall_timeout_s', 'run.jit_compile',
    'run.steps_per_execution',
})
# Fields a resume may change, said in the log: the restored state stays valid under them (a lower rate
# after a NaN stop, more epochs for a run that is still going). Anything else that shapes what is
# learned (model, data, batch, augmentation, seed) would make the restored state mean something else.
# Fields newer than some recorded runs: the value those runs had without it.
_ADDED_LATER = {'pipeline.process_cache': 'whole'}
RESUMABLE_FIELDS = {'optimizer.learning_rate': '--learning_rate', 'run.epochs': '--epochs'}
# Written into the backup folder by `training.backup.restore` when no backup there can be read; with
# it, `--overwrite` starts the run over instead of resuming.
UNREADABLE_MARKER = 'unreadable.json'
_LOCK_NAME = '.writer.lock'


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Returns `section.field: old -> new` for every learning-relevant field that differs."""
    differences = []
    for section in sorted(set(saved) | set(current)):
        old_fields, new_fields = saved.get(section, {}), current.get(section, {})
        for name in sorted(set(old_fields) | set(new_fields)):
            key = f'{section}.{name}'
            if key in OPERATIONAL_FIELDS:
                continue
            old, new = old_fields.get(name, _ADDED_LATER.get(key)), new_fields.get(name)
            if old != new:
                differences.append(f'{key}: {old!r} -> {new!r}')
    return differences


def split_differences(differences: list[str]) -> tuple[list[str], list[str]]:
    """(refused, accepted-on-resume) parts of `config_differences`' output."""
    accepted = [d for d in differences if d.split(':', 1)[0] in RESUMABLE_FIELDS]
    return [d for d in differences if d not in accepted], accepted


class RunDirError(Exception):
    """A `--model_dir` that cannot be used; the message is one line and names the flag."""


class DiskFullError(RunDirError):
    """A write into `--model_dir` found the disk full; the message says where, how much and what is intact."""


def disk_full_message(folder: str, what: str, need_bytes: int | None, intact: str) -> str:
    """One line: which folder, what was being written and how much it needed, what is still intact."""
    free = human_bytes(free_bytes(folder))
    numbers = (f'needs about {human_bytes(need_bytes)} and {free} is free there' if need_bytes else
               f'failed with {free} free there')
    return (f'the disk holding {folder} is full: {what} {numbers}; {intact}. Free space there (or move '
            '--model_dir) and rerun the same command to resume')


# Names this package gives files while writing them (write_atomic's mkstemp, the backup folder, the
# checkpoints, the plots): left behind only by a failed write or a kill, never read.
def _is_temporary(name: str) -> bool:
    return name.startswith('.tmp-') or name.endswith('.tmp.png')


def remove_temporaries(folder: str, subfolders: tuple[str, ...] = ('backup', 'checkpoints', 'plots')) -> None:
    """Removes half-written files and folders a failed write or a kill left in a run folder."""
    for where in (folder, *(os.path.join(folder, s) for s in subfolders)):
        try:
            names = os.listdir(where)
        except OSError:
            continue
        for name in names:
            if _is_temporary(name):
                full = os.path.join(where, name)
                if os.path.isdir(full) and not os.path.islink(full):
                    shutil.rmtree(full, ignore_errors=True)
                else:
                    try:
                        os.remove(full)
                    except OSError:
                        pass


def write_atomic(path: str, data: bytes | str) -> None:
    """Writes via a temporary file and rename, so a kill never leaves a half-written file."""
    directory = os.path.dirname(path) or '.'
    mode = 'wb' if isinstance(data, bytes) else 'w'
    fd, tmp = tempfile.mkstemp(prefix='.tmp-', dir=directory)
    try:
        with os.fdopen(fd, mode) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json_atomic(path: str, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=True))


def _probe(folder: str) -> int:
    fd, probe = tempfile.mkstemp(prefix='.probe-', dir=folder)
    os.remove(probe)
    return fd


def _in_own_folder(folder: str, action, attempts: int = 5):
    """Makes `folder` and runs `action` in it, again when another process removed the folder between
    the two (two runs started together on one new `--model_dir` each probe it and remove it if empty)."""
    for attempt in range(attempts):
        os.makedirs(folder, exist_ok=True)
        try:
            return action()
        except FileNotFoundError:
            if attempt == attempts - 1:
                raise


class RunDir:
    """Layout of `--model_dir` and the decision to start, resume, or report a finished run."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        self.config = os.path.join(self.path, 'config.json')
        self.data = os.path.join(self.path, 'data.json')  # the identity of the data the run trains on
        self.checkpoints = os.path.join(self.path, 'checkpoints')
        self.backup = os.path.join(self.path, 'backup')
        self.logs = os.path.join(self.path, 'logs')
        self.history_json = os.path.join(self.path, 'history.json')
        self.history_csv = os.path.join(self.path, 'history.csv')
        self.plots = os.path.join(self.path, 'plots')
        self.results = os.path.join(self.path, 'results.json')
        self.model = os.path.join(self.path, 'model.keras')
        self.last_weights = os.path.join(self.checkpoints, 'last.weights.h5')
        self.continuation_file = os.path.join(self.path, 'continue.json')  # a finished run trains on
        self.created = False
        self._lock: FolderLock | None = None

    def check_writable(self) -> None:
        """Raises RunDirError unless the folder can be created and written, without leaving a trace."""
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise RunDirError(f'--model_dir={self.path} is a file, not a folder; choose a folder '
                              '(it is created if absent)')
        existed = os.path.isdir(self.path)
        try:
            # Another run starting on the same new folder removes it after its own probe (below): the
            # folder is then made again, not reported as unwritable.
            _in_own_folder(self.path, lambda: os.close(_probe(self.path)))
        except OSError as e:
            blocker = file_on_the_way(self.path)
            reason = f'{blocker} is a file, not a folder' if blocker else (e.strerror or str(e))
            raise RunDirError(f'--model_dir={self.path} is not writable: {reason}') from None
        finally:
            if not existed:
                try:
                    os.rmdir(self.path)  # only when empty; another run's files keep it
                except OSError:
                    pass

    def lock(self) -> None:
        """Makes this process the folder's one writer until it exits (an OS lock: a killed holder
        releases it). Raises RunDirError naming the live process that holds it."""
        if self._lock is None:
            self._lock = FolderLock(os.path.join(self.path, _LOCK_NAME))
        try:
            _in_own_folder(self.path, self._lock.try_acquire)
        except OSError as e:
            raise RunDirError(f'--model_dir={self.path}: cannot take its writer lock '
                              f'({e.strerror or e})') from None
        except FolderBusyError as e:
            raise RunDirError(
                f'--model_dir={self.path} is in use by {e.holder} (another train.py writing there); '
                'wait for it to end or stop it, or choose another --model_dir') from None

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()

    def claim(self, cfg, data_identity: dict | None = None) -> str:
        """Makes the folder this run's and says what to do: 'new', 'resume' or 'finished'.

        Takes the folder's writer lock first. A folder holding a different run is refused unless
        `--overwrite`, which clears it; a resume may change only `RESUMABLE_FIELDS` (logged). With
        `--overwrite`, a run whose backups were all found unreadable starts over. A resume on data whose
        identity (`data_identity`, of the prepared dataset) differs from the run's is refused.
        """
        self.check_writable()
        created = not os.path.isdir(self.path) or not self._contents()
        self.lock()
        state = 'new'
        if os.path.exists(self.config):
            with open(self.config) as f:
                saved = json.load(f)
            refused, accepted = split_differences(config_differences(saved, cfg.to_dict()))
            finished = os.path.exists(self.results)
            if refused and not cfg.run.overwrite:
                raise RunDirError(
                    f'--model_dir={self.path} holds a run with a different config ({_shown(refused)}); '
                    'a resume may change only --learning_rate and --epochs; pass --overwrite to replace '
                    'it, or choose another --model_dir')
            if (accepted and finished and not cfg.run.overwrite
                    and self._continues(saved, cfg.to_dict(), accepted)):
                return self._claim_continuation(saved, cfg, created)
            if accepted and finished and not cfg.run.overwrite:
                raise RunDirError(
                    f'--model_dir={self.path} holds a finished run ({_shown(accepted)}): its resume state '
                    f'was removed when it finished; raise --epochs to train it on, or use another --model_dir with '
                    f'--weights={self.model}, or pass --overwrite to start it over')
            changed = _data_changes(self.data, data_identity)
            if changed and not finished and not cfg.run.overwrite:
                raise RunDirError(
                    f'--model_dir={self.path} holds a run that trained on other data ({_shown(changed)}); '
                    'a resume must see the data it started on: put that data back, pass --overwrite to '
                    'start over on the new data, or choose another --model_dir')
            unreadable = os.path.exists(os.path.join(self.backup, UNREADABLE_MARKER))
            if refused or (cfg.run.overwrite and (changed or unreadable or (accepted and finished))):
                print(f'--overwrite: clearing {self.path} and starting over', flush=True)
                self.clear()
            elif finished:
                state = 'finished'
            else:
                state = 'resume'
                if accepted:
                    print(f'resuming with changed settings (a resume accepts them): {_shown(accepted)}',
                          flush=True)
        elif self._contents() and cfg.run.overwrite:
            self.clear()
        self.created = created
        remove_temporaries(self.path)  # what a killed or failed write of an earlier run left
        write_json_atomic(self.config, cfg.to_dict())
        if data_identity is not None and state != 'finished':
            write_json_atomic(self.data, data_identity)
        return state

    def saved_setting(self, section: str, name: str, *, before_it_existed=None):
        """The run's recorded `section.name` (its config.json); `before_it_existed` for a run recorded
        before the field existed; None without a readable record."""
        try:
            with open(self.config) as f:
                return json.load(f).get(section, {}).get(name, before_it_existed)
        except (OSError, ValueError, AttributeError):
            return None

    def _continues(self, saved: dict, current: dict, accepted: list[str]) -> bool:
        """A finished run continues when `--epochs` is raised (a changed rate may come with it) and the last
        epoch's weights are there to start from."""
        more_epochs = current['run']['epochs'] > saved['run']['epochs']
        return more_epochs and os.path.exists(self.last_weights)

    def _claim_continuation(self, saved: dict, cfg, created: bool) -> str:
        """Turns a finished run into one that trains on from its last epoch; returns 'resume'.

        The resume state (optimizer included) was dropped when the run finished, so training restarts from
        the last epoch's weights with the step count of the finished run and a fresh optimizer state;
        `continuation()` tells the loop where. Its results move to results-epochs-N.json.
        """
        with open(self.results) as f:
            step = json.load(f)['global_steps']
        old_epochs, new_epochs = saved['run']['epochs'], cfg.run.epochs
        write_json_atomic(self.continuation_file, {'global_step': step, 'weights': self.last_weights,
                                                   'from_epochs': old_epochs})
        os.replace(self.results, os.path.join(self.path, f'results-epochs-{old_epochs}.json'))
        print(f'--epochs={new_epochs}: continuing the finished {old_epochs}-epoch run in {self.path} with '
              f'epochs {old_epochs + 1}..{new_epochs}, from its last weights (the optimizer state starts '
              'fresh; the learning-rate schedule now spans all epochs)', flush=True)
        self.created = created
        write_json_atomic(self.config, cfg.to_dict())
        return 'resume'

    def continuation(self) -> dict | None:
        """`{'global_step', 'weights'}` when this run continues a finished one and has no backup yet."""
        if not os.path.exists(self.continuation_file) or os.path.exists(self.results):
            return None
        with open(self.continuation_file) as f:
            return json.load(f)

    def clear(self) -> None:
        """Removes everything in the folder but the writer lock (this run holds it)."""
        for name in self._contents():
            full = os.path.join(self.path, name)
            if os.path.isdir(full) and not os.path.islink(full):
                shutil.rmtree(full)
            else:
                os.remove(full)

    def abandon(self) -> None:
        """Removes the folder if this run created it and nothing worth keeping was saved yet."""
        if self.created and not os.path.exists(self.backup) and not os.path.exists(self.checkpoints):
            shutil.rmtree(self.path, ignore_errors=True)
            self.release()

    def _contents(self) -> list[str]:
        if not os.path.isdir(self.path):
            return []
        return [n for n in os.listdir(self.path) if n != _LOCK_NAME]


def _data_changes(path: str, current: dict | None) -> list[str]:
    """`key: old -> new` for each part of the data's identity that differs from the one the run recorded
    (none when either is unknown: synthetic data, or a run from before identities were recorded)."""
    if current is None or not os.path.exists(path):
        return []
    try:
        with open(path) as f:
            saved = json.load(f)
    except (OSError, ValueError):
        return []  # unreadable record: config.json still guards the rest
    current = json.loads(json.dumps(current, sort_keys=True))  # as it is saved: same types, same order
    return [f'data {key}: {saved.get(key)!r} -> {current.get(key)!r}'
            for key in sorted(set(saved) | set(current)) if saved.get(key) != current.get(key)]


def _shown(differences: list[str]) -> str:
    return '; '.join(differences[:4]) + ('; ...' if len(differences) > 4 else '')


