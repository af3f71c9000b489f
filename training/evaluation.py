"""Final evaluation on the test split: top-1, top-5, mean per-class accuracy, worst classes."""

import numpy as np
import tensorflow as tf


class CountMismatchError(Exception):
    """The evaluation saw a different number of examples than the split holds."""


def classification_report(probabilities: np.ndarray, labels: np.ndarray,
                          class_names: tuple[str, ...] | list[str], *, worst: int = 10) -> dict:
    """Computes the metrics the papers report from predicted probabilities.

    Args:
      probabilities: [N, C] predicted class probabilities.
      labels: [N] integer labels.
      class_names: C names, for the worst-class list.
      worst: how many of the lowest-accuracy classes to list.

    Returns:
      dict with `top1`, `top5`, `mean_per_class_accuracy` (the Caltech papers' metric: accuracy
      averaged over classes present in the split), `num_examples`, `num_classes_present`,
      `worst_classes` (name, index, accuracy, count).
    """
    labels = labels.astype(np.int64)
    k = min(5, probabilities.shape[1])
    top_k = np.argsort(-probabilities, axis=1)[:, :k]
    correct1 = top_k[:, 0] == labels
    correct5 = (top_k == labels[:, None]).any(axis=1)
    present = np.unique(labels)
    per_class = {int(c): float(correct1[labels == c].mean()) for c in present}
    order = sorted(per_class, key=lambda c: (per_class[c], c))[:worst]
    return {
        'top1': float(correct1.mean()),
        'top5': float(correct5.mean()),
        'mean_per_class_accuracy': float(np.mean(list(per_class.values()))),
        'num_examples': int(labels.shape[0]),
        'num_classes_present': int(present.size),
        'worst_classes': [
            {'name': class_names[c] if c < len(class_names) else str(c), 'index': c,
             'accuracy': per_class[c], 'count': int((labels == c).sum())} for c in order],
    }


def evaluate(model, dataset: tf.data.Dataset, *, num_examples: int,
             class_names: tuple[str, ...] | list[str]) -> dict:
    """Predicts every test example exactly once and reports the metrics.

    Raises:
      CountMismatchError: when the dataset did not yield exactly `num_examples` examples.
    """
    return report(((model.predict_on_batch(images), labels.numpy()) for images, labels in dataset),
                  num_examples=num_examples, class_names=class_names)


def report(batches, *, num_examples: int, class_names: tuple[str, ...] | list[str]) -> dict:
    """`classification_report` of (probabilities [B, C], labels [B]) batches, checking their count.

    Raises:
      CountMismatchError: when the batches held other than `num_examples` examples.
    """
    probabilities, labels = [], []
    for batch_probabilities, batch_labels in batches:
        probabilities.append(np.asarray(batch_probabilities, dtype=np.float32))
        labels.append(np.asarray(batch_labels))
    probabilities = np.concatenate(probabilities) if probabilities else np.zeros((0, 1))
    labels = np.concatenate(labels) if labels else np.zeros((0,), np.int64)
    if labels.shape[0] != num_examples:
        raise CountMismatchError(
            f'evaluation saw {labels.shape[0]} examples, the split has {num_examples}')
    return classification_report(probabilities, labels, class_names)
