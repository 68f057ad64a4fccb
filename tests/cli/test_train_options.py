"""`edgelite train <family>` builds TrainOptions from TrainOptions' own defaults, the same for every family."""

import dataclasses

import pytest
from click.testing import CliRunner

import edgelite.train
from edgelite.cli import cli
from edgelite.train import TrainOptions, families, parse_augment

FAMILIES = [f.name for f in families()]


class Stop(Exception):
    """Raised by the stand-in for `train` once it has seen the options."""


@pytest.mark.parametrize("family", FAMILIES)
def test_no_options_means_the_dataclass_defaults(family, tmp_path, monkeypatch):
    seen = []

    def stand_in(name, options, overrides, **kwargs):
        seen.append((name, options, overrides))
        raise Stop

    monkeypatch.setattr(edgelite.train, "train", stand_in)
    CliRunner().invoke(cli, ["train", family, "--data", str(tmp_path)])
    name, options, overrides = seen[0]
    assert (name, overrides) == (family, {})
    assert options == TrainOptions(data=tmp_path, out=options.out, verbose=0)
    assert str(options.out) == f"runs/{family}"


@pytest.mark.parametrize("family", FAMILIES)
def test_every_shared_default_is_the_dataclass_default(family):
    defaults = {f.name: f.default for f in dataclasses.fields(TrainOptions)}
    command = cli.commands["train"].commands[family]
    shown = {p.name: p.default for p in command.params if p.name in defaults and p.show_default}
    assert sorted(shown) == ["augment", "batch_size", "decode", "epochs", "interpolation", "mixed_precision", "seed"]
    assert parse_augment(shown.pop("augment")) == defaults["augment"]  # given as text on the command line
    assert shown == {name: defaults[name] for name in shown}
