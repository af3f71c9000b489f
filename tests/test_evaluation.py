"""Final-evaluation metrics against hand-computed values."""

import numpy as np
import pytest
import tensorflow as tf

from fastclassify.training import evaluation


def test_report_matches_hand_computed_metrics():
    # 3 classes; class 0: 2/2 right, class 1: 1/2 right, class 2: 0/1 right (but in its top-2).
    probabilities = np.array([
        [0.8, 0.1, 0.1],
        [0.6, 0.3, 0.1],
        [0.1, 0.7, 0.2],
        [0.5, 0.4, 0.1],
        [0.5, 0.1, 0.4],
    ])
    labels = np.array([0, 0, 1, 1, 2])
    report = evaluation.classification_report(probabilities, labels, ['a', 'b', 'c'], worst=2)
    assert report['top1'] == pytest.approx(3 / 5)
    assert report['top5'] == pytest.approx(1.0)  # k is capped at the number of classes
    assert report['mean_per_class_accuracy'] == pytest.approx((1 + 0.5 + 0) / 3)
    assert report['num_examples'] == 5
    assert [w['name'] for w in report['worst_classes']] == ['c', 'b']
    assert report['worst_classes'][1] == {'name': 'b', 'index': 1, 'accuracy': 0.5, 'count': 2}


def test_top5_counts_only_the_five_best():
    probabilities = np.tile(np.linspace(1.0, 0.1, 10), (2, 1))  # class 0 best ... class 9 worst
    report = evaluation.classification_report(probabilities, np.array([4, 5]), [str(i) for i in range(10)])
    assert report['top5'] == pytest.approx(0.5)
    assert report['top1'] == 0.0


class _Echo:
    """A 'model' that predicts the one-hot of a label hidden in the image's first pixel."""

    def predict_on_batch(self, images):
        return tf.one_hot(tf.cast(images[:, 0, 0, 0], tf.int32), 4).numpy()


def test_evaluate_counts_every_example_once_and_checks_the_count():
    labels = np.arange(10) % 4
    images = np.zeros((10, 2, 2, 3), np.uint8)
    images[:, 0, 0, 0] = labels
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(3)  # partial last batch
    report = evaluation.evaluate(_Echo(), dataset, num_examples=10, class_names=list('abcd'))
    assert report['num_examples'] == 10 and report['top1'] == 1.0
    with pytest.raises(evaluation.CountMismatchError):
        evaluation.evaluate(_Echo(), dataset, num_examples=11, class_names=list('abcd'))
