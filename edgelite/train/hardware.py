"""Which devices training runs on, and the tf.distribute strategy for them.

One GPU or none: the default strategy. Several GPUs: MirroredStrategy.
A TF_CONFIG naming a cluster of workers: MultiWorkerMirroredStrategy (also
with a single worker, which is how it is tested on one machine). Mixed precision
("auto") is switched on only when a GPU is there.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from edgelite.errors import OptionError
from edgelite.lazy import import_keras
from edgelite.modes import MixedPrecision, check_mode


@dataclass
class Hardware:
    """The strategy to build and fit under, and a line saying what it uses."""

    strategy: Any
    description: str
    mixed_precision: bool
    replicas: int


def _multi_worker_cluster() -> bool:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return False
    try:
        cluster = json.loads(raw).get("cluster", {})
    except ValueError:
        raise OptionError("TF_CONFIG is set but is not valid JSON") from None
    return bool(cluster.get("worker") or cluster.get("chief"))


def select_hardware(mixed_precision: MixedPrecision = "auto") -> Hardware:
    """Pick devices and strategy; set the Keras dtype policy for mixed precision."""
    check_mode(MixedPrecision, mixed_precision)
    tf, keras = import_keras("train")
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    if _multi_worker_cluster():
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        where = f"MultiWorkerMirroredStrategy from TF_CONFIG, {len(gpus)} local GPU(s)"
    elif len(gpus) > 1:
        strategy = tf.distribute.MirroredStrategy()
        where = f"MirroredStrategy over {len(gpus)} GPUs: " + ", ".join(g.name for g in gpus)
    else:
        strategy = tf.distribute.get_strategy()
        where = f"GPU {gpus[0].name}" if gpus else "CPU (TensorFlow sees no GPU)"
    use_mixed = mixed_precision == "on" or (mixed_precision == "auto" and bool(gpus))
    keras.mixed_precision.set_global_policy("mixed_float16" if use_mixed else "float32")
    if use_mixed:
        where += ", mixed precision float16"
    return Hardware(strategy, where, use_mixed, strategy.num_replicas_in_sync)
