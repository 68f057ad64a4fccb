"""One way to read image folders: hidden folders, suffixes, symlinked class folders, loops, unreadable folders."""

import os
from pathlib import Path

import pytest
from PIL import Image

from edgelite.errors import DatasetError
from edgelite.runtime import folder as folder_module
from edgelite.runtime.folder import class_files, list_images, read_folder
from edgelite.runtime.preprocess import IMAGE_SUFFIXES


def image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (10, 20, 30)).save(path, format="PNG")
    return path


@pytest.fixture()
def classes(tmp_path):
    """data/{a,b}/ with two images each, a hidden folder at the top and one inside a class."""
    data = tmp_path / "data"
    for name in ("a", "b"):
        image(data / name / "1.png")
        image(data / name / "2.png")
    image(data / ".ipynb_checkpoints" / "x.png")
    image(data / "a" / ".thumbnails" / "t.png")
    return data


def labelled(items):
    return sorted((item.label, item.path.name) for item in items)


def test_hidden_folders_are_skipped_at_every_depth(classes):
    assert labelled(read_folder(classes)) == [("a", "1.png"), ("a", "2.png"), ("b", "1.png"), ("b", "2.png")]
    assert [p.relative_to(classes).as_posix() for p in list_images(classes)] == ["a/1.png", "a/2.png", "b/1.png",
                                                                                "b/2.png"]


def test_train_convert_and_evaluate_see_the_same_class_folders(classes):
    from edgelite.convert.source import class_folder_names
    from edgelite.train.data import find_splits

    names, train, val = find_splits(classes, 0.5)
    assert names == class_folder_names(classes) == tuple(sorted({i.label for i in read_folder(classes)})) == ("a", "b")
    assert len(train) + len(val) == 4  # the images in a/.thumbnails/ are not training data either


def test_no_images_names_every_suffix_looked_for(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError) as error:
        read_folder(tmp_path / "empty")
    assert str(error.value) == f"{tmp_path / 'empty'}: no images found (looked for {', '.join(IMAGE_SUFFIXES)})"
    assert ".tiff" in str(error.value)


def test_class_folders_that_are_symlinks_are_followed(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    image(elsewhere / "cats" / "deep" / "c.png")
    image(elsewhere / "dogs" / "d.png")
    data = tmp_path / "data"
    image(data / "birds" / "b.png")
    (data / "cats").symlink_to(elsewhere / "cats", target_is_directory=True)
    (data / "birds" / "more").symlink_to(elsewhere / "dogs", target_is_directory=True)  # a link deeper down
    assert labelled(read_folder(data)) == [("birds", "b.png"), ("birds", "d.png"), ("cats", "c.png")]
    assert (data / "cats" / "deep" / "c.png") in class_files(data)["cats"]


def test_a_symlink_loop_ends_and_reads_each_image_once(tmp_path):
    data = tmp_path / "data"
    image(data / "a" / "1.png")
    image(data / "b" / "2.png")
    (data / "a" / "again").symlink_to(data / "a", target_is_directory=True)  # a folder inside itself
    (data / "b" / "up").symlink_to(data, target_is_directory=True)  # back to the dataset
    (data / "b" / "sideways").symlink_to(data / "a", target_is_directory=True)
    assert labelled(read_folder(data)) == [("a", "1.png"), ("b", "1.png"), ("b", "2.png")]
    assert [p.name for p in list_images(data)] == ["1.png", "2.png"]


@pytest.fixture()
def locked(monkeypatch, classes):
    """classes/b cannot be listed, as for a user without read permission (the tests run as root too)."""
    real = os.scandir
    target = classes / "b"

    def scandir(path="."):
        if Path(path) == target:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(folder_module.os, "scandir", scandir)
    return target


def test_an_unreadable_folder_is_an_error_or_goes_to_the_caller(classes, locked):
    message = f"{locked}: cannot read the folder (Permission denied)"
    for read in (list_images, read_folder):
        with pytest.raises(DatasetError) as error:
            read(classes)
        assert str(error.value) == message
    seen = []
    assert [p.name for p in list_images(classes, on_unreadable=lambda *found: seen.append(found))] == ["1.png", "2.png"]
    assert seen == [(locked, message)]


def test_training_names_an_unreadable_class_folder(classes, locked):
    from edgelite.train.data import find_splits

    with pytest.raises(DatasetError, match="b: cannot read the folder"):
        find_splits(classes, 0.5)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a folder whatever its mode")
def test_a_real_unreadable_folder(classes):
    (classes / "b").chmod(0)
    try:
        with pytest.raises(DatasetError, match="cannot read the folder"):
            list_images(classes)
    finally:
        (classes / "b").chmod(0o755)
