"""A run folder is not overwritten silently: a finished run needs --force, --resume needs the same --size."""

import json

import pytest
from click.testing import CliRunner

from edgelite.cli import cli
from edgelite.errors import OptionError, OutputExistsError
from edgelite.train import TrainOptions, train


@pytest.mark.parametrize("case, files, resume, error, message", [
    ("a finished run", ["history.json", "scratch_01_0.900.keras"], False, OutputExistsError,
     "{out}/history.json already exists (a finished run); pass --force to start a new run over it, "
     "or choose another --out"),
    ("an unfinished run", ["history.json", "resume.keras"], False, OutputExistsError,
     "{out} holds an earlier run; pass --resume to continue it, --force to replace its resume.keras and "
     "history.json, or choose another --out"),
    ("nothing to resume", ["history.json"], True, OptionError, "nothing to resume: {out}/resume.keras does not exist"),
])
def test_a_run_folder_in_use_is_refused_before_any_work(color_data, tmp_path, case, files, resume, error, message):
    out = tmp_path / "run"
    out.mkdir()
    for name in files:
        (out / name).write_text("earlier")
    with pytest.raises(error) as raised:
        train("scratch", TrainOptions(data=color_data, out=out, epochs=1, resume=resume, verbose=0), {"size": 32})
    assert str(raised.value) == message.format(out=out)
    assert all((out / name).read_text() == "earlier" for name in files)


@pytest.mark.parametrize("changes, message", [
    ({"resume": True, "force": True}, "--resume continues the run in --out and --force replaces it; pass one of them"),
])
def test_contradictory_options(color_data, tmp_path, changes, message):
    with pytest.raises(OptionError, match=message):
        TrainOptions(data=color_data, out=tmp_path, **changes)


def test_an_out_that_is_a_file_is_refused(color_data, tmp_path):
    path = tmp_path / "run"
    path.write_text("a file")
    with pytest.raises(OptionError, match=f"--out {path} is a file; expected a run folder"):
        train("scratch", TrainOptions(data=color_data, out=path, epochs=1, verbose=0), {"size": 32})


def test_the_cli_names_the_file_and_force(color_data, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "history.json").write_text("{}")
    result = CliRunner().invoke(cli, ["train", "scratch", "--data", str(color_data), "--out", str(out), "--size", "32"])
    assert result.exit_code == 1
    assert result.stderr == (f"error: {out / 'history.json'} already exists (a finished run); pass --force to start "
                             "a new run over it, or choose another --out\n")
    help_text = CliRunner().invoke(cli, ["train", "scratch", "--help"]).output
    assert "--force" in help_text and "--resume continues it or --force replaces it" in help_text


def test_force_starts_a_new_run_over_a_finished_one(color_data, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "history.json").write_text(json.dumps({"epochs": [{"epoch": n} for n in range(1, 8)]}))
    (out / "resume.keras").write_text("the earlier run's commit point")
    result = train("scratch", TrainOptions(data=color_data, out=out, epochs=1, batch_size=16, verbose=0, force=True),
                   {"size": 32})
    assert len(json.loads((out / "history.json").read_text())["epochs"]) == 1
    assert result.best_checkpoint is not None and result.best_checkpoint.is_file()


@pytest.mark.parametrize("best_checkpoint_kept", [True, False], ids=["read from the checkpoint", "read from the model"])
def test_resume_with_another_size_is_a_clear_error(color_data, tmp_path, best_checkpoint_kept):
    out = tmp_path / "run"
    first = train("scratch", TrainOptions(data=color_data, out=out, epochs=1, batch_size=16, verbose=0), {"size": 32})
    if not best_checkpoint_kept:
        first.best_checkpoint.unlink()
    with pytest.raises(OptionError) as raised:
        train("scratch", TrainOptions(data=color_data, out=out, epochs=2, batch_size=16, verbose=0, resume=True),
              {"size": 40})
    assert str(raised.value) == (f"--size 40 differs from the run in {out}, which trains at 32x32; resume with "
                                 "--size 32, or start a new run with --force or another --out")
