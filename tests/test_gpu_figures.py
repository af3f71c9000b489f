"""benchmarks.gpu_figures: figures derived from the runs' reports, plans that fit Keras, and a smoke part end to end."""

import json
import os
import subprocess
import sys

import pytest

from benchmarks import gpu_data
from benchmarks import gpu_figures as gf
from tests.conftest import long_test, ROOT



def _benchmark_report(ceiling: float, end_to_end: float) -> dict:
    return {'results': [{'name': 'train_step_ceiling_on_device', 'images_per_sec': ceiling},
                        {'name': 'train_end_to_end', 'images_per_sec': end_to_end}],
            'end_to_end_over_ceiling': end_to_end / ceiling, 'input_wait_share': 0.01,
            'precision': 'mixed_bfloat16'}


def _ok(report: dict) -> dict:
    return {'status': 'ok', 'report': report}


def test_figures_from_reports_ratio_share_epoch_and_input():
    s = gf.FULL
    steady = {'epochs': 2, 'steps': 200, 'epoch_seconds': 1.8,
              'seconds': {'train_steps': 1.6, 'callbacks': 0.2}}
    runs = {
        gf.big_benchmark_name(s): _ok(_benchmark_report(1000.0, 980.0)),
        gf.ceilings_name(s): _ok({'ceilings': {'none': {'images_per_sec': 1000.0},
                                               'randaugment+mixup': {'images_per_sec': 900.0}}}),
        gf.epoch_name(500, 'auto', 'device'): _ok({'epoch_time': {'steady_state': steady}, 'top1': 0.9}),
        'input_caltech': _ok({'image_size': 224, 'batch_size': 128, 'cpu_count': 16,
                              'results': [{'name': 'ours_first_epoch', 'images_per_sec': 850.0, 'images': 2000},
                                          {'name': 'ours_cached_epoch', 'images_per_sec': 9000.0}],
                              'notes': {'cores_x_one_thread_decode': 1000.0}}),
        'input_cifar': _ok({'image_size': 32, 'batch_size': 512, 'cpu_count': 16, 'notes': {}, 'results': [
            {'name': 'ours_device_cache', 'images_per_sec': 2e7, 'images': 10**8, 'seconds': 5.0}]}),
        gf.epoch_name(500, 1, 'device'): {'status': 'timeout'},  # a run that did not finish has no figure
    }
    figures = {f['name']: f for f in gf.compute_figures(runs, s)}
    assert [f['part'] for f in figures.values()][:3] == ['epoch', 'epoch', 'models']  # the parts' order
    ratio = next(f for f in figures.values() if f['name'].endswith('end-to-end / ceiling'))
    assert round(ratio['value'], 3) == 0.98 and ratio['meets'] is True
    share = {f['name'].rsplit(': ', 1)[1]: f for f in figures.values() if f['part'] == 'augment'}
    # 1 - 900/1000: the step is 10% longer with the policy; seed's ceiling is the Caltech benchmark's.
    assert share['randaugment+mixup']['value'] == pytest.approx(0.1) and share['randaugment+mixup']['meets'] is False
    assert share['seed']['value'] == pytest.approx(0.0) and gf.big_benchmark_name(s) in share['seed']['runs']
    epochs = {f['name'].rsplit(': ', 1)[1]: f for f in figures.values() if f['part'] == 'epoch'}
    assert epochs['all callbacks']['value'] == pytest.approx(0.9) and epochs['all callbacks']['meets'] is True
    assert epochs['train steps alone']['value'] == pytest.approx(0.8)
    assert '50,000 images/epoch' in epochs['all callbacks']['detail']
    first = next(f for f in figures.values() if f['name'].startswith('Caltech-shaped first epoch'))
    assert first['value'] == pytest.approx(0.85) and first['meets'] is True
    gather = next(f for f in figures.values() if f['name'].startswith('device-cache gather'))
    assert gather['meets'] is True and '512' in gather['name']
    assert any('host pipeline, cached epoch (memory cache), 224 px b128, 16 cores' in name for name in figures)
    table = gf.format_table({'figures': list(figures.values()), 'parts': {}, 'runs': runs,
                             'budget': gf.budget_plan()})
    assert 'MISSES' in table and '10.0%' in table
    assert 'not measured: ' + gf.epoch_name(500, 1, 'device') in table and ': fits' in table


def test_the_full_plan_fits_one_call_in_the_lease_after_staging():
    plan = gf.budget_plan()
    assert list(plan['parts_s']) == list(gf.PARTS) == ['epoch', 'models', 'augment', 'input']
    assert plan['sum_s'] == plan['probe_s'] + sum(plan['parts_s'].values())
    assert plan['fits'] and plan['sum_s'] <= plan['measurement_s'] <= gf.LEASE.lease_s - gf.LEASE.staging_s
    assert plan['sum_s'] < plan['call_limit_s']  # one device call holds it all
    assert not gf.budget_plan(gf.Lease(staging_s=500.0))['fits']


@pytest.mark.parametrize('sizes', [gf.FULL, gf.SMOKE], ids=['full', 'smoke'])
def test_every_steps_per_execution_divides_its_epoch(sizes):
    # Keras rounds an epoch up to whole executions: a remainder would train steps beyond the epoch (auto
    # picks a divisor itself).
    for batch, steps_per_execution, _ in sizes.epoch_runs:
        if steps_per_execution != 'auto':
            assert (sizes.cifar_train // batch) % steps_per_execution == 0, (batch, steps_per_execution)


def test_plans_name_the_prepared_data_and_one_report_per_run(tmp_path):
    data = {'caltech256': gpu_data.PreparedData('caltech256', '/d/caltech', {'train': 800, 'test': 228}, 0, True),
            'cifar100': gpu_data.PreparedData('cifar100', '/d/cifar', {'train': 320, 'test': 64}, 0, True)}
    runs = [run for part in gf.PARTS for run in gf.plan(part, gf.SMOKE, str(tmp_path), data)]
    assert len({run.name for run in runs}) == len({run.report for run in runs}) == len(runs)
    caltech = next(run for run in runs if run.name == 'input_caltech')
    assert '--data_dir=/d/caltech' in caltech.argv and '--examples=800' in caltech.argv
    for run in runs:
        if run.argv[0] == 'train.py':
            assert '--weights=none' in run.argv  # offline: no ImageNet download
            assert '--synthetic_data' in run.argv or '--nodownload' in run.argv


def test_bad_part_is_one_line_naming_the_choices(tmp_path):
    with pytest.raises(ValueError, match=r"--part='epochs' is not valid; valid: all, epoch, models, augment, input"):
        gf.FiguresConfig(out=str(tmp_path / 'x.json'), parts=('epochs',))


@pytest.mark.slow
@long_test(70)
def test_smoke_epoch_part_writes_one_json_and_a_second_call_merges(tmp_path):
    out = tmp_path / 'gpu.json'
    env = dict(os.environ, KERAS_BACKEND='jax', TF_CPP_MIN_LOG_LEVEL='2')
    command = [sys.executable, '-m', 'benchmarks.gpu_figures', '--part=epoch', '--smoke', f'--out={out}',
               f'--work_dir={tmp_path / "work"}']
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc['smoke'] and doc['backend'] == 'jax' and doc['hardware']['cpu']['cores'] == os.cpu_count()
    assert doc['hardware']['versions']['keras'] and doc['parts']['epoch']['status'] == 'done'
    assert doc['budget']['fits'] and doc['budget']['parts_s']['epoch'] == gf.FULL.budget['epoch']
    assert 'device-time plan' in proc.stdout
    names = [gf.epoch_name(*run) for run in gf.SMOKE.epoch_runs]
    for name in names:
        run = doc['runs'][name]
        assert run['status'] == 'ok' and run['wall_s'] > 0
        assert run['command'].startswith('KERAS_BACKEND=jax python train.py --dataset=cifar100')
        assert run['report']['optimizer_iterations'] == gf.SMOKE.epochs * gf.SMOKE.cifar_train // int(
            name.split('_b')[1].split('_')[0])
    epochs = [f for f in doc['figures'] if f['part'] == 'epoch']
    assert len(epochs) == 2 * len(names) and all(f['value'] > 0 for f in epochs)
    assert 'cifar_resnet9 epoch, batch 32' in proc.stdout  # the printed table

    # The same call again merges into the JSON: measured runs are kept, not measured again.
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count('measured already on this device') == len(names)
    again = json.loads(out.read_text())
    assert len(again['invocations']) == 2 and again['runs'] == doc['runs']
