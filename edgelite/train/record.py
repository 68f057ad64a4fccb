"""The record of one training run: per-epoch history, the best checkpoint, the resume file.

Every file is written atomically (`edgelite.atomic`); the resume file is each
epoch's commit point, written last.
"""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path
from typing import Callable, Optional

from edgelite.atomic import atomic_path, write_bytes_atomic
from edgelite.runtime.metadata import ArtifactMetadata, checkpoint_entries
from edgelite.train.init_from import train_entry
from edgelite.train.plots import plot_history
from edgelite.train.stream import ImageReader

RESUME_FILE = "resume.keras"
RESUME_STATE = "edgelite_state.json"
HISTORY_FILE = "history.json"

Log = Callable[[str], None]


def epoch_callback(keras, run: "RunRecord"):
    """A Keras callback that hands each finished epoch, with its duration, to `run`."""

    class EpochRecorder(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            run.epoch_done(self.model, epoch + 1, logs or {}, time.perf_counter() - self.started)

    return EpochRecorder()


class RunRecord:
    def __init__(self, out: Path, family: str, metadata: ArtifactMetadata, n_train: int, log: Log):
        self.out, self.family, self.metadata, self.n_train, self.log = out, family, metadata, n_train, log
        self.history: list[dict] = []
        self.best_accuracy = -1.0
        self.best_epoch = 0
        self.best_checkpoint: Optional[Path] = None
        self.phase = "train"
        self.started_from: Optional[dict] = None  # the checkpoint an --init-from run started from
        self.readers: tuple[ImageReader, ...] = ()
        self._reported: set[str] = set()

    def state(self) -> dict:
        return {"history": self.history, "best_accuracy": self.best_accuracy, "best_epoch": self.best_epoch,
                "best_checkpoint": self.best_checkpoint.name if self.best_checkpoint else None,
                "started_from": self.started_from}

    def restore(self, state: dict) -> None:
        self.history = state["history"]
        self.best_accuracy = state["best_accuracy"]
        self.best_epoch = state["best_epoch"]
        self.best_checkpoint = self.out / state["best_checkpoint"] if state["best_checkpoint"] else None
        self.started_from = state.get("started_from")

    def new_failures(self) -> list[str]:
        """Messages of files that failed to decode since the last call (their headers looked fine)."""
        messages = [m for reader in self.readers for m in list(reader.failures.values()) if m not in self._reported]
        self._reported.update(messages)
        return messages

    def epoch_done(self, model, epoch: int, logs: dict, seconds: float) -> None:
        entry = {"epoch": epoch, "phase": self.phase, "seconds": round(seconds, 3),
                 "images_per_second": round(self.n_train / seconds, 2) if seconds else 0.0}
        entry.update({k: float(v) for k, v in logs.items() if k in ("loss", "accuracy", "val_loss", "val_accuracy")})
        self.history.append(entry)
        accuracy = entry.get("val_accuracy", 0.0)
        if accuracy > self.best_accuracy:
            self.best_accuracy, self.best_epoch = accuracy, epoch
            self.best_checkpoint = self.out / f"{self.family}_{epoch:02d}_{accuracy:.3f}.keras"
            save_keras(model, self.best_checkpoint,
                       {**checkpoint_entries(self.metadata), **train_entry(self.family, self.started_from)})
        # The resume file is the commit point of an epoch: written last, atomically.
        save_keras(model, self.out / RESUME_FILE, {RESUME_STATE: json.dumps(self.state())})
        self.write_history()
        for message in self.new_failures():
            self.log(f"skipped: {message}")
        self.log(f"epoch {epoch}: " + ", ".join(f"{k} {v:.4f}" for k, v in entry.items()
                                               if k in ("loss", "accuracy", "val_loss", "val_accuracy"))
                 + f", {seconds:.1f} s" + (" (best)" if self.best_epoch == epoch else ""))

    def write_history(self) -> None:
        payload = {"family": self.family, "best_epoch": self.best_epoch, "best_val_accuracy": self.best_accuracy,
                   "best_checkpoint": self.best_checkpoint.name if self.best_checkpoint else None,
                   "started_from": self.started_from, "epochs": self.history}
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
