"""One pass over the archive: hash and decode every candidate image in parallel, record what is skipped."""

import collections
import concurrent.futures
import dataclasses
import os
from typing import Callable

from etils import epath

from pipelines.caltech256 import archive
from pipelines.caltech256 import images


@dataclasses.dataclass(frozen=True)
class ScannedFile:
    """A decodable image: where it is, its class folder and what to store."""

    path: str
    class_dir: str
    examined: images.Examined


@dataclasses.dataclass(frozen=True)
class ScanResult:
    """Everything the split assignment and the metadata need.

    Attributes:
        files: decodable images of the included classes, in archive order.
        class_dirs: included class folders, sorted (folder `NNN.` prefixes give the label order).
        skipped: (archive member name, reason) for every member that will not become an example.
    """

    files: list[ScannedFile]
    class_dirs: list[str]
    skipped: list[tuple[str, str]]


def scan(archive_path: epath.PathLike, *, include_class: Callable[[str], bool],
         num_threads: int | None = None) -> ScanResult:
    """Reads the archive once, decoding images on a thread pool while the tar streams in.

    Args:
        archive_path: the tar.
        include_class: whether a class folder belongs to the builder config (e.g. no clutter).
        num_threads: decode threads; default one per CPU (decoders release the GIL).

    Returns:
        The scan result. A bad file is recorded in `skipped` and never aborts the pass.
    """
    num_threads = num_threads or os.cpu_count() or 1
    files: list[ScannedFile] = []
    skipped: list[tuple[str, str]] = []
    class_dirs: set[str] = set()
    seen: set[str] = set()
    # Bounded so memory stays at a few dozen images however large the archive is.
    pending: collections.deque = collections.deque()
    max_pending = 4 * num_threads

    def finish_one():
        path, class_dir, future = pending.popleft()
        try:
            files.append(ScannedFile(path, class_dir, future.result()))
        except images.UndecodableImageError as e:
            skipped.append((f'{archive.ROOT}/{path}', str(e)))

    with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
        for item in archive.iter_archive(archive_path):
            if isinstance(item, archive.SkippedMember):
                skipped.append((item.path, item.reason))
                continue
            if not include_class(item.class_dir):
                continue  # excluded by the config, not a bad file
            class_dirs.add(item.class_dir)
            if item.path in seen:
                # A tar may repeat a name; only the first copy is used, in both passes.
                skipped.append((f'{archive.ROOT}/{item.path}', 'repeated member name (first copy used)'))
                continue
            seen.add(item.path)
            pending.append((item.path, item.class_dir, pool.submit(images.examine, item.data)))
            while len(pending) > max_pending:
                finish_one()
        while pending:
            finish_one()
    return ScanResult(files=files, class_dirs=sorted(class_dirs), skipped=skipped)
