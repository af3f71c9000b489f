"""The run directory: what a run writes where, atomic writes, and the rules for reruns."""

import json
import os
import shutil
import tempfile
from typing import Any


# Fields that change where or how a run executes but not what it learns: a rerun may differ in them.
OPERATIONAL_FIELDS = frozenset({
    'source.data_dir', 'source.manual_dir', 'source.download', 'source.allow_modified_archive',
    'pipeline.cache', 'pipeline.cache_dir', 'pipeline.ram_budget_bytes',
    'run.overwrite', 'run.checkpoint_every_steps', 'run.model_dir', 'run.benchmark',
    'run.strategy', 'run.data_service', 'run.data_service_stall_timeout_s', 'run.jit_compile',
    'run.steps_per_execution',
})


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Returns `section.field: old -> new` for every learning-relevant field that differs."""
    differences = []
    for section in sorted(set(saved) | set(current)):
        old_fields, new_fields = saved.get(section, {}), current.get(section, {})
        for name in sorted(set(old_fields) | set(new_fields)):
            key = f'{section}.{name}'
            if key in OPERATIONAL_FIELDS:
                continue
            old, new = old_fields.get(name), new_fields.get(name)
            if old != new:
                differences.append(f'{key}: {old!r} -> {new!r}')
    return differences


class RunDirError(Exception):
    """A `--model_dir` that cannot be used; the message is one line and names the flag."""


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


class RunDir:
    """Layout of `--model_dir` and the decision to start, resume, or report a finished run."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        self.config = os.path.join(self.path, 'config.json')
        self.checkpoints = os.path.join(self.path, 'checkpoints')
        self.backup = os.path.join(self.path, 'backup')
        self.logs = os.path.join(self.path, 'logs')
        self.history_json = os.path.join(self.path, 'history.json')
        self.history_csv = os.path.join(self.path, 'history.csv')
        self.plots = os.path.join(self.path, 'plots')
        self.results = os.path.join(self.path, 'results.json')
        self.model = os.path.join(self.path, 'model.keras')
        self.created = False

    def check_writable(self) -> None:
        """Raises RunDirError unless the folder can be created and written, without leaving a trace."""
        existed = os.path.isdir(self.path)
        try:
            os.makedirs(self.path, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix='.probe-', dir=self.path)
            os.close(fd)
            os.remove(probe)
        except OSError as e:
            raise RunDirError(f'--model_dir={self.path} is not writable: {e.strerror or e}') from None
        finally:
            if not existed and os.path.isdir(self.path) and not os.listdir(self.path):
                os.rmdir(self.path)

    def claim(self, cfg) -> str:
        """Makes the folder this run's and says what to do: 'new', 'resume' or 'finished'.

        A folder holding a different run is refused unless `--overwrite`, which clears it.
        """
        self.check_writable()
        state = 'new'
        if os.path.exists(self.config):
            with open(self.config) as f:
                saved = json.load(f)
            differences = config_differences(saved, cfg.to_dict())
            if differences and not cfg.run.overwrite:
                shown = '; '.join(differences[:4]) + ('; ...' if len(differences) > 4 else '')
                raise RunDirError(
                    f'--model_dir={self.path} holds a run with a different config ({shown}); '
                    'pass --overwrite to replace it, or choose another --model_dir')
            if differences:
                self.clear()
            elif os.path.exists(self.results):
                state = 'finished'
            else:
                state = 'resume'
        elif os.path.isdir(self.path) and os.listdir(self.path) and cfg.run.overwrite:
            self.clear()
        self.created = not os.path.isdir(self.path) or not os.listdir(self.path)
        os.makedirs(self.path, exist_ok=True)
        write_json_atomic(self.config, cfg.to_dict())
        return state

    def clear(self) -> None:
        for name in os.listdir(self.path):
            full = os.path.join(self.path, name)
            if os.path.isdir(full) and not os.path.islink(full):
                shutil.rmtree(full)
            else:
                os.remove(full)

    def abandon(self) -> None:
        """Removes the folder if this run created it and nothing worth keeping was saved yet."""
        if self.created and not os.path.exists(self.backup) and not os.path.exists(self.checkpoints):
            shutil.rmtree(self.path, ignore_errors=True)
