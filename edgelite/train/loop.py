"""Fit a registered model family: checkpoints of the best epoch, history, plots, resume.

Files in the run folder:
  <family>_<epoch>_<val_accuracy>.keras   the best model so far (labels and preprocessing inside)
  history.json, history.png               per-epoch metrics, seconds and images/s
  resume.keras                            the last completed epoch with optimizer state, for --resume
Every file is written atomically, so a run killed at any moment resumes from its
last completed epoch. Under several workers only the chief writes them.
"""

from __future__ import annotations

import json
import resource
import shutil
import tempfile
import warnings
import zipfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from edgelite import __version__
from edgelite.errors import EdgeliteError, OptionError, OutputExistsError
from edgelite.lazy import import_keras
from edgelite.modes import Decode, Interpolation, MixedPrecision, Progress, check_modes, no_progress
from edgelite.runtime.metadata import ArtifactMetadata, read_checkpoint_metadata
from edgelite.train.augment import AugmentConfig, augmentation_layers
from edgelite.train.data import Dataset, scan_dataset
from edgelite.train.hardware import Hardware, adapt_to_multi_worker, select_hardware
from edgelite.train.init_from import InitSource, check_compatible, copy_weights, read_init_source
from edgelite.train.record import HISTORY_FILE, RESUME_FILE, RESUME_STATE, Log, RunRecord, epoch_callback
from edgelite.train.registry import ModelFamily, get_family
from edgelite.train.stream import Streams, distributed_datasets, open_readers

@dataclass(frozen=True)
class TrainOptions:
    """How to train, whatever the model family.

    Attributes:
        data: dataset folder (train/ and validation/, or class folders with val_split).
        out: run folder.
        epochs: epochs with the base frozen (all epochs for models without a base).
        batch_size: images per step (per replica count: the global batch).
        val_split: fraction held out when `data` has no validation/ folder.
        augment: random transforms for training batches.
        interpolation: resize filter, recorded in the checkpoint for the device.
        decode: JPEG decoding ("fast": reduced DCT scale for large photos), recorded likewise.
        classes: train on these class folders only (at least two), or on all of them.
        cache: folder of decoded-image caches (uint8, memory-mapped), so later epochs,
            sweep variants and later runs read pixels instead of decoding them again.
        init_from: a checkpoint of the same family and classes whose weights start
            this new run (its own options apply); recorded in history.json.
        resume: continue the run in `out` from its last completed epoch.
        force: start a new run in an `out` that holds an earlier one, replacing
            its history and resume file (its checkpoints stay unless a new one
            has the same name); without it, such a folder is refused.
        mixed_precision: auto (on with a GPU), on or off.
        xla: compile the train step with XLA.
        seed: random seed for weights, shuffling and augmentation.
        verbose: Keras progress output (0 silent, 1 bar, 2 a line per epoch).
    """

    data: Path
    out: Path
    epochs: int = 10
    batch_size: int = 32
    val_split: Optional[float] = None
    augment: AugmentConfig = AugmentConfig()
    interpolation: Interpolation = "bilinear"
    decode: Decode = "fast"
    classes: Optional[tuple[str, ...]] = None
    cache: Optional[Path] = None
    init_from: Optional[Path] = None
    resume: bool = False
    force: bool = False
    mixed_precision: MixedPrecision = "auto"
    xla: bool = False
    seed: int = 0
    verbose: int = 2

    def __post_init__(self) -> None:
        check_modes(self)
        if self.epochs < 1:
            raise OptionError(f"--epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise OptionError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.resume and self.force:
            raise OptionError("--resume continues the run in --out and --force replaces it; pass one of them")
        if self.classes is not None and len(set(self.classes)) < 2:
            raise OptionError(f"--classes needs at least two class names, got {', '.join(self.classes) or 'none'}")
        if self.resume and self.init_from is not None:
            raise OptionError("--resume continues the run in --out and --init-from starts a new one; pass one of them")


@dataclass
class TrainResult:
    """What a run produced and measured."""

    out: Path
    family: str
    config: dict
    devices: str
    dataset: str
    best_checkpoint: Optional[Path]
    best_val_accuracy: float
    best_epoch: int
    history: list[dict] = field(default_factory=list)
    peak_memory_mb: float = 0.0

    @property
    def seconds_per_epoch(self) -> float:
        return float(np.median([h["seconds"] for h in self.history])) if self.history else 0.0

    @property
    def images_per_second(self) -> float:
        return float(np.median([h["images_per_second"] for h in self.history])) if self.history else 0.0

    def to_dict(self) -> dict:
        data = asdict(self)
        data.update(out=str(self.out), best_checkpoint=str(self.best_checkpoint) if self.best_checkpoint else None,
                    seconds_per_epoch=self.seconds_per_epoch, images_per_second=self.images_per_second)
        return data


def _compile(model, optimizer, sigmoid: bool, xla: bool) -> None:
    loss = "binary_crossentropy" if sigmoid else "sparse_categorical_crossentropy"
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"], jit_compile=xla)


def _check_run_folder(out: Path, resume: bool, force: bool, size: int) -> None:
    """A run folder holds one run: a new run needs a fresh one (or --force), --resume an unfinished one."""
    resume_file, history_file = out / RESUME_FILE, out / HISTORY_FILE
    if out.exists() and not out.is_dir():
        raise OptionError(f"--out {out} is a file; expected a run folder (new or existing)")
    if resume_file.exists() and not resume and not force:
        raise OutputExistsError(f"{out} holds an earlier run; pass --resume to continue it, --force to replace "
                                f"its {RESUME_FILE} and {HISTORY_FILE}, or choose another --out")
    if history_file.exists() and not resume and not force:
        raise OutputExistsError(f"{history_file} already exists (a finished run); pass --force to start a new run "
                                "over it, or choose another --out")
    if resume and not resume_file.exists():
        raise OptionError(f"nothing to resume: {resume_file} does not exist")
    if force and not resume:
        # resume.keras is the earlier run's commit point: left in place, a kill before this run's
        # first epoch would make --resume continue the earlier run.
        resume_file.unlink(missing_ok=True)
    if resume:
        _check_resume_size(out, size)
        # A killed run can leave the temp file of an atomic write behind; its target is intact.
        for stale in list(out.glob(".*.tmp")) + list(out.glob(".*.keras.*.keras")):
            stale.unlink()


def _check_resume_size(out: Path, size: int) -> None:
    """Refuse, before the dataset is decoded, a --size that differs from the run being resumed."""
    try:
        with zipfile.ZipFile(out / RESUME_FILE) as archive:
            best = json.loads(archive.read(RESUME_STATE)).get("best_checkpoint")
        stored = read_checkpoint_metadata(out / best) if best and (out / best).is_file() else None
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EdgeliteError):
        return  # the model's own input is checked once it is loaded
    if stored is not None:
        _same_size(out, size, (stored.input_height, stored.input_width))


def _same_size(out: Path, size: int, resumed: tuple[int, int]) -> None:
    if resumed != (size, size):
        raise OptionError(f"--size {size} differs from the run in {out}, which trains at {resumed[0]}x{resumed[1]}; "
                          f"resume with --size {resumed[0]}, or start a new run with --force or another --out")


@dataclass(frozen=True)
class _RunContext:
    """What the steps of one training run share, gathered once in `train`.

    `config` has the run's `overrides` applied (the fine-tuning phase applies
    them again with its own rate); `source` is --init-from's checkpoint, or None.
    """

    keras: Any
    family: ModelFamily
    config: Any
    overrides: dict
    options: TrainOptions
    hardware: Hardware
    run: RunRecord
    classes: int
    log: Log
    source: Optional[InitSource] = None

    @property
    def sigmoid(self) -> bool:
        """Two classes train one sigmoid unit."""
        return self.classes == 2

    def compile(self, model, config) -> None:
        """Compile `model` with the family's optimizer for `config` and the run's loss."""
        _compile(model, self.family.optimizer(config), self.sigmoid, self.options.xla)


def _build_or_resume(context: _RunContext):
    """The model to fit: restored with its optimizer and history from resume.keras, or new (from `source`'s weights)."""
    keras, options, run, source = context.keras, context.options, context.run, context.source
    with context.hardware.strategy.scope():
        if options.resume:
            resume_file = Path(options.out) / RESUME_FILE
            model = keras.saving.load_model(resume_file, compile=True, safe_mode=True)
            _same_size(Path(options.out), context.config.size, tuple(model.input_shape[1:3]))
            with zipfile.ZipFile(resume_file) as archive:
                run.restore(json.loads(archive.read(RESUME_STATE)))
            context.log(f"resuming after epoch {len(run.history)}")
            return model
        model = context.family.build(context.config, context.classes)
        if source is not None:
            copy_weights(keras, model, source)
            run.started_from = source.record()
            context.log(f"starting from the weights of {source.path}")
        context.compile(model, context.config)
        return model


def _fit(model, streams: Streams, options: TrainOptions, **kwargs) -> None:
    with warnings.catch_warnings():
        # A streamed split has no length known up front (a file may fail to decode): Keras finds each
        # epoch's end by running out of data, as intended here, and would warn about it every time.
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        model.fit(streams.train, validation_data=streams.val, steps_per_epoch=streams.train_steps,
                  validation_steps=streams.val_steps, verbose=options.verbose, shuffle=False, **kwargs)


@contextmanager
def _write_folder(out: Path, chief: bool) -> Iterator[Path]:
    """Where this process writes: the run folder for the chief, a temporary one for the other workers."""
    if chief:
        out.mkdir(parents=True, exist_ok=True)
        yield out
        return
    # tf.distribute's pattern: every worker saves (saving may take part in collectives), only the chief's files stay.
    temp = Path(tempfile.mkdtemp(prefix="edgelite-worker-"))
    try:
        yield temp
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _fit_phases(context: _RunContext, model, datasets: Streams) -> None:
    """The first phase for options.epochs, then the family's fine-tuning phase, if it has one."""
    options, run, family, config = context.options, context.run, context.family, context.config
    recorder = epoch_callback(context.keras, run)
    adapt_to_multi_worker(model, context.hardware.strategy)
    if len(run.history) < options.epochs:
        _fit(model, datasets, options, epochs=options.epochs, initial_epoch=len(run.history), callbacks=[recorder])
    plan = family.fine_tune(config)
    if plan is None or len(run.history) >= options.epochs + plan.epochs:
        return
    run.phase = "fine-tune"
    if len(run.history) == options.epochs:  # entering the phase: unfreeze, lower the rate
        low_lr = config.lr * plan.lr_factor
        with context.hardware.strategy.scope():
            plan.unfreeze(model)
            context.compile(model, family.configure(**{**context.overrides, "lr": low_lr}))
        context.log(f"{plan.description} at lr {low_lr:g}")
    _fit(model, datasets, options, epochs=options.epochs + plan.epochs, initial_epoch=len(run.history),
         callbacks=[recorder])


def train(family_name: str, options: TrainOptions, overrides: Optional[dict] = None,
          dataset: Optional[Dataset] = None, log: Log = lambda message: None,
          progress: Progress = no_progress) -> TrainResult:
    """Train one model family on a folder-per-class dataset.

    Args:
        family_name: a registered family ("xception", "scratch", ...).
        options: data, run folder, epochs and the rest of TrainOptions.
        overrides: config values of the family to change (size, lr, inner, ...).
        dataset: an already scanned dataset (experiments reuse one).
        log: receives one line per event (devices, dataset, each epoch, skipped files).
        progress: receives (description, done, total) while image headers are checked.

    Raises:
        EdgeliteError: bad options or dataset, or a run folder that needs --resume.
    """
    family = get_family(family_name)
    overrides = dict(overrides or {})
    source = read_init_source(options.init_from, family.name) if options.init_from is not None else None
    if source is not None:
        overrides.setdefault("size", source.metadata.input_height)
    config = family.configure(**overrides)
    out = Path(options.out)
    _check_run_folder(out, options.resume, options.force, config.size)
    tf, keras = import_keras("train")
    keras.utils.set_random_seed(options.seed)
    hardware = select_hardware(options.mixed_precision)
    log(f"devices: {hardware.description}")
    data = dataset or scan_dataset(options.data, options.val_split, options.seed, options.classes, progress)
    log(f"data: {data.summary()}")
    for message in data.skipped:
        log(f"skipped: {message}")
    if source is not None:
        check_compatible(source, data.classes, config.size)
    sigmoid = len(data.classes) == 2
    metadata = ArtifactMetadata(
        labels=data.classes, input_height=config.size, input_width=config.size, input_scaling="none",
        graph_scaling=family.scaling, interpolation=options.interpolation, decode=options.decode,
        output_kind="sigmoid" if sigmoid else "softmax", precision="float32", edgelite_version=__version__)
    readers = open_readers(data, config.size, options.interpolation, options.decode, options.cache)
    augment = augmentation_layers(options.augment, config.size, options.seed)
    datasets = distributed_datasets(tf, hardware.strategy, readers, options.batch_size, options.seed, sigmoid,
                                    augment, hardware.workers)
    with _write_folder(out, hardware.chief) as folder:
        run = RunRecord(folder, family.name, metadata, len(data.train), log)
        run.readers = readers
        context = _RunContext(keras, family, config, overrides, options, hardware, run, len(data.classes), log, source)
        model = _build_or_resume(context)
        _fit_phases(context, model, datasets)
        run.write_history()
    for message in run.new_failures():
        log(f"skipped: {message}")
    final = data.without(readers[0].failures, readers[1].failures)
    best = out / run.best_checkpoint.name if run.best_checkpoint else None  # the chief's, for every worker
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return TrainResult(out, family.name, asdict(config), hardware.description, final.summary(),
                       best, run.best_accuracy, run.best_epoch, run.history, peak)
