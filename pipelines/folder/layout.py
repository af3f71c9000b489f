"""Where the classes (and given splits) are in a tree of files: `CLASS/IMAGE` or `train|test/CLASS/IMAGE`."""

import dataclasses
import re
from typing import Iterable

from fastclassify.pipelines.folder import members

SPLIT_FOLDERS = ('train', 'test')
# Wrapper folders descended into when a tree has a single top folder (e.g. `flowers.tar` -> `flowers/`).
_MAX_WRAPPERS = 8


@dataclasses.dataclass(frozen=True)
class Placement:
    """A file in a class folder.

    Attributes:
        key: its path below the root, e.g. `roses/1.jpg` or `train/roses/1.jpg` (example key, file name).
        split: 'train' / 'test' when the tree gives splits, else None.
        class_dir: its class folder's name.
    """

    key: str
    split: str | None
    class_dir: str


@dataclasses.dataclass(frozen=True)
class Layout:
    """The shape of a tree of class folders.

    Attributes:
        root: folders every file must be under (e.g. `('256_ObjectCategories',)`); () = the top.
        split_folders: `('train', 'test')` when the tree gives its splits, () for one pool of files.
        class_pattern: a regular expression class folders must match, or None for any name.
        class_pattern_help: how `class_pattern` reads in a message, e.g. 'NNN.name'.
    """

    root: tuple[str, ...] = ()
    split_folders: tuple[str, ...] = ()
    class_pattern: str | None = None
    class_pattern_help: str = ''

    def place(self, path: str) -> Placement | str:
        """The placement of the file at `path` (below the source), or why it is not an example."""
        parts = path.split('/')
        if is_junk(path):
            return 'hidden file or folder (OS metadata such as .DS_Store, ._*, __MACOSX)'
        if tuple(parts[:len(self.root)]) != self.root:
            return f'outside {"/".join(self.root)}/'
        inner = parts[len(self.root):]
        split = None
        if self.split_folders:
            if len(inner) == 1 or inner[0] not in self.split_folders:
                return f'not inside {" or ".join(f"{s}/" for s in self.split_folders)}'
            split, inner = inner[0], inner[1:]
        if len(inner) == 1:
            return 'not inside a class folder'
        if self.class_pattern and not re.match(self.class_pattern, inner[0]):
            return f'folder is not a class folder {self.class_pattern_help}'
        if len(inner) > 2:
            return f'in a stray subfolder of {inner[0]}/ (only CLASS/IMAGE is read)'
        return Placement('/'.join(parts[len(self.root):]), split, inner[0])

    def class_folder(self, dir_path: str) -> str | None:
        """The class name when `dir_path` is a class folder of this layout, else None."""
        if is_junk(dir_path):
            return None
        parts = dir_path.split('/')
        depth = len(self.root) + (1 if self.split_folders else 0) + 1
        if len(parts) != depth or tuple(parts[:len(self.root)]) != self.root:
            return None
        if self.split_folders and parts[len(self.root)] not in self.split_folders:
            return None
        if self.class_pattern and not re.match(self.class_pattern, parts[-1]):
            return None
        return parts[-1]

    def describe(self) -> str:
        prefix = ''.join(f'{p}/' for p in self.root)
        if self.split_folders:
            return f'{prefix}{{{",".join(self.split_folders)}}}/CLASS/IMAGE (the given splits)'
        return f'{prefix}CLASS/IMAGE (one pool, split by content hash)'


def is_junk(path: str) -> bool:
    """Hidden files and folders and macOS archive metadata: never examples, never classes."""
    return any(p.startswith('.') or p == '__MACOSX' for p in path.split('/'))


def detect(entries: Iterable[members.Entry], source: str) -> Layout:
    """Finds the layout of a user's tree: wrapper folders, then `train/` + `test/` or class folders.

    Raises:
        ValueError: no files, or only one of `train/` and `test/`; the one line names what was found.
    """
    files = [e.path.split('/') for e in entries if not e.is_dir and not is_junk(e.path)]
    if not files:
        raise ValueError(f'--manual_dir={source} holds no files; expected CLASS/IMAGE or '
                         'train/CLASS/IMAGE + test/CLASS/IMAGE')
    root: list[str] = []
    for _ in range(_MAX_WRAPPERS):
        inner = [f[len(root):] for f in files]
        firsts = {f[0] for f in inner if len(f) > 1}
        top_files = [f for f in inner if len(f) == 1]
        if top_files or len(firsts) != 1 or next(iter(firsts)) in SPLIT_FOLDERS:
            break
        root.append(next(iter(firsts)))
    firsts = {f[len(root)] for f in files if len(f) > len(root) + 1}
    given = [s for s in SPLIT_FOLDERS if s in firsts]
    if len(given) == 1:
        where = '/'.join([source.rstrip('/'), *root])
        raise ValueError(f'--manual_dir={source}: {where}/ has {given[0]}/ but no '
                         f'{({"train", "test"} - set(given)).pop()}/; give both (train/CLASS/IMAGE + '
                         'test/CLASS/IMAGE) or put the class folders at the top for one pool split by hash')
    layout = Layout(root=tuple(root), split_folders=SPLIT_FOLDERS if given else ())
    _check_class_names(entries, layout, source)
    return layout


def _check_class_names(entries: Iterable[members.Entry], layout: Layout, source: str) -> None:
    """Refuses a class folder whose name holds a line break or another control character: TFDS stores
    class names one per line (`label.labels.txt`), where such a name would become two classes."""
    depth = len(layout.root) + (1 if layout.split_folders else 0)
    for entry in entries:
        parts = entry.path.split('/')
        if len(parts) <= depth or is_junk(entry.path) or tuple(parts[:len(layout.root)]) != layout.root:
            continue
        name = parts[depth]
        if any(ord(c) < 32 or ord(c) == 127 for c in name):
            raise ValueError(f'--manual_dir={source}: the class folder {name!r} has a line break or another '
                             'control character in its name, which the class-name file (one name per line) '
                             'cannot hold; rename that folder')
