"""`python -m benchmarks.throughput --ceiling_policies=none,randaugment+mixup --ceiling_json=PATH [train.py flags]`:
the train-step ceiling alone, once per augmentation policy, in one process (`training/throughput.py` measures;
`train.py --benchmark` is the whole loop next to its ceiling).
"""

import json
import time

import keras

from fastclassify.models.precision import resolve_precision
from fastclassify.training import hardware
from fastclassify.training.throughput import measure_ceiling


def ceilings_main(argv) -> int:
    """`python -m benchmarks.throughput --ceiling_policies=none,randaugment+mixup --ceiling_json=PATH [train.py
    flags]`: the train-step ceiling alone (no training loop), once per augmentation policy, in one process.

    What the augmentation share needs (`1 - ceiling(policy) / ceiling(none)`), without `--benchmark`'s real
    loop, which compiles a second step and trains two epochs per policy: on a lent GPU, minutes saved.
    """
    import train  # pylint: disable=import-outside-toplevel  # its flags were defined before parsing
    from absl import flags  # pylint: disable=import-outside-toplevel
    from fastclassify.training import strategy as strategy_lib  # pylint: disable=import-outside-toplevel
    del argv
    flag_values = flags.FLAGS
    train.select_backend()
    report, strategy = {'backend': None, 'device': hardware.summary(), 'ceilings': {}}, None
    for policy in [p for p in flag_values.ceiling_policies.split(',') if p]:
        flag_values.augment = policy
        cfg = train.config_from_flags()
        if strategy is None:
            strategy = strategy_lib.build_strategy(cfg.run.strategy)
        keras.utils.set_random_seed(cfg.run.seed)
        precision = resolve_precision(cfg.run.precision)
        keras.mixed_precision.set_global_policy(precision)
        steps = cfg.run.steps_per_epoch or 20
        start = time.perf_counter()
        row = measure_ceiling(cfg, strategy, steps=steps, warmup=3)
        row['wall_s'] = time.perf_counter() - start
        report['ceilings'][policy] = row
        report.update(backend=keras.backend.backend(), model=cfg.model.name, image_size=cfg.model.image_size,
                      batch_size=cfg.pipeline.batch_size, precision=precision)
        print(f'ceiling with {policy}: {row["images_per_sec"]:,.1f} images/s ({row["wall_s"]:.0f} s with '
              f'compilation)', flush=True)
        keras.backend.clear_session()
    with open(flag_values.ceiling_json, 'w') as f:
        json.dump(report, f, indent=2)
    print(f'wrote {flag_values.ceiling_json}')
    return 0


if __name__ == '__main__':
    from absl import app, flags as absl_flags  # pylint: disable=import-outside-toplevel
    import train  # noqa: F401  # pylint: disable=import-outside-toplevel,unused-import  # train.py's flags
    absl_flags.DEFINE_string('ceiling_policies', 'none', 'Augmentation policies whose ceilings are measured.')
    absl_flags.DEFINE_string('ceiling_json', 'ceilings.json', 'Where the ceilings go.')
    app.run(ceilings_main)
