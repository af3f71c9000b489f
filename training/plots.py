"""Accuracy and loss curves per epoch, train vs validation, as the seed reports drew by hand."""

import json
import os

import matplotlib

matplotlib.use('Agg')  # no display on training hosts
import matplotlib.pyplot as plt  # noqa: E402  (backend must be chosen first)
from matplotlib.ticker import MaxNLocator  # noqa: E402


def plot_history(history: list[dict], plot_dir: str, *, title: str | None = None,
                 test: dict | None = None) -> list[str]:
    """Writes `accuracy.png` and `loss.png`; returns their paths.

    Args:
      history: one dict per finished epoch with `epoch` and Keras' metric names
        (`accuracy`, `val_accuracy`, `loss`, `val_loss`).
      plot_dir: destination folder (created).
      title: what the run is, e.g. 'digits, cifar_resnet9 (digits-cifar_resnet9)'; None reads it from the
        run's config.json next to `plot_dir` when there is one.
      test: the run's results (`top1`), marked on the accuracy plot at the last epoch.
    """
    os.makedirs(plot_dir, exist_ok=True)
    run_path = os.path.dirname(os.path.abspath(plot_dir))
    config = _config(run_path)
    title = run_title(config, run_path) if title is None else title
    augmented = config.get('augment', {}).get('policy', 'none') != 'none' if config else True
    written = []
    for metric, fig in figures(history, title=title, test=test, augmented=augmented):
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


def figures(history: list[dict], *, title: str = '', test: dict | None = None, augmented: bool = True):
    """Yields ('accuracy' | 'loss', figure) for `history` (see `plot_history`)."""
    epochs = [row['epoch'] for row in history]
    for metric, name in (('accuracy', 'Top-1 accuracy'), ('loss', 'Loss')):
        fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
        # Train metrics are measured on augmented batches while the weights change, so they can sit below
        # validation: the label says so.
        train = 'train (augmented batches)' if augmented else 'train'
        for key, label in ((metric, train), (f'val_{metric}', 'validation')):
            values = [row.get(key) for row in history]
            if any(v is not None for v in values):
                ax.plot(epochs, values, marker='o', label=label)
        if metric == 'accuracy' and test and test.get('top1') is not None and epochs:
            ax.plot([epochs[-1]], [test['top1']], marker='*', markersize=14, linestyle='none',
                    label=f'test {test["top1"]:.3f}')
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
        ax.set_xlim(0.5, max(max(epochs, default=1), 2) + 0.5)  # one or two epochs still get a readable axis
        if metric == 'accuracy':
            ax.set_ylim(0.0, 1.02)
        ax.set_xlabel('epoch')
        ax.set_ylabel(metric)
        ax.set_title(f'{name}: {title}' if title else name, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        yield metric, fig


def _config(run_path: str) -> dict:
    try:
        with open(os.path.join(run_path, 'config.json')) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def run_title(config: dict, run_path: str) -> str:
    """'DATASET, MODEL (RUN FOLDER)' from a run's config (a folder dataset by its folder's name)."""
    try:
        source = config['source']
        dataset = source['dataset']
        if dataset == 'folder' and source.get('manual_dir'):
            dataset = os.path.basename(os.path.normpath(source['manual_dir']))
        return f'{dataset}, {config["model"]["name"]} ({os.path.basename(run_path)})'
    except (KeyError, TypeError):
        return ''
