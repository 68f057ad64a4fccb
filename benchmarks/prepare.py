"""Stage 1 of the suite: train the two models on clothing-small and convert each to every artifact.

Trains with `edgelite train` (falls back to plain Keras if that command fails),
converts with `edgelite.convert`. Everything lands in the work folder; a stage
whose output is already there is skipped, so an interrupted suite resumes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATASET = Path(os.environ.get("EDGELITE_BENCH_DATA", "/work/shared/datasets/clothing-small"))


@dataclass(frozen=True)
class ModelPlan:
    """How one benchmark model is trained.

    Attributes:
        family: `edgelite train` family.
        size: input side in pixels.
        epochs: training epochs (few: the suite measures speed, not a trained model).
        per_class: training images per class (None: all).
        extra: further `edgelite train` flags.
    """

    family: str
    size: int
    epochs: int
    per_class: int | None
    extra: tuple[str, ...] = ()


PLANS = (
    ModelPlan("scratch", 150, 3, None, ("--lr", "0.002")),
    # Without ImageNet weights (they cannot be downloaded here) the frozen base is random:
    # only the head learns, on a small subset, so accuracy stays poor.
    ModelPlan("xception", 299, 1, 25, ("--weights", "none", "--inner", "100", "--dropout", "0.2")),
)
CALIBRATION_IMAGES = 100
CHECK_IMAGES = 50


def _subset(work: Path, per_class: int | None) -> Path:
    """A dataset folder with `per_class` train images per class and 10 validation ones (symlinks)."""
    if per_class is None:
        return DATASET
    folder = work / f"data-{per_class}"
    for split in ("train", "validation"):
        for class_dir in sorted((DATASET / split).iterdir()):
            target = folder / split / class_dir.name
            target.mkdir(parents=True, exist_ok=True)
            images = sorted(class_dir.glob("*.jpg"))
            for image in images[:per_class] if split == "train" else images[:10]:
                link = target / image.name
                if not link.exists():
                    link.symlink_to(image)
    return folder


def _best_checkpoint(run: Path, family: str) -> Path | None:
    found = sorted(run.glob(f"{family}_*.keras"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def train(plan: ModelPlan, work: Path, log) -> Path:
    """Train one model (or reuse the checkpoint already in the work folder) and return its .keras path."""
    run = work / plan.family
    existing = _best_checkpoint(run, plan.family)
    if existing is not None:
        log(f"reusing {existing}")
        return existing
    data = _subset(work, plan.per_class)
    command = [sys.executable, "-m", "edgelite", "train", plan.family, "--data", str(data), "--out", str(run),
               "--size", str(plan.size), "--epochs", str(plan.epochs), *plan.extra]
    log("running " + " ".join(command[1:]))
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    checkpoint = _best_checkpoint(run, plan.family)
    if done.returncode == 0 and checkpoint is not None:
        return checkpoint
    log(f"edgelite train failed ({done.stderr.strip().splitlines()[-1:] or done.returncode}); "
        "training with plain Keras instead")
    return train_with_keras(plan, data, run)


def train_with_keras(plan: ModelPlan, data: Path, run: Path) -> Path:
    """The fallback: the same architectures built and fitted with Keras directly."""
    from edgelite.runtime.metadata import CHECKPOINT_METADATA
    from edgelite.lazy import import_keras
    from edgelite.runtime.metadata import ArtifactMetadata

    tf, keras = import_keras("train")
    train_ds = keras.utils.image_dataset_from_directory(data / "train", image_size=(plan.size, plan.size),
                                                        batch_size=32, seed=0)
    labels = tuple(train_ds.class_names)
    inputs = keras.Input((plan.size, plan.size, 3))
    if plan.family == "scratch":
        x = keras.layers.Rescaling(1 / 255)(inputs)
        x = keras.layers.Conv2D(32, 3, activation="relu")(x)
        x = keras.layers.Flatten()(keras.layers.MaxPooling2D(2)(x))
        x = keras.layers.Dense(64, activation="relu")(x)
    else:
        x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
        base = keras.applications.Xception(weights=None, include_top=False, input_shape=(plan.size, plan.size, 3))
        base.trainable = False
        x = keras.layers.GlobalAveragePooling2D()(base(x, training=False))
        x = keras.layers.Dropout(0.2)(keras.layers.Dense(100, activation="relu")(x))
    model = keras.Model(inputs, keras.layers.Dense(len(labels), activation="softmax")(x))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(train_ds, epochs=plan.epochs, verbose=0)
    run.mkdir(parents=True, exist_ok=True)
    path = run / f"{plan.family}_{plan.epochs:02d}_keras.keras"
    model.save(path)
    with zipfile.ZipFile(path, "a") as archive:  # labels inside, as edgelite's training stores them
        archive.writestr(CHECKPOINT_METADATA, ArtifactMetadata(labels, plan.size, plan.size).to_json())
    return path


def convert_all(checkpoint: Path, out: Path, work: Path, log) -> list[Path]:
    """Every artifact of `checkpoint` (TFLite float32/float16/dynamic/int8, ONNX float32/int8)."""
    manifest = out / "manifest.json"
    if manifest.is_file():
        log(f"reusing artifacts in {out}")
    else:
        from edgelite.convert import ConvertOptions, convert

        log(f"converting {checkpoint.name}")
        calibration = _subset(work, CALIBRATION_IMAGES // 10) / "train"
        options = ConvertOptions(calibration=calibration, check=DATASET / "validation",
                                 max_calibration_images=CALIBRATION_IMAGES, max_check_images=CHECK_IMAGES)
        convert(checkpoint, out, options)
    artifacts = json.loads(manifest.read_text())["artifacts"]
    return [out / a["file"] for a in artifacts]


def prepare(work: Path, log=print) -> dict[str, dict]:
    """Train and convert both models; return {family: {checkpoint, artifacts, size}}."""
    work.mkdir(parents=True, exist_ok=True)
    models = {}
    for plan in PLANS:
        checkpoint = train(plan, work, log)
        artifacts = convert_all(checkpoint, work / f"{plan.family}-artifacts", work, log)
        models[plan.family] = {"checkpoint": checkpoint, "artifacts": artifacts, "size": plan.size}
    return models


if __name__ == "__main__":
    print(prepare(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp/edgelite-benchmarks")))
