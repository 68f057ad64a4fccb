"""Streaming input: tf.data over file indices, decoded through the runtime's `preprocess` in parallel.

Each split is a `tf.data` pipeline over the indices of its files: shuffled
(seeded, reshuffled every epoch), mapped in parallel through `ImageReader`
(a `tf.numpy_function` calling `preprocess`; Pillow releases the GIL while it
decodes and resizes, so the map's threads decode side by side while the model
trains), batched and prefetched. Memory holds the indices, the images in flight
and a few batches, whatever the size of the dataset.

Under several workers the pipelines are built by
`strategy.distribute_datasets_from_function`: each worker's pipeline takes
every n-th file of the list (its `InputContext` says which), so it opens and
decodes only its own shard, and Keras's `fit` takes the distributed dataset as
it is. Workers step in lockstep, so there each shard repeats endlessly and an
epoch is a fixed number of steps (the global batches of one pass over the
files): no worker runs dry before the others, whatever files fail to decode.

A file whose header was fine but whose pixels fail to decode (a truncated JPEG)
is dropped from its batch, remembered (not retried in later epochs) and listed
in `ImageReader.failures`. With EDGELITE_TRAIN_READ_LOG set to a file path,
every image decoded from disk appends its path to that file (to check sharding).
"""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path
from typing import Any, NamedTuple, Optional, Sequence

import numpy as np

from edgelite.errors import EdgeliteError, OptionError
from edgelite.modes import Decode, Interpolation
from edgelite.runtime.preprocess import preprocess
from edgelite.train.cache import DecodedCache
from edgelite.train.data import Dataset, Example

READ_LOG_VARIABLE = "EDGELITE_TRAIN_READ_LOG"
# Batches decoded ahead of the one training: enough to cover a slow image, few enough to stay small.
PREFETCH_BATCHES = 2


class ImageReader:
    """The images of one split by index: from the cache when it has them, else through `preprocess`.

    Safe to call from the pipeline's parallel threads.

    Attributes:
        paths: the split's files.
        labels: their class indices.
        failures: index -> message of each file that failed to decode in this run.
    """

    def __init__(self, examples: Sequence[Example], size: int, interpolation: Interpolation = "bilinear",
                 decode: Decode = "fast", cache: Optional[DecodedCache] = None):
        self.paths = [path for path, _ in examples]
        self.labels = np.array([label for _, label in examples], dtype=np.int64)
        self.size, self.interpolation, self.decode, self.cache = size, interpolation, decode, cache
        self.failures: dict[int, str] = {}
        self._lock = threading.Lock()
        self._read_log = os.environ.get(READ_LOG_VARIABLE)

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, index: int) -> tuple[np.ndarray, bool]:
        """(uint8 size x size x 3 pixels, True), or (zeros, False) for a file that cannot be decoded."""
        index = int(index)
        cached = self.cache.get(index) if self.cache is not None else None
        if cached is not None:
            return cached, True
        if index in self.failures:
            return self._blank(), False
        try:
            # preprocess returns whole numbers in 0-255 after the resize: uint8 holds them exactly.
            pixels = preprocess(self.paths[index], self.size, self.size, self.interpolation,
                                self.decode).pixels.astype(np.uint8)
        except EdgeliteError as exc:
            with self._lock:
                self.failures[index] = str(exc)
            return self._blank(), False
        if self.cache is not None:
            self.cache.put(index, pixels)
        if self._read_log:
            with self._lock, open(self._read_log, "a", encoding="utf-8") as log:
                log.write(f"{self.paths[index]}\n")
        return pixels, True

    def _blank(self) -> np.ndarray:
        return np.zeros((self.size, self.size, 3), np.uint8)


def split_dataset(tf, reader: ImageReader, batch_size: int, training: bool, seed: int = 0, sigmoid: bool = False,
                  augment: Any = None, shard: tuple[int, int] = (0, 1), repeat: bool = False):
    """A tf.data pipeline of (float32 images, labels) batches over one shard of a split.

    Args:
        tf: the tensorflow module.
        reader: the split's images.
        batch_size: images per batch of this pipeline (per replica under a strategy).
        training: shuffle (seeded, every epoch anew) and augment.
        seed: the shuffle seed.
        sigmoid: float32 labels for a one-unit sigmoid head, else int64 class indices.
        augment: a Keras layer applied to training batches, or None.
        shard: (this pipeline's index, number of pipelines): it reads files index, index + n, ...
        repeat: pass over the shard again and again (reshuffled each time) instead of once.
    """
    index, count = shard
    label_type = tf.float32 if sigmoid else tf.int64
    ids = np.arange(len(reader), dtype=np.int64)[index::count]
    size = reader.size

    def load(i, label):
        pixels, ok = tf.numpy_function(reader.read, [i], (tf.uint8, tf.bool), stateful=True)
        pixels.set_shape((size, size, 3))
        ok.set_shape(())
        return pixels, tf.cast(label, label_type), ok

    def readable(pixels, label, ok):
        return ok

    def without_flag(pixels, label, ok):
        return pixels, label

    def to_float(images, labels):
        images = tf.cast(images, tf.float32)
        return (augment(images, training=True) if augment is not None else images), labels

    ds = tf.data.Dataset.from_tensor_slices((ids, reader.labels[ids]))
    if training:
        ds = ds.shuffle(max(1, len(ids)), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.filter(readable).map(without_flag).batch(batch_size)
    ds = ds.map(to_float, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(PREFETCH_BATCHES)


def open_readers(data: Dataset, size: int, interpolation: Interpolation, decode: Decode,
                 cache: Optional[Path] = None) -> tuple[ImageReader, ImageReader]:
    """The training and validation readers of a dataset, each with its cache entry under `cache`."""
    def reader(examples: list[Example]) -> ImageReader:
        entry = None
        if cache is not None:
            entry = DecodedCache.open(cache, [path for path, _ in examples], size, interpolation, decode)
        return ImageReader(examples, size, interpolation, decode, entry)

    return reader(data.train), reader(data.val)


class Streams(NamedTuple):
    """What `model.fit` takes: the two datasets and, when they repeat, the steps of one epoch of each."""

    train: Any
    val: Any
    train_steps: Optional[int] = None
    val_steps: Optional[int] = None


def distributed_datasets(tf, strategy, readers: tuple[ImageReader, ImageReader], batch_size: int, seed: int,
                         sigmoid: bool, augment: Any = None, workers: int = 1) -> Streams:
    """The training and validation datasets for `model.fit` under `strategy`, sharded per input pipeline.

    Args:
        workers: processes training together; above one, the shards repeat and epochs count steps.

    Raises:
        OptionError: the global batch does not split evenly over the replicas.
    """
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise OptionError(f"--batch-size {batch_size} is the global batch and must be a multiple of the "
                          f"{replicas} replicas training in sync")
    repeat = workers > 1

    def distributed(reader: ImageReader, training: bool):
        def dataset_fn(context):
            return split_dataset(tf, reader, context.get_per_replica_batch_size(batch_size), training, seed,
                                 sigmoid, augment if training else None,
                                 (context.input_pipeline_id, context.num_input_pipelines), repeat)

        return strategy.distribute_datasets_from_function(dataset_fn)

    train_reader, val_reader = readers
    streams = Streams(distributed(train_reader, True), distributed(val_reader, False))
    if not repeat:
        return streams
    return streams._replace(train_steps=math.ceil(len(train_reader) / batch_size),
                            val_steps=math.ceil(len(val_reader) / batch_size))
