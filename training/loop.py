"""One training run, start to finish: data, model, fit (resumable), final evaluation, records."""

import dataclasses
import hashlib
import json
import os
import shutil
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from fastclassify.models.builder import build_model, set_backbone_trainable
from fastclassify.models.precision import apply_precision, resolve_jit_compile
from fastclassify.pipelines import folder_lock, sharding, sources
from fastclassify.pipelines.augment import Augmenter
from fastclassify.pipelines.pipeline import Inputs, build_inputs, build_synthetic_inputs
from fastclassify.training import (backup, callbacks, evaluation, execution, multiprocess, progress,
                                   strategy as strategy_lib, time_split)
from fastclassify.training.batch_size import find_max_batch_size, is_out_of_memory
from fastclassify.training.config import TrainConfig
from fastclassify.training.optimizers import build_optimizer, ema_callbacks
from fastclassify.pipelines.disk_space import is_disk_full
from fastclassify.training.plots import plot_history
from fastclassify.training.run_dir import (DiskFullError, RunDir, disk_full_message, remove_temporaries,
                                           write_json_atomic)
from fastclassify.training.trainer import Trainer, training_stream


class TrainingError(Exception):
    """A run that cannot go on; the message is one line and says what to do."""


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """How the run ended: `finished`, `already_finished` or `preempted` (a non-finite loss raises)."""

    status: str
    results: dict | None
    model_dir: str


def job_name_for(cfg: TrainConfig, suffix: str = '') -> str:
    """A tf.data service job name every trainer of one run computes alike, and different runs do not share.

    The config (model_dir included) identifies the run; pass `suffix` (e.g. the resumed global step)
    so a resumed run starts a fresh job instead of joining the old run's half-consumed one.
    """
    digest = hashlib.sha256(cfg.to_json().encode()).hexdigest()[:12]
    return f'{cfg.source.dataset}-{digest}{"-" + suffix if suffix else ""}'


def load_inputs(cfg: TrainConfig, *, input_context=None, job_suffix: str = '',
                share: sharding.ProcessShare = sharding.ALONE) -> Inputs:
    """Prepares the dataset (or synthetic tensors) and builds the cached pipelines; with several JAX
    processes, the training stream carries this process's `share` of every global batch.

    With `--data_service`, the training stream comes from the tf.data service workers instead
    (they read, decode and batch); validation and test stay local.
    """
    # Resolved under --config and --data_dir, as train.py resolved it (caltech256 paper60: 256 classes).
    spec = sources.dataset_spec(cfg.source)
    builder = None
    if cfg.run.synthetic_data:
        inputs = build_synthetic_inputs(spec, cfg.pipeline, share=share)
    else:
        builder = sources.prepare(cfg.source)
        # Counted as a reader until this process exits: a preparer then never deletes the data under it.
        folder_lock.register_reader(os.path.dirname(os.fspath(builder.data_dir)))
        inputs = build_inputs(builder, spec, cfg.pipeline, input_context=input_context, share=share)
        inputs = dataclasses.replace(inputs, data_identity=sources.data_identity(builder))
    if cfg.run.data_service:
        from fastclassify.pipelines import data_service  # pylint: disable=import-outside-toplevel
        service = data_service.ServiceConfig(
            address=cfg.run.data_service, mode=cfg.run.data_service_mode,
            job_name=job_name_for(cfg, job_suffix), stall_timeout_s=cfg.run.data_service_stall_timeout_s)
        if share.count > 1 and input_context is None:
            # Several JAX processes: each is a consumer of the same job, receiving its rows' worth
            # (global batch / processes) of every batch.
            input_context = tf.distribute.InputContext(share.count, share.index, share.count)
        train = data_service.distribute_train(service, cfg.source.dataset, cfg.pipeline, builder,
                                              input_context=input_context)
        # The service sends images, not indices into a device cache, and it cannot start mid-way.
        inputs = dataclasses.replace(inputs, train_from=lambda start_step: train, device_cache=None,
                                     resumes_in_place=False)
    return inputs


def compile_trainer(trainer: Trainer, cfg: TrainConfig, optimizer, jit_compile: bool) -> None:
    """Compiles with the run's loss and metrics; `--steps_per_execution=auto` compiles 1 (resolved later)."""
    trainer.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.run.label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name='accuracy'),
                 keras.metrics.TopKCategoricalAccuracy(k=5, name='top5')],
        jit_compile=jit_compile,
        steps_per_execution=_fixed_steps_per_execution(cfg),
    )


def _fixed_steps_per_execution(cfg: TrainConfig) -> int:
    """The flag's number, or 1 for `auto` (the warm-up runs one step per call)."""
    setting = cfg.run.steps_per_execution
    return 1 if setting == execution.AUTO else setting


def _resolve_batch_size(cfg: TrainConfig, replicas: int) -> TrainConfig:
    if not cfg.run.auto_batch_size:
        return cfg
    per_replica = find_max_batch_size(lambda: build_model(cfg.model), cfg.model.image_size,
                                      cfg.model.num_classes)
    batch = per_replica * replicas
    print(f'--batch_size=auto: the largest batch that fits is {per_replica} per replica, '
          f'{batch} global', flush=True)
    return dataclasses.replace(cfg, pipeline=dataclasses.replace(cfg.pipeline, batch_size=batch))


def run(cfg: TrainConfig, strategy: tf.distribute.Strategy | None = None) -> RunOutcome:
    """Trains per `cfg`, resuming from `--model_dir` when a backup is there.

    Raises:
      RunDirError, TrainingError, sources.DataMissingError, WeightsError: one-line problems.
    """
    # Collective ops (multi-worker) must be configured before anything else touches the runtime.
    strategy = strategy or strategy_lib.build_strategy(cfg.run.strategy)
    chief = strategy_lib.is_chief(strategy)
    run_dir = RunDir(cfg.run.model_dir)
    run_dir.check_writable()
    keras.utils.set_random_seed(cfg.run.seed)
    if cfg.run.deterministic:
        tf.config.experimental.enable_op_determinism()
    precision = apply_precision(cfg.run.precision)
    jit_compile = resolve_jit_compile(cfg.run.jit_compile)

    try:
        # Several JAX processes: each feeds (and gathers) only its rows of every global batch.
        share = multiprocess.process_share()
    except multiprocess.LayoutError as e:
        raise TrainingError(str(e)) from None
    cfg, share, process_cache_reason = _process_cache(cfg, share, run_dir)
    train_cfg = _resolve_batch_size(cfg, strategy_lib.num_replicas(strategy))
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    try:
        # Each worker reads and caches only its shard of the training split.
        context = (strategy_lib.input_context(strategy, train_cfg.pipeline.batch_size)
                   if multi_worker else None)
        started = time.perf_counter()
        inputs = load_inputs(train_cfg, input_context=context,
                             job_suffix=f'step{backup.latest_step(run_dir.backup) or 0}', share=share)
        if multi_worker:
            # Validation/test unsharded (Keras shards them); training pre-sharded per worker.
            local = load_inputs(dataclasses.replace(
                train_cfg, run=dataclasses.replace(train_cfg.run, data_service='')))
            inputs = dataclasses.replace(
                inputs, validation=local.validation, test=local.test,
                num_validation=local.num_validation, num_test=local.num_test)
    except ValueError as e:
        # The pipeline names the flag whose value does not fit the data (e.g. batch > split).
        logging.debug('input pipeline refused the config', exc_info=True)
        raise TrainingError(str(e)) from None
    except tf.errors.DataLossError as e:
        raise _data_loss(cfg, e) from None
    batch_size = train_cfg.pipeline.batch_size  # the pipeline refused one larger than the split
    # `auto` picks a k that divides the epoch, so the split's whole epoch stays.
    steps_per_epoch = cfg.run.steps_per_epoch or _whole_executions(inputs.steps_per_epoch,
                                                                   _fixed_steps_per_execution(cfg))
    # Preparation (first run) and the one decode into the cache: what a restart costs before step 1.
    print(f'data: {inputs.num_train} train / {inputs.num_validation} validation / '
          f'{inputs.num_test} test examples; {inputs.cache_decision}; inputs ready in '
          f'{time.perf_counter() - started:.1f} s', flush=True)
    replicas = strategy_lib.num_replicas(strategy)
    print(f'batch: {batch_size} global, {batch_size // replicas} per replica '
          f'on {replicas} replica(s); {steps_per_epoch} steps/epoch; '
          f'precision {precision}; jit_compile {jit_compile}; backend {keras.backend.backend()}',
          flush=True)

    if share.count > 1:
        rows, mine = share.rows(batch_size), share.train_examples(inputs.num_train, batch_size)
        held = (f'its share of the training split, examples {mine.start}..{mine.stop - 1} ({len(mine)} of '
                f'{inputs.num_train})' if share.cache_share else 'the whole training split')
        print(f'process {share.index} of {share.count}: feeds rows {rows.start}..{rows.stop - 1} of each '
              f'global batch, gathered from its own cache of {held}; --process_cache='
              f'{cfg.pipeline.process_cache}: {process_cache_reason}', flush=True)
    plan = _Plan(train_cfg, inputs, strategy, steps_per_epoch, jit_compile, share)
    if not chief:
        if os.path.exists(run_dir.results):  # the chief says so and returns; so do the others
            return RunOutcome('already_finished', evaluation_results(run_dir), run_dir.path)
        return _train_non_chief(plan, run_dir)
    state = run_dir.claim(cfg, data_identity=inputs.data_identity)
    if state == 'finished':
        results = evaluation_results(run_dir)
        print(f'{run_dir.path} already holds a finished run (results.json); nothing to train. '
              f'top1={results.get("top1")}', flush=True)
        return RunOutcome('already_finished', results, run_dir.path)
    try:
        return _train(plan, run_dir, chief=True)
    except tf.errors.UnknownError as e:
        run_dir.abandon()
        stalled = [line for line in str(e).splitlines() if 'DataServiceStalledError' in line]
        if stalled:
            raise TrainingError(stalled[0].strip()) from None
        raise
    except tf.errors.DataLossError as e:
        run_dir.abandon()
        raise _data_loss(cfg, e) from None
    except Exception as e:  # pylint: disable=broad-except
        if is_disk_full(e) and not isinstance(e, DiskFullError):  # a backup's own line says more
            raise _disk_full(run_dir) from None
        run_dir.abandon()
        if not is_out_of_memory(e):
            raise
        raise TrainingError(
            f'out of memory at --batch_size={batch_size} ({str(e).splitlines()[0][:120]}); '
            'try --batch_size=auto or a smaller --batch_size') from None
    except BaseException:
        run_dir.abandon()
        raise


def _process_cache(cfg: TrainConfig, share: sharding.ProcessShare, run_dir: RunDir
                   ) -> tuple[TrainConfig, sharding.ProcessShare, str]:
    """Resolves `--process_cache=auto` (the config then records `share` or `whole`) and says why.

    A new run on several processes shares: each process reads, decodes and holds 1/P of the training
    split, P times less preparation and memory than all of it (BUILD.md, "Several JAX processes"), at
    the same step time. One process holds everything. A resumed run keeps the batch order it started
    with (`share` and `whole` draw batches differently), on any number of processes. Every process
    decides alike: `--model_dir` is shared storage, and process 0 writes the choice there.
    """
    setting = cfg.pipeline.process_cache
    saved = None if cfg.run.overwrite else run_dir.saved_setting('pipeline', 'process_cache',
                                                                 before_it_existed=sharding.WHOLE)
    if setting != 'auto':
        choice, reason = setting, 'as set'
    elif saved in (sharding.SHARE, sharding.WHOLE):
        choice, reason = saved, f'the run in {run_dir.path} started so, and a resume keeps its batch order'
    elif share.count > 1:
        choice, reason = sharding.SHARE, (f'a new run on {share.count} processes: each reads and decodes '
                                          f'1/{share.count} of the training split')
    else:
        choice, reason = sharding.WHOLE, 'one process'
    cfg = dataclasses.replace(cfg, pipeline=dataclasses.replace(cfg.pipeline, process_cache=choice))
    return cfg, dataclasses.replace(share, cache_share=choice == sharding.SHARE), reason


def _disk_full(run_dir: RunDir) -> DiskFullError:
    """A write of the run's records (checkpoint, history, plot, log) found the disk full: no temporary
    file is left, and the line says which backup a rerun resumes from."""
    backup.close_h5_files_under(run_dir.path)
    remove_temporaries(run_dir.path)
    step = backup.latest_step(run_dir.backup)
    intact = ('no backup was saved yet, so a rerun starts from step 0' if step is None else
              f'the backup at global step {step} in {run_dir.backup} is intact')
    return DiskFullError(disk_full_message(run_dir.path, 'writing the run\'s records', None, intact))


def _data_loss(cfg: TrainConfig, error: tf.errors.DataLossError) -> Exception:
    """A corrupt record (a cache decodes it, or `--cache=none` reads it in fit): one line naming the
    file and the command that prepares the dataset again; the error itself when no file is to blame."""
    message = sources.explain_data_loss(cfg.source, error)
    return error if message is None else TrainingError(message)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What every part of the training reads: the resolved config, its inputs and where it runs."""

    cfg: TrainConfig
    inputs: Inputs
    strategy: tf.distribute.Strategy
    steps_per_epoch: int
    jit_compile: bool
    share: sharding.ProcessShare = sharding.ALONE


@dataclasses.dataclass(frozen=True)
class _Callbacks:
    """The run's callbacks, by role, and the one Keras runs (it runs and times them all)."""

    backup: backup.BackupCallback
    nan: callbacks.NonFiniteLossCallback
    history: callbacks.HistoryCallback
    probe: time_split.InputProbe
    timed: time_split.TimedCallbacks


def _whole_executions(steps: int, steps_per_execution: int) -> int:
    """An epoch of whole `steps_per_execution` calls (Keras rounds a partial one up, which would train
    more steps than the run counts). The stream runs on regardless, so no batch is skipped: epochs of
    training then drift against the data's per-epoch permutations by the few steps cut off."""
    whole = steps - steps % steps_per_execution
    if whole == 0:
        raise TrainingError(f'--steps_per_execution={steps_per_execution} is larger than the {steps} '
                            'steps of an epoch; use a smaller --steps_per_execution')
    return whole


def _train_non_chief(plan: _Plan, run_dir: RunDir) -> RunOutcome:
    """A non-chief worker: trains in lockstep, restores from the chief's backup, writes only to a
    private temporary folder (every worker must take part in saves), which it removes at the end."""
    out = strategy_lib.worker_dir(run_dir.path, plan.strategy)
    try:
        private = RunDir(out)
        private.backup = os.path.join(out, 'backup')
        outcome = _train(plan, private, chief=False, restore_from=run_dir.backup)
    finally:
        strategy_lib.remove_worker_dir(out, run_dir.path)
    # Its state is the chief's backup: the private folder is gone.
    return dataclasses.replace(outcome, model_dir=run_dir.path) if outcome.status == 'preempted' else outcome


def _train(plan: _Plan, run_dir: RunDir, *, chief: bool, restore_from: str | None = None) -> RunOutcome:
    """Build, restore, the fit phases, then the final evaluation and records."""
    classifier, trainer = _build(plan)
    restore_from = restore_from or run_dir.backup
    global_step, frozen = _restore(plan, classifier, trainer, restore_from, run_dir)
    steps_per_execution = _resolve_steps_per_execution(plan, trainer, global_step)
    cbs = _callbacks(plan, run_dir, classifier, chief=chief, global_step=global_step)
    with multiprocess.sigterm_finishes():
        _fit_phases(plan, classifier, trainer, cbs, frozen=frozen, steps_per_execution=steps_per_execution)
        print(cbs.timed.total.line(), flush=True)

        if cbs.nan.tripped_at is not None:
            raise TrainingError(backup.non_finite_loss_message(
                run_dir.backup, run_dir.checkpoints, epoch=cbs.backup.global_step // plan.steps_per_epoch + 1,
                learning_rate=plan.cfg.optimizer.learning_rate))
        if cbs.backup.preempted:
            return RunOutcome('preempted', None, run_dir.path)
        return _finish(plan, classifier, trainer, cbs, run_dir, chief=chief)


def _build(plan: _Plan) -> tuple[keras.Model, Trainer]:
    """The classifier and the Trainer around it (augmenter, device cache), built under the strategy."""
    with plan.strategy.scope():
        classifier = build_model(plan.cfg.model)
        augmenter = Augmenter(plan.cfg.augment, name='augmenter')
        trainer = Trainer(classifier, augmenter, plan.cfg.model.num_classes,
                          device_cache=plan.inputs.device_cache, name='trainer')
        trainer.build()
    return classifier, trainer


def _resolve_steps_per_execution(plan: _Plan, trainer: Trainer, global_step: int) -> int:
    """The run's steps per execution (`auto`: measured on the restored, compiled trainer), applied."""
    cfg = plan.cfg
    # Several processes would each time their own warm-up (and could pick different k); a tf.distribute
    # strategy's mirrored variables cannot be saved and restored around the warm-up: both keep k = 1.
    multi_process = isinstance(plan.strategy, tf.distribute.MultiWorkerMirroredStrategy) or (
            keras.backend.backend() == 'jax' and _jax_process_count() > 1) or (
            keras.backend.backend() == 'tensorflow' and strategy_lib.num_replicas(plan.strategy) > 1)
    batch = execution.dummy_batch(cfg.pipeline.batch_size, cfg.pipeline.cache_size,
                                  device_cache=plan.inputs.device_cache is not None)
    k = execution.resolve(trainer, cfg.run.steps_per_execution, steps_per_epoch=plan.steps_per_epoch,
                          checkpoint_every_steps=cfg.run.checkpoint_every_steps, batch=batch,
                          steps_done_in_epoch=global_step % plan.steps_per_epoch, multi_process=multi_process)
    execution.apply(trainer, k)
    return k


def _jax_process_count() -> int:
    import jax  # pylint: disable=import-outside-toplevel
    return jax.process_count()


def _start_phase(plan: _Plan, classifier: keras.Model, trainer: Trainer, *, frozen: bool,
                 global_step: int, steps_per_execution: int | None = None) -> None:
    """Freezes or unfreezes the backbone and compiles with a fresh optimizer for that phase.

    Keras optimizers hold slots (and EMA averages) for exactly the variables they were built
    with, so each phase gets its own; its step counter continues the run's, and so does the
    learning-rate schedule.
    """
    cfg = plan.cfg
    with plan.strategy.scope():
        if cfg.run.freeze_backbone_epochs:
            set_backbone_trainable(classifier, not frozen)
        optimizer = build_optimizer(cfg.optimizer, steps_per_epoch=plan.steps_per_epoch,
                                    epochs=cfg.run.epochs, global_batch_size=cfg.pipeline.batch_size)
        compile_trainer(trainer, cfg, optimizer, plan.jit_compile)
        if steps_per_execution is not None:
            execution.apply(trainer, steps_per_execution)
        trainer.optimizer.iterations.assign(global_step)


def _restore(plan: _Plan, classifier: keras.Model, trainer: Trainer, restore_from: str,
             run_dir: RunDir) -> tuple[int, bool]:
    """Compiles for the backup's phase and restores it; returns (global step, backbone frozen)."""
    # The phase of the backup decides which optimizer its saved state fits.
    peeked = backup.latest_step(restore_from)
    continuation = run_dir.continuation() if peeked is None else None  # a finished run trains on
    peeked = continuation['global_step'] if continuation else peeked or 0
    frozen = peeked // plan.steps_per_epoch < plan.cfg.run.freeze_backbone_epochs
    _start_phase(plan, classifier, trainer, frozen=frozen, global_step=0)
    restored = backup.restore(trainer, restore_from)
    global_step = restored[0] if restored else 0
    if continuation and not restored:
        classifier.load_weights(continuation['weights'])
        trainer.optimizer.iterations.assign(continuation['global_step'])
        return continuation['global_step'], frozen
    if restored:
        print(f'resuming from the backup in {run_dir.backup}: '
              f'{backup.Position(global_step, plan.steps_per_epoch)}', flush=True)
        if not plan.inputs.resumes_in_place:
            logging.warning('The tf.data service cannot start its stream mid-way: the resumed run '
                            'trains on a fresh stream, not on the batches the interrupted run had left.')
    return global_step, frozen


def _callbacks(plan: _Plan, run_dir: RunDir, classifier: keras.Model, *, chief: bool,
               global_step: int) -> _Callbacks:
    cfg = plan.cfg
    backup_cb = backup.BackupCallback(run_dir.backup, every_steps=cfg.run.checkpoint_every_steps,
                                      initial_global_step=global_step,
                                      shared_stop=multiprocess.shared_stop(cfg.run.epochs * plan.steps_per_epoch))
    nan_cb = callbacks.NonFiniteLossCallback()
    history_cb = callbacks.HistoryCallback(run_dir, chief=chief)
    # EMA first: validation and checkpoints then see the averaged weights.
    cbs = ema_callbacks(cfg.optimizer) + [
        nan_cb, progress.EpochProgress(cfg.run.epochs), callbacks.ThroughputCallback(cfg.pipeline.batch_size, cfg.run.epochs), history_cb, backup_cb]
    if chief:
        cbs += [callbacks.CheckpointCallback(run_dir.checkpoints, classifier),
                keras.callbacks.TensorBoard(run_dir.logs, write_graph=False)]
    # Keras runs one callback that runs ours and times them, the steps, validation and the input
    # wait: the split every run prints and records (training/time_split.py).
    probe = time_split.InputProbe()
    return _Callbacks(backup=backup_cb, nan=nan_cb, history=history_cb, probe=probe,
                      timed=time_split.TimedCallbacks(cbs, probe))


def _fit_phases(plan: _Plan, classifier: keras.Model, trainer: Trainer, cbs: _Callbacks, *,
                frozen: bool, steps_per_execution: int) -> None:
    """Calls `fit` once per phase (frozen backbone, then all of it) or for the rest of an interrupted
    epoch, until the last epoch, a SIGTERM or a non-finite loss."""
    inputs, strategy, steps_per_epoch = plan.inputs, plan.strategy, plan.steps_per_epoch
    epochs, freeze_epochs = plan.cfg.run.epochs, plan.cfg.run.freeze_backbone_epochs
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)

    def stream_at(step: int):
        # The stream starts at the batch this fit's first step trains on: a resumed (or a phase's
        # second) `fit` continues the sequence an uninterrupted run would have trained on.
        train = cbs.probe.wrap(training_stream(inputs.train_from(start_step=step)))
        if multi_worker:
            return strategy_lib.distribute_per_worker(strategy, train)
        return train

    replicas = strategy_lib.num_replicas(strategy)
    validation = inputs.validation
    # Several processes: each already feeds its part's (padded, weighted) batches, the same number each.
    if validation is not None and keras.backend.backend() == 'jax' and replicas > 1 and plan.share.count == 1:
        validation = validation.map(lambda images, labels: _pad_batch(images, labels, replicas))
    verbose = 0  # one line per epoch, ours (training/progress.py draws the in-epoch progress on a terminal)
    backup_cb = cbs.backup
    backup_cb.install_sigterm_handler()
    try:
        epoch, step = divmod(backup_cb.global_step, steps_per_epoch)
        while epoch < epochs and not (backup_cb.preempted or cbs.nan.tripped_at is not None):
            want_frozen = epoch < freeze_epochs
            if want_frozen != frozen:
                _start_phase(plan, classifier, trainer, frozen=want_frozen, global_step=backup_cb.global_step,
                             steps_per_execution=steps_per_execution)
                frozen = want_frozen
            # An interrupted epoch is finished alone, with only the steps it still owes.
            end = epoch + 1 if step else (freeze_epochs if want_frozen else epochs)
            try:
                trainer.fit(stream_at(backup_cb.global_step), initial_epoch=epoch, epochs=end,
                            steps_per_epoch=steps_per_epoch - step,
                            validation_data=validation, callbacks=[cbs.timed], verbose=verbose,
                            shuffle=False)  # shuffling is the pipeline's (indices, after the cache)
            except backup.Preempted:
                # Saved; the epoch's validation is skipped, and what `fit` would end with is ended here
                # (TensorBoard's writers flushed and closed, the last plot drawn).
                cbs.timed.on_train_end()
                break
            epoch, step = divmod(backup_cb.global_step, steps_per_epoch)
    finally:
        backup_cb.uninstall_sigterm_handler()
        cbs.history.stop_plotting()


def _finish(plan: _Plan, classifier: keras.Model, trainer: Trainer, cbs: _Callbacks, run_dir: RunDir, *,
            chief: bool) -> RunOutcome:
    """Evaluates on the test split, records results and the model (chief), drops the resume state."""
    inputs = plan.inputs
    start = time.perf_counter()
    if plan.share.count > 1:
        # Each process feeds its part of the test split; every process gets every prediction back.
        results = multiprocess.evaluate_parts(trainer, inputs.test, num_examples=inputs.num_test,
                                              class_names=inputs.class_names)
    else:
        results = evaluation.evaluate(_LocalPredictor(trainer, strategy_lib.num_replicas(plan.strategy)),
                                      inputs.test, num_examples=inputs.num_test,
                                      class_names=inputs.class_names)
    results['eval_seconds'] = time.perf_counter() - start
    results['global_steps'] = cbs.backup.global_step
    results['optimizer_iterations'] = int(trainer.optimizer.iterations.numpy())
    results['epoch_time'] = cbs.timed.report()
    if cbs.history.history:
        results['last_epoch'] = cbs.history.history[-1]
    if chief:
        classifier.save(run_dir.model)
        write_json_atomic(run_dir.results, results)
        plot_history(cbs.history.history, run_dir.plots, test=results)  # the test accuracy marked
        # The run is complete and recorded; the resume state (optimizer included) is dead weight.
        shutil.rmtree(run_dir.backup, ignore_errors=True)
    _print_results(results)
    return RunOutcome('finished', results, run_dir.path)


class _LocalPredictor:
    """Predicts on this worker alone: every worker sees the whole test split exactly once, and a
    distributed predict would instead concatenate all workers' copies of each batch."""

    def __init__(self, trainer: Trainer, replicas: int = 1):
        if keras.backend.backend() == 'tensorflow':
            self._predict = tf.function(lambda images: trainer(images, training=False),
                                        reduce_retracing=True)
            return

        def predict(images):
            # Keras' own compiled predict step; it takes NumPy, and under DataParallel a batch that
            # splits evenly over the devices (the last batch is padded, the padding dropped).
            images = np.asarray(images)
            padded = np.concatenate([images, np.zeros(((-len(images)) % replicas,) + images.shape[1:],
                                                      images.dtype)])
            return trainer.predict_on_batch(padded)[:len(images)]
        self._predict = predict

    def predict_on_batch(self, images):
        return np.asarray(self._predict(images))


def _pad_batch(images, labels, replicas: int):
    """Pads a (last, smaller) evaluation batch to a multiple of `replicas`, padding weighted 0.

    JAX's DataParallel splits every batch evenly over the devices; weight 0 keeps the padding out of
    the loss and metrics, so every example still counts exactly once.
    """
    n = tf.shape(labels)[0]
    pad = tf.math.floormod(-n, replicas)
    images = tf.pad(images, [[0, pad], [0, 0], [0, 0], [0, 0]])
    labels = tf.pad(labels, [[0, pad]])
    weights = tf.concat([tf.ones([n]), tf.zeros([pad])], axis=0)
    return images, labels, weights


def evaluation_results(run_dir: RunDir) -> dict:
    with open(run_dir.results) as f:
        return json.load(f)


def _print_results(results: dict) -> None:
    worst = ', '.join(f'{w["name"]} {w["accuracy"]:.2f}' for w in results['worst_classes'][:5])
    print(f'test: top1={results["top1"]:.4f} top5={results["top5"]:.4f} '
          f'mean_per_class={results["mean_per_class_accuracy"]:.4f} '
          f'on {results["num_examples"]} examples; worst: {worst}', flush=True)
