"""`train`: fit a registered Keras model family on a folder-per-class dataset.

    from edgelite.train import TrainOptions, train
    result = train("scratch", TrainOptions(data=Path("data"), out=Path("runs/scratch"), epochs=5))

TensorFlow is imported only when training.
"""

from edgelite.train import models  # noqa: F401  (registers the built-in families)
from edgelite.train.augment import PRESETS, AugmentConfig, parse_augment
from edgelite.train.experiments import SweepResult, parse_sweep, sweep
from edgelite.train.loop import TrainOptions, TrainResult, train
from edgelite.train.registry import REGISTRY, FineTune, families, get_family, register_model

__all__ = ["AugmentConfig", "FineTune", "PRESETS", "REGISTRY", "SweepResult", "TrainOptions", "TrainResult", "families",
           "get_family", "parse_augment", "parse_sweep", "register_model", "sweep", "train"]
