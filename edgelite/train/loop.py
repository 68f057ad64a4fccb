"""Fit a registered model family: checkpoints of the best epoch, history, plots, resume.

Files in the run folder:
  <family>_<epoch>_<val_accuracy>.keras   the best model so far (labels and preprocessing inside)
  history.json, history.png               per-epoch metrics, seconds and images/s
  resume.keras                            the last completed epoch with optimizer state, for --resume
Every file is written atomically, so a run killed at any moment resumes from its
last completed epoch.
"""

from __future__ import annotations

import json
import resource
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from edgelite import __version__
from edgelite.atomic import atomic_path, write_bytes_atomic
from edgelite.errors import OptionError
from edgelite.lazy import import_keras
from edgelite.modes import Decode, Interpolation, MixedPrecision, Progress, check_modes, no_progress
from edgelite.runtime.metadata import ArtifactMetadata, checkpoint_entries
from edgelite.train.augment import AugmentConfig, augmentation_layers
from edgelite.train.data import Dataset, load_dataset
from edgelite.train.hardware import Hardware, select_hardware
from edgelite.train.plots import plot_history
from edgelite.train.registry import ModelFamily, get_family

RESUME_FILE = "resume.keras"
RESUME_STATE = "edgelite_state.json"
HISTORY_FILE = "history.json"

Log = Callable[[str], None]


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
        resume: continue the run in `out` from its last completed epoch.
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
    resume: bool = False
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


def _datasets(tf, data: Dataset, options: TrainOptions, augment, sigmoid: bool):
    label_type = np.float32 if sigmoid else np.int64

    def pipeline(x: np.ndarray, y: np.ndarray, training: bool):
        y = y.astype(label_type)
        shape = (None,) + x.shape[1:]

        def gather(idx):
            return x[idx].astype(np.float32), y[idx]

        def load(idx):
            images, labels = tf.numpy_function(gather, [idx], (tf.float32, tf.as_dtype(label_type)))
            images.set_shape(shape)
            labels.set_shape((None,))
            return images, labels

        ds = tf.data.Dataset.from_tensor_slices(np.arange(len(x)))
        if training:
            ds = ds.shuffle(len(x), seed=options.seed, reshuffle_each_iteration=True)
        ds = ds.batch(options.batch_size).map(load, num_parallel_calls=tf.data.AUTOTUNE)
        if training and augment is not None:
            ds = ds.map(lambda a, b: (augment(a, training=True), b), num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)

    return pipeline(data.train_x, data.train_y, True), pipeline(data.val_x, data.val_y, False)


def _epoch_callback(keras, run: "_Run"):
    """A Keras callback that hands each finished epoch, with its duration, to `run`."""

    class EpochRecorder(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            run.epoch_done(self.model, epoch + 1, logs or {}, time.perf_counter() - self.started)

    return EpochRecorder()


class _Run:
    def __init__(self, out: Path, family: str, metadata: ArtifactMetadata, n_train: int, log: Log):
        self.out, self.family, self.metadata, self.n_train, self.log = out, family, metadata, n_train, log
        self.history: list[dict] = []
        self.best_accuracy = -1.0
        self.best_epoch = 0
        self.best_checkpoint: Optional[Path] = None
        self.phase = "train"

    def state(self) -> dict:
        return {"history": self.history, "best_accuracy": self.best_accuracy, "best_epoch": self.best_epoch,
                "best_checkpoint": self.best_checkpoint.name if self.best_checkpoint else None}

    def restore(self, state: dict) -> None:
        self.history = state["history"]
        self.best_accuracy = state["best_accuracy"]
        self.best_epoch = state["best_epoch"]
        self.best_checkpoint = self.out / state["best_checkpoint"] if state["best_checkpoint"] else None

    def epoch_done(self, model, epoch: int, logs: dict, seconds: float) -> None:
        entry = {"epoch": epoch, "phase": self.phase, "seconds": round(seconds, 3),
                 "images_per_second": round(self.n_train / seconds, 2) if seconds else 0.0}
        entry.update({k: float(v) for k, v in logs.items() if k in ("loss", "accuracy", "val_loss", "val_accuracy")})
        self.history.append(entry)
        accuracy = entry.get("val_accuracy", 0.0)
        if accuracy > self.best_accuracy:
            self.best_accuracy, self.best_epoch = accuracy, epoch
            self.best_checkpoint = self.out / f"{self.family}_{epoch:02d}_{accuracy:.3f}.keras"
            save_keras(model, self.best_checkpoint, checkpoint_entries(self.metadata))
        # The resume file is the commit point of an epoch: written last, atomically.
        save_keras(model, self.out / RESUME_FILE, {RESUME_STATE: json.dumps(self.state())})
        self.write_history()
        self.log(f"epoch {epoch}: " + ", ".join(f"{k} {v:.4f}" for k, v in entry.items()
                                               if k in ("loss", "accuracy", "val_loss", "val_accuracy"))
                 + f", {seconds:.1f} s" + (" (best)" if self.best_epoch == epoch else ""))

    def write_history(self) -> None:
        payload = {"family": self.family, "best_epoch": self.best_epoch, "best_val_accuracy": self.best_accuracy,
                   "best_checkpoint": self.best_checkpoint.name if self.best_checkpoint else None,
                   "epochs": self.history}
        write_bytes_atomic(self.out / HISTORY_FILE, (json.dumps(payload, indent=2) + "\n").encode())
        plot_history(self.history, self.out / "history.png", title=self.family)


def save_keras(model, path: Path, entries: dict[str, str]) -> None:
    """Save a .keras file with extra zip entries (Keras ignores them), atomically."""
    with atomic_path(path) as temp:
        keras_path = temp.with_suffix(".keras")
        try:
            model.save(keras_path)
            with zipfile.ZipFile(keras_path, "a") as archive:
                for name, text in entries.items():
                    archive.writestr(name, text)
            keras_path.replace(temp)
        finally:
            keras_path.unlink(missing_ok=True)


def _compile(model, optimizer, sigmoid: bool, xla: bool) -> None:
    loss = "binary_crossentropy" if sigmoid else "sparse_categorical_crossentropy"
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"], jit_compile=xla)


def _check_run_folder(out: Path, resume: bool) -> None:
    """A run folder holds one run: a new run needs a fresh one, --resume an unfinished one."""
    resume_file = out / RESUME_FILE
    if resume_file.exists() and not resume:
        raise OptionError(f"{out} holds an earlier run; pass --resume to continue it, or choose another --out")
    if resume and not resume_file.exists():
        raise OptionError(f"nothing to resume: {resume_file} does not exist")
    if resume:
        # A killed run can leave the temp file of an atomic write behind; its target is intact.
        for stale in list(out.glob(".*.tmp")) + list(out.glob(".*.keras.*.keras")):
            stale.unlink()


def _build_or_resume(keras, family: ModelFamily, config, options: TrainOptions, hardware: Hardware, run: _Run,
                     classes: int, sigmoid: bool, log: Log):
    """The model to fit: restored with its optimizer and history from resume.keras, or new."""
    with hardware.strategy.scope():
        if options.resume:
            resume_file = Path(options.out) / RESUME_FILE
            model = keras.saving.load_model(resume_file, compile=True, safe_mode=True)
            with zipfile.ZipFile(resume_file) as archive:
                run.restore(json.loads(archive.read(RESUME_STATE)))
            log(f"resuming after epoch {len(run.history)}")
            return model
        model = family.build(config, classes)
        _compile(model, family.optimizer(config), sigmoid, options.xla)
        return model


def _fit_phases(keras, model, family: ModelFamily, config, overrides: dict, options: TrainOptions,
                hardware: Hardware, run: _Run, datasets, sigmoid: bool, log: Log) -> None:
    """The first phase for options.epochs, then the family's fine-tuning phase, if it has one."""
    train_ds, val_ds = datasets
    recorder = _epoch_callback(keras, run)
    if len(run.history) < options.epochs:
        model.fit(train_ds, validation_data=val_ds, epochs=options.epochs, initial_epoch=len(run.history),
                  callbacks=[recorder], verbose=options.verbose, shuffle=False)
    plan = family.fine_tune(config)
    if plan is None or len(run.history) >= options.epochs + plan.epochs:
        return
    run.phase = "fine-tune"
    if len(run.history) == options.epochs:  # entering the phase: unfreeze, lower the rate
        low_lr = config.lr * plan.lr_factor
        with hardware.strategy.scope():
            plan.unfreeze(model)
            _compile(model, family.optimizer(family.configure(**{**overrides, "lr": low_lr})), sigmoid, options.xla)
        log(f"{plan.description} at lr {low_lr:g}")
    model.fit(train_ds, validation_data=val_ds, epochs=options.epochs + plan.epochs,
              initial_epoch=len(run.history), callbacks=[recorder], verbose=options.verbose, shuffle=False)


def train(family_name: str, options: TrainOptions, overrides: Optional[dict] = None,
          dataset: Optional[Dataset] = None, log: Log = lambda message: None,
          progress: Progress = no_progress) -> TrainResult:
    """Train one model family on a folder-per-class dataset.

    Args:
        family_name: a registered family ("xception", "scratch", ...).
        options: data, run folder, epochs and the rest of TrainOptions.
        overrides: config values of the family to change (size, lr, inner, ...).
        dataset: an already decoded dataset at the right size (experiments reuse one).
        log: receives one line per event (devices, dataset, each epoch).
        progress: receives (description, done, total) while images are decoded.

    Raises:
        EdgeliteError: bad options or dataset, or a run folder that needs --resume.
    """
    family = get_family(family_name)
    overrides = dict(overrides or {})
    config = family.configure(**overrides)
    out = Path(options.out)
    _check_run_folder(out, options.resume)
    tf, keras = import_keras("train")
    keras.utils.set_random_seed(options.seed)
    hardware = select_hardware(options.mixed_precision)
    log(f"devices: {hardware.description}")
    data = dataset or load_dataset(options.data, config.size, options.interpolation, options.val_split,
                                   options.seed, progress, options.decode)
    log(f"data: {data.summary()}")
    for message in data.skipped:
        log(f"skipped: {message}")
    sigmoid = len(data.classes) == 2
    metadata = ArtifactMetadata(
        labels=data.classes, input_height=config.size, input_width=config.size, input_scaling="none",
        graph_scaling=family.scaling, interpolation=options.interpolation, decode=options.decode,
        output_kind="sigmoid" if sigmoid else "softmax", precision="float32", edgelite_version=__version__)
    out.mkdir(parents=True, exist_ok=True)
    run = _Run(out, family.name, metadata, len(data.train_y), log)
    augment = augmentation_layers(options.augment, config.size, options.seed)
    datasets = _datasets(tf, data, options, augment, sigmoid)
    model = _build_or_resume(keras, family, config, options, hardware, run, len(data.classes), sigmoid, log)
    _fit_phases(keras, model, family, config, overrides, options, hardware, run, datasets, sigmoid, log)
    run.write_history()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return TrainResult(out, family.name, asdict(config), hardware.description, data.summary(),
                       run.best_checkpoint, run.best_accuracy, run.best_epoch, run.history, peak)
