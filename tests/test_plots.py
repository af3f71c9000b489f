"""The history plots a user would show: whole epochs, what the run is, the test accuracy, honest labels."""

import json

from fastclassify.training import plots

_HISTORY = [{'epoch': 1, 'accuracy': 0.4, 'val_accuracy': 0.6, 'loss': 1.2, 'val_loss': 0.9}]


def test_one_epoch_run_has_whole_epoch_ticks_title_test_point_and_labels():
    figs = dict(plots.figures(_HISTORY, title='digits, cifar_resnet9 (digits-cifar_resnet9)',
                              test={'top1': 0.7}, augmented=True))
    ax = figs['accuracy'].axes[0]
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks
    assert ax.get_xlim()[1] - ax.get_xlim()[0] >= 2  # not a lone dot on 0.96..1.04
    assert ax.get_ylim() == (0.0, 1.02)
    assert 'digits, cifar_resnet9' in ax.get_title()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ['train (augmented batches)', 'validation', 'test 0.700'], labels
    loss_labels = [t.get_text() for t in figs['loss'].axes[0].get_legend().get_texts()]
    assert not any(label.startswith('test') for label in loss_labels)


def test_plot_history_titles_from_the_run_config_and_writes_both(tmp_path):
    run = tmp_path / 'digits-cifar_resnet9'
    run.mkdir()
    (run / 'config.json').write_text(json.dumps({
        'source': {'dataset': 'folder', 'manual_dir': '/data/digits/'}, 'model': {'name': 'cifar_resnet9'},
        'augment': {'policy': 'none'}}))
    paths = plots.plot_history(_HISTORY, str(run / 'plots'), test={'top1': 0.5})
    assert sorted(p.rsplit('/', 1)[1] for p in paths) == ['accuracy.png', 'loss.png']
    assert plots.run_title(json.loads((run / 'config.json').read_text()), str(run)) == (
        'digits, cifar_resnet9 (digits-cifar_resnet9)')
    figs = dict(plots.figures(_HISTORY, augmented=False))
    assert [t.get_text() for t in figs['accuracy'].axes[0].get_legend().get_texts()][0] == 'train'
