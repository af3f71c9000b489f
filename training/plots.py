"""Accuracy and loss curves per epoch, train vs validation, as the seed reports drew by hand."""

import os

import matplotlib

matplotlib.use('Agg')  # no display on training hosts
import matplotlib.pyplot as plt  # noqa: E402  (backend must be chosen first)


def plot_history(history: list[dict], plot_dir: str) -> list[str]:
    """Writes `accuracy.png` and `loss.png`; returns their paths.

    Args:
      history: one dict per finished epoch with `epoch` and Keras' metric names
        (`accuracy`, `val_accuracy`, `loss`, `val_loss`).
      plot_dir: destination folder (created).
    """
    os.makedirs(plot_dir, exist_ok=True)
    epochs = [row['epoch'] for row in history]
    written = []
    for metric, title in (('accuracy', 'Top-1 accuracy'), ('loss', 'Loss')):
        fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
        for key, label in ((metric, 'train'), (f'val_{metric}', 'validation')):
            values = [row.get(key) for row in history]
            if any(v is not None for v in values):
                ax.plot(epochs, values, marker='o', label=label)
        ax.set_xlabel('epoch')
        ax.set_ylabel(metric)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = os.path.join(plot_dir, f'{metric}.png')
        tmp = path + '.tmp.png'
        try:
            fig.savefig(tmp)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)  # a full disk must not leave a half-written plot
            raise
        finally:
            plt.close(fig)
        written.append(path)
    return written

