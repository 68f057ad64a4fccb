"""Streaming input: every readable image once per epoch, seeded order, the pixels of `preprocess`; the cache."""

import json

import numpy as np
import pytest

from edgelite.errors import DatasetError, OptionError
from edgelite.runtime.preprocess import preprocess
from edgelite.train import TrainOptions, train
from edgelite.train.cache import DecodedCache
from edgelite.train.data import scan_dataset
from edgelite.train.stream import READ_LOG_VARIABLE, ImageReader, split_dataset
from tests.conftest import make_dataset

tf = pytest.importorskip("tensorflow")

SIZE = 16


@pytest.fixture()
def data(tmp_path):
    """Three classes of 5 + 2 images, one training JPEG truncated (its header still reads)."""
    root = make_dataset(tmp_path / "data", {"train": 5, "validation": 2})
    whole = (root / "train" / "green" / "green_004.jpg").read_bytes()
    (root / "train" / "green" / "green_004.jpg").write_bytes(whole[:len(whole) // 2])
    return root


def _by_pixels(paths, size=SIZE, interpolation="bilinear"):
    """path of each image, keyed by the exact bytes `preprocess` gives for it."""
    return {preprocess(p, size, size, interpolation).pixels.astype(np.uint8).tobytes(): p for p in paths}


def _epochs(dataset, lookup, count):
    """The paths (found by their exact pixels) and labels of `count` passes over `dataset`."""
    passes = []
    for _ in range(count):
        seen = []
        for images, labels in dataset:
            for image, label in zip(images.numpy(), labels.numpy()):
                assert image.dtype == np.float32
                seen.append((lookup[image.astype(np.uint8).tobytes()], int(label)))
        passes.append(seen)
    return passes


def test_each_epoch_yields_every_readable_image_once_with_the_pixels_of_preprocess(data):
    dataset = scan_dataset(data)
    reader = ImageReader(dataset.train, SIZE)
    truncated = data / "train" / "green" / "green_004.jpg"
    readable = [(p, label) for p, label in dataset.train if p != truncated]
    lookup = _by_pixels([p for p, _ in readable])

    first, second = _epochs(split_dataset(tf, reader, 4, training=True, seed=3), lookup, 2)
    assert sorted(first) == sorted(readable) and sorted(second) == sorted(readable)  # once each, right labels
    assert first != second  # reshuffled every epoch
    again = _epochs(split_dataset(tf, ImageReader(dataset.train, SIZE), 4, training=True, seed=3), lookup, 1)[0]
    other = _epochs(split_dataset(tf, ImageReader(dataset.train, SIZE), 4, training=True, seed=4), lookup, 1)[0]
    assert again == first and other != first  # the order is the seed's
    [message] = reader.failures.values()  # the truncated file, remembered, not retried
    assert message.startswith(f"{truncated}: truncated or corrupt image")


def test_validation_is_read_in_file_order_and_shards_are_disjoint(data):
    dataset = scan_dataset(data)
    lookup = _by_pixels([p for p, _ in dataset.val])
    whole = _epochs(split_dataset(tf, ImageReader(dataset.val, SIZE), 4, training=False), lookup, 1)[0]
    assert whole == dataset.val
    shards = [_epochs(split_dataset(tf, ImageReader(dataset.val, SIZE), 2, training=False, shard=(i, 2)),
                      lookup, 1)[0] for i in (0, 1)]
    assert shards == [dataset.val[0::2], dataset.val[1::2]]


def test_a_truncated_file_is_skipped_and_counted_while_training(data, tmp_path):
    lines = []
    result = train("scratch", TrainOptions(data=data, out=tmp_path / "run", epochs=2, batch_size=4, verbose=0),
                   {"size": SIZE}, log=lines.append)
    assert "14 training and 6 validation images" in result.dataset
    assert "skipped 1 unreadable file(s)" in result.dataset
    skipped = [line for line in lines if line.startswith("skipped: ")]
    assert len(skipped) == 1 and "green_004.jpg: truncated or corrupt image" in skipped[0]  # reported once


@pytest.mark.parametrize("change, same_entry", [
    ("nothing", True),
    ("a file", False),
    ("the size", False),
    ("the filter", False),
    ("the decode mode", False),
])
def test_the_cache_is_kept_only_while_files_size_filter_and_decode_are_the_same(data, tmp_path, change, same_entry):
    paths = [p for p, _ in scan_dataset(data).train]
    settings = {"size": SIZE, "interpolation": "bilinear", "decode": "fast"}
    cache = DecodedCache.open(tmp_path / "cache", paths, **settings)
    pixels = preprocess(paths[0], SIZE, SIZE).pixels.astype(np.uint8)
    cache.put(0, pixels)
    if change == "a file":
        (data / "train" / "blue" / "blue_003.jpg").write_bytes((data / "train" / "red" / "red_000.jpg").read_bytes())
    elif change == "the size":
        settings["size"] = SIZE * 2
    elif change == "the filter":
        settings["interpolation"] = "bicubic"
    elif change == "the decode mode":
        settings["decode"] = "exact"
    reopened = DecodedCache.open(tmp_path / "cache", paths, **settings)
    assert (reopened.path == cache.path) == same_entry
    assert reopened.filled == (1 if same_entry else 0)
    if same_entry:
        assert np.array_equal(reopened.get(0), pixels)
    entries = sorted(p.name for p in (tmp_path / "cache").glob("*.pixels.npy"))
    # A changed file makes the old entry stale (deleted); another size or filter is an entry of its own.
    assert len(entries) == (1 if change in ("nothing", "a file") else 2)


def test_with_a_cache_each_image_is_decoded_once_across_epochs_and_runs(data, tmp_path, monkeypatch):
    read_log = tmp_path / "reads.txt"
    monkeypatch.setenv(READ_LOG_VARIABLE, str(read_log))
    options = dict(data=data, epochs=3, batch_size=4, verbose=0, cache=tmp_path / "cache")
    first = train("scratch", TrainOptions(out=tmp_path / "one", **options), {"size": SIZE})
    decoded = read_log.read_text().splitlines()
    assert sorted(decoded) == sorted(set(decoded))  # epochs 2 and 3 read the cache
    assert len(decoded) == 14 + 6  # every readable training and validation image
    second = train("scratch", TrainOptions(out=tmp_path / "two", **options), {"size": SIZE})
    assert read_log.read_text().splitlines() == decoded  # a later run decodes nothing
    assert [h["loss"] for h in second.history] == pytest.approx([h["loss"] for h in first.history], rel=1e-5)
    assert "skipped 1 unreadable file(s)" in second.dataset  # a failed file is not cached as good


def test_classes_selects_class_folders(color_data, tmp_path):
    result = train("scratch", TrainOptions(data=color_data, out=tmp_path / "run", epochs=1, verbose=0,
                                           classes=("red", "blue")), {"size": SIZE})
    assert "80 training and 30 validation images in 2 classes (blue 40, red 40)" in result.dataset
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history["started_from"] is None


@pytest.mark.parametrize("classes, error, message", [
    (("red", "purple"), DatasetError, "no class folder purple; it has blue, green, red"),
    (("red",), OptionError, "--classes needs at least two class names, got red"),
    (("red", "red"), OptionError, "--classes needs at least two class names"),
])
def test_bad_class_selections(color_data, tmp_path, classes, error, message):
    with pytest.raises(error, match=message):
        train("scratch", TrainOptions(data=color_data, out=tmp_path, epochs=1, classes=classes), {"size": SIZE})


def test_the_global_batch_must_split_over_the_replicas():
    from edgelite.train.stream import distributed_datasets

    class TwoReplicas:
        num_replicas_in_sync = 2

    readers = (ImageReader([], SIZE), ImageReader([], SIZE))
    with pytest.raises(OptionError, match="--batch-size 5 is the global batch and must be a multiple of the 2"):
        distributed_datasets(tf, TwoReplicas(), readers, 5, 0, False)


def _filled_cache(data, folder):
    paths = [p for p, _ in scan_dataset(data).train]
    cache = DecodedCache.open(folder, paths, SIZE, "bilinear", "fast")
    rows = [preprocess(p, SIZE, SIZE).pixels.astype(np.uint8) for p in paths[:3]]
    for index, pixels in enumerate(rows):
        cache.put(index, pixels)
    return paths, cache, rows


def test_a_truncated_cache_is_rebuilt_with_a_note_not_read_as_black_images(data, tmp_path):
    paths, cache, _ = _filled_cache(data, tmp_path / "cache")
    del cache
    pixels_file = next((tmp_path / "cache").glob("*.pixels.npy"))
    size = pixels_file.stat().st_size
    with open(pixels_file, "r+b") as handle:
        handle.truncate(size // 3)  # rows 0-2 stay flagged done; their pixels are gone
    reopened = DecodedCache.open(tmp_path / "cache", paths, SIZE, "bilinear", "fast")
    assert reopened.filled == 0 and reopened.get(0) is None
    assert len(reopened.notes) == 1 and "damaged decoded-image cache" in reopened.notes[0]
    assert f"its header says {size:,}" in reopened.notes[0]
    assert pixels_file.stat().st_size == size


def test_flipped_bytes_in_a_cached_row_make_it_decoded_again(data, tmp_path):
    paths, cache, rows = _filled_cache(data, tmp_path / "cache")
    del cache
    pixels_file = next((tmp_path / "cache").glob("*.pixels.npy"))
    with open(pixels_file, "r+b") as handle:  # flip bytes inside row 1
        handle.seek(pixels_file.stat().st_size - (len(paths) - 1) * SIZE * SIZE * 3 + 100)
        data_bytes = handle.read(8)
        handle.seek(-8, 1)
        handle.write(bytes(b ^ 0xFF for b in data_bytes))
    reopened = DecodedCache.open(tmp_path / "cache", paths, SIZE, "bilinear", "fast")
    assert np.array_equal(reopened.get(0), rows[0]) and np.array_equal(reopened.get(2), rows[2])
    assert reopened.get(1) is None  # decoded again by its reader, then put back
    assert reopened.filled == 2
    assert "does not match its checksum" in reopened.notes[0]
