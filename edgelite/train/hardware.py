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
    """The strategy to build and fit under, and a line saying what it uses.

    Attributes:
        chief: whether this process writes the run's files (the only worker, or the
            chief of a cluster: task "chief", else worker 0).
        workers: processes training together (the tasks TF_CONFIG names, else 1).
    """

    strategy: Any
    description: str
    mixed_precision: bool
    replicas: int
    chief: bool = True
    workers: int = 1


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
    workers = 1
    if _multi_worker_cluster():
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        cluster = strategy.cluster_resolver.cluster_spec()
        workers = sum(cluster.num_tasks(job) for job in ("chief", "worker") if job in cluster.jobs)
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
    # tf.distribute's own answer to "does this worker write checkpoints": the chief only.
    chief = bool(strategy.extended.should_checkpoint)
    return Hardware(strategy, where, use_mixed, strategy.num_replicas_in_sync, chief, workers)


def adapt_to_multi_worker(model, strategy) -> None:
    """Let Keras 3's `fit` train `model` under MultiWorkerMirroredStrategy with several workers.

    Two reductions across workers in Keras's TensorFlow trainer fail under this strategy
    (keras-team/keras#20585, tensorflow/tensorflow#72388); this changes `model` so both work:
    - before the first step, the metrics are built from the first batch after a
      `strategy.reduce` over the whole (images, labels) tuple, which this strategy reduces
      only value by value ("Attempt to convert a value (PerReplica ...) to a Tensor"). Only
      shapes and dtypes matter there, so the build takes this worker's part of the batch.
    - each step's logs (scalars) are averaged over workers with a mean along axis 0
      ("Invalid reduction dimension 0 for input with 0 dimensions"): the steps return
      them as one-element vectors, which that mean turns back into scalars.
    The metrics of each epoch, which callbacks and history.json get, are read from the
    metric variables, summed over every worker, either way.
    """
    tf, _ = import_keras("train")
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return

    def symbolic_build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(lambda v: strategy.experimental_local_results(v)[0],
                                                   next(batches))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    def vector_logs(step):
        return lambda data: tf.nest.map_structure(lambda value: tf.reshape(value, (1,)), step(data))

    model._maybe_symbolic_build = symbolic_build
    model.train_step = vector_logs(model.train_step)
    model.test_step = vector_logs(model.test_step)
