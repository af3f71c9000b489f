"""Which rows of every global batch this process feeds: its contiguous slice, in process order."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class ProcessShare:
    """Process `index` of `count` feeds rows [index * B / count, (index + 1) * B / count) of each batch.

    That is the slice a 1-D data-parallel mesh lays on this process's devices (JAX orders the global
    devices by process), so `jax.make_array_from_process_local_data` puts every row where the
    single-process run would have it: the global batch, and with it the training, does not depend on
    how many processes feed it.
    """

    index: int = 0
    count: int = 1

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


ALONE = ProcessShare()
