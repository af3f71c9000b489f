"""Which rows of every global batch this process feeds, and which examples it reads and caches for them."""

import dataclasses

# `--process_cache`'s resolved values (pipelines/choices.py lists the flag's).
SHARE, WHOLE = 'share', 'whole'


@dataclasses.dataclass(frozen=True)
class ProcessShare:
    """Process `index` of `count` feeds rows [index * B / count, (index + 1) * B / count) of each batch.

    That is the slice a 1-D data-parallel mesh lays on this process's devices (JAX orders the global
    devices by process), so `jax.make_array_from_process_local_data` puts every row where the
    single-process run would have it: the global batch, and with it the training, does not depend on
    how many processes feed it.

    `cache_share` says what the process holds. False: the whole training split, batches drawn from one
    global permutation (any example may land in any row). True: only the examples of its rows (row
    blocks, `train_examples`), batches drawn row by row within each row's block; the order is a function
    of (seed, epoch, step, B) alone, so it too is the same for any number of processes, and a run keeps
    the order it started with when it resumes on another process count.
    """

    index: int = 0
    count: int = 1
    cache_share: bool = False

    def __post_init__(self):
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f'process {self.index} of {self.count}: the index must be in [0, count)')

    def rows(self, batch_size: int) -> slice:
        """The rows of a batch of `batch_size` (a multiple of `count`) this process feeds.

        Raises:
          ValueError: the batch does not split evenly over the processes.
        """
        if batch_size % self.count:
            raise ValueError(f'--batch_size={batch_size} (global) must be a multiple of the {self.count} '
                             f'processes; e.g. --batch_size={max(1, batch_size // self.count) * self.count}')
        per = batch_size // self.count
        return slice(self.index * per, (self.index + 1) * per)

    def train_examples(self, num_examples: int, batch_size: int) -> range:
        """The training examples this process caches: all of them, or (`cache_share`) the contiguous
        blocks of its rows (row r of every batch is drawn from `row_block(r)`)."""
        if not self.cache_share:
            return range(num_examples)
        rows = self.rows(batch_size)
        return range(row_block(rows.start, num_examples, batch_size).start,
                     row_block(rows.stop, num_examples, batch_size).start)

    def eval_examples(self, num_examples: int) -> range:
        """This process's contiguous part of an evaluation split (every example in exactly one part)."""
        return range(self.index * num_examples // self.count, (self.index + 1) * num_examples // self.count)

    def eval_batches(self, num_examples: int, batch_size: int) -> int:
        """How many batches of `batch_size / count` rows every process feeds to evaluate a split of
        `num_examples` (the same count on every process: each batch is one collective step)."""
        per = batch_size // self.count
        largest = -(-num_examples // self.count)
        return -(-largest // per)


def row_block(row: int, num_examples: int, batch_size: int) -> range:
    """The contiguous examples row `row` of every batch is drawn from under `cache_share` (for
    `row == batch_size`: the empty range at the end). Blocks differ in size by at most one."""
    start = row * num_examples // batch_size
    return range(start, (row + 1) * num_examples // batch_size if row < batch_size else start)


ALONE = ProcessShare()
