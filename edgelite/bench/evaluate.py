"""`evaluate`: how good a model is per class, for a Keras checkpoint and each artifact alike.

    from edgelite.bench.evaluate import EvaluateOptions, evaluate
    result = evaluate(Path("model_int8.tflite"), Path("data/validation"), EvaluateOptions(top_k=3))
    result.accuracy, result.per_class, result.confusion

Images go through `predict_iter` (artifacts) or the same preprocessing and a
Keras model (checkpoints): accuracy, top-k accuracy, per-class precision,
recall, F1 and support, the confusion matrix, and the most confident mistakes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from edgelite.atomic import ReportTarget
from edgelite.bench.figures import pyplot, save_png
from edgelite.errors import DatasetError, OptionError
from edgelite.modes import Progress, no_progress
from edgelite.runtime.folder import read_folder
from edgelite.runtime.metadata import KERAS_SUFFIXES


@dataclass(frozen=True)
class EvaluateOptions:
    """How `evaluate` runs.

    Attributes:
        top_k: k of the top-k accuracy.
        mistakes: how many of the most confident mistakes to list.
        threads: interpreter threads (None: the backend's default).
        batch_size: images per inference call.
        limit: at most this many images (a seeded sample).
        only_model_classes: evaluate only the class folders named like a class of the model, and
            report the others with their image counts (otherwise such a folder is an error).
    """

    top_k: int = 5
    mistakes: int = 10
    threads: Optional[int] = None
    batch_size: int = 32
    limit: Optional[int] = None
    only_model_classes: bool = False

    def __post_init__(self) -> None:
        for name in ("top_k", "batch_size"):
            if getattr(self, name) < 1:
                raise OptionError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.mistakes < 0:
            raise OptionError(f"mistakes cannot be negative, got {self.mistakes}")
        if self.limit is not None and self.limit < 1:
            raise OptionError(f"--limit must be at least 1, got {self.limit}")


@dataclass(frozen=True)
class ClassScore:
    """Precision, recall and F1 of one class over the evaluated images (0.0 where undefined)."""

    name: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass
class Evaluation:
    """Everything `evaluate` found; `to_dict` is the --json output."""

    model: str
    data: str
    classes: tuple[str, ...]
    images: int
    accuracy: float
    top_k: int
    top_k_accuracy: float
    per_class: list[ClassScore]
    confusion: list[list[int]]
    mistakes: list[dict[str, Any]]
    unreadable: list[str] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # class folders left out: images in each

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["classes"] = list(self.classes)
        return data


def evaluate(model_path: Path, data: Path, options: EvaluateOptions = EvaluateOptions(),
             progress: Progress = no_progress) -> Evaluation:
    """Evaluate a .tflite, .onnx or Keras checkpoint on a folder of class folders.

    Raises:
        DatasetError: the folder has no class folders, or a class folder the model does not know.
        EdgeliteError: the model cannot be loaded.
    """
    model_path, data = Path(model_path), Path(data)
    items = [item for item in read_folder(data, options.limit) if item.label is not None]
    if not items:
        raise DatasetError(f"{data}: no class folders; expected {data}/<class>/<image files>")
    classifier = _load(model_path, options.threads)
    labels = tuple(classifier.labels)
    skipped: dict[str, int] = {}
    if options.only_model_classes:
        items, skipped = _model_classes_only(items, labels, data)
    _check_classes(labels, {item.label for item in items if item.label}, data)
    top_k = min(options.top_k, len(labels))  # top-5 of a 2-class model would always be 100%
    index = {name: i for i, name in enumerate(labels)}
    confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
    in_top_k = 0
    mistakes, unreadable = [], []
    results = classifier.predict_iter([item.path for item in items], top_k, options.batch_size)
    for done, (item, result) in enumerate(zip(items, results), 1):
        progress("evaluating", done, len(items))
        if not result.ok:
            unreadable.append(result.error or str(item.path))
            continue
        truth, top = index[item.label or ""], result[0]
        confusion[truth, top.index] += 1
        in_top_k += int(any(p.index == truth for p in result))
        if top.index != truth:
            mistakes.append({"image": str(item.path), "true": item.label, "predicted": top.label,
                             "score": top.score})
    images = int(confusion.sum())
    if images == 0:
        raise DatasetError(f"{data}: none of the {len(items)} images could be read")
    mistakes.sort(key=lambda m: -m["score"])
    return Evaluation(str(model_path), str(data), labels, images, float(np.trace(confusion) / images),
                      top_k, in_top_k / images, per_class_scores(confusion, labels), confusion.tolist(),
                      mistakes[:options.mistakes], unreadable, skipped)


def per_class_scores(confusion: np.ndarray, labels: Sequence[str]) -> list[ClassScore]:
    """Per-class precision, recall, F1 and support of a confusion matrix (rows: truth, columns: predicted)."""
    scores = []
    for i, name in enumerate(labels):
        hit, predicted, support = int(confusion[i, i]), int(confusion[:, i].sum()), int(confusion[i].sum())
        precision = hit / predicted if predicted else 0.0
        recall = hit / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores.append(ClassScore(name, precision, recall, f1, support))
    return scores


def _model_classes_only(items: list, labels: tuple[str, ...], data: Path) -> tuple[list, dict[str, int]]:
    """The items whose folder is a class of the model, and the image count of each other folder."""
    skipped: dict[str, int] = {}
    for item in items:
        if item.label not in labels:
            skipped[item.label] = skipped.get(item.label, 0) + 1
    kept = [item for item in items if item.label in labels]
    if not kept:
        raise DatasetError(f"{data}: none of the class folders {sorted(skipped)} is a class of the model "
                           f"{list(labels)}")
    return kept, dict(sorted(skipped.items()))


def _check_classes(labels: tuple[str, ...], folders: set[str], data: Path) -> None:
    unknown = sorted(folders - set(labels))
    if unknown:
        raise DatasetError(f"{data}: class folders {unknown} are not classes of the model; the model has "
                           f"{list(labels)}, the folder has {sorted(folders)}; --only-model-classes "
                           "evaluates the model's classes alone")


def _load(path: Path, threads: Optional[int]):
    if path.suffix.lower() in KERAS_SUFFIXES or path.is_dir():
        from edgelite.convert.source import load_classifier
        from edgelite.lazy import quiet_native

        with quiet_native():
            return load_classifier(path)
    from edgelite.runtime import load

    return load(path, threads=threads)


def plot_confusion(evaluation: Evaluation, path: Union[Path, ReportTarget]) -> Path:
    """The confusion matrix as a PNG (rows: true class, columns: predicted), by the report rule of `edgelite.atomic`."""
    return save_png(confusion_figure(evaluation), path)


def confusion_figure(evaluation: Evaluation):
    """The figure `plot_confusion` saves (a matplotlib Figure; close it with `plt.close`)."""
    plt = pyplot()
    matrix = np.asarray(evaluation.confusion)
    size = max(4.0, 0.6 * len(evaluation.classes) + 2)
    # Constrained layout and a two-line title over the whole figure: a long model name is never cut off.
    figure, axis = plt.subplots(figsize=(size + 1, size + 0.5), layout="constrained")
    shown = axis.imshow(matrix, cmap="Blues")
    figure.colorbar(shown, ax=axis, fraction=0.046)
    ticks = range(len(evaluation.classes))
    axis.set_xticks(ticks, evaluation.classes, rotation=45, ha="right")
    axis.set_yticks(ticks, evaluation.classes)
    for (row, col), count in np.ndenumerate(matrix):
        if count:
            axis.text(col, row, str(count), ha="center", va="center",
                      color="white" if count > matrix.max() / 2 else "black", fontsize=8)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    figure.suptitle(f"{Path(evaluation.model).name}\naccuracy {evaluation.accuracy:.1%} on {evaluation.images} images",
                    fontsize=10)
    return figure
