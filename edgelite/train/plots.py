"""PNG plots of training curves (matplotlib, imported only when plotting)."""

from __future__ import annotations

from pathlib import Path

from edgelite.atomic import atomic_path


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_history(history: list[dict], path: Path, title: str) -> bool:
    """Loss and accuracy per epoch, train and validation. Returns False without matplotlib."""
    plt = _pyplot()
    if plt is None or not history:
        return False
    epochs = [h["epoch"] for h in history]
    figure, (loss_axis, acc_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in ((loss_axis, "loss"), (acc_axis, "accuracy")):
        for prefix, style in (("", "-o"), ("val_", "-s")):
            values = [h.get(prefix + metric) for h in history]
            if all(v is not None for v in values):
                axis.plot(epochs, values, style, label=f"{'validation' if prefix else 'train'} {metric}")
        axis.set_xlabel("epoch")
        axis.set_title(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    _save(figure, path)
    plt.close(figure)
    return True


def plot_variants(curves: dict[str, list[float]], path: Path, title: str) -> bool:
    """Validation accuracy per epoch, one line per experiment variant."""
    plt = _pyplot()
    if plt is None or not curves:
        return False
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for name, values in curves.items():
        axis.plot(range(1, len(values) + 1), values, "-o", label=name)
    axis.set_xlabel("epoch")
    axis.set_ylabel("validation accuracy")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    _save(figure, path)
    plt.close(figure)
    return True


def _save(figure, path: Path) -> None:
    with atomic_path(path) as temp:
        figure.savefig(temp, format="png", dpi=100)
