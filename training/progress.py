"""The in-epoch progress display: one line redrawn on a terminal, nothing on a pipe or file.

Keras' own display is off (`fit(verbose=0)`): it printed every epoch's metrics a second time, and on a
terminal our epoch line landed inside its unfinished bar. This line is erased before the epoch's summary.
"""

import sys
import time

import keras

_REDRAW_S = 0.25  # often enough to look alive, rarely enough to cost nothing


class EpochProgress(keras.callbacks.Callback):
    """Draws `epoch E/N  step S/T  loss L  (elapsed)` on a terminal; erases it at the epoch's end."""

    def __init__(self, epochs: int, stream=None):
        super().__init__()
        self.epochs = epochs
        self.stream = stream or sys.stdout
        self.enabled = self.stream.isatty()
        self._drawn = False

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._start, self._last = epoch, time.monotonic(), 0.0

    def on_train_batch_end(self, batch, logs=None):
        now = time.monotonic()
        if not self.enabled or now - self._last < _REDRAW_S:
            return
        self._last = now
        steps = (self.params or {}).get('steps')
        loss = (logs or {}).get('loss')
        self._draw(f'epoch {self._epoch + 1}/{self.epochs}  step {batch + 1}'
                   f'{f"/{steps}" if steps else ""}{f"  loss {loss:.4f}" if loss is not None else ""}'
                   f'  {now - self._start:.0f} s')

    def on_test_begin(self, logs=None):
        if self.enabled and self._drawn:
            self._draw(f'epoch {self._epoch + 1}/{self.epochs}  validating')

    def on_epoch_end(self, epoch, logs=None):
        self.clear()

    def on_train_end(self, logs=None):
        self.clear()

    def clear(self) -> None:
        if self._drawn:
            self.stream.write('\r\033[K')
            self.stream.flush()
            self._drawn = False

    def _draw(self, text: str) -> None:
        self.stream.write('\r\033[K' + text)
        self.stream.flush()
        self._drawn = True
