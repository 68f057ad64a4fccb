"""`edgelite train <family>`: one subcommand per model-registry entry, options from its config."""

from __future__ import annotations

import dataclasses
import sys
import typing
from pathlib import Path

import click

from edgelite.cli.common import ProgressBar, print_json, safe_text, split_list, table
from edgelite.modes import Decode, Interpolation, MixedPrecision, choices
from edgelite.train.loop import TrainOptions
from edgelite.train.registry import ModelFamily, families


def _config_options(family: ModelFamily):
    """A click option per config field, typed from the field, defaulting to 'leave as configured'."""
    hints = typing.get_type_hints(type(family.config))
    decorators = []
    for field in dataclasses.fields(family.config):
        default = getattr(family.config, field.name)
        hint = hints[field.name]
        if typing.get_origin(hint) is typing.Literal:
            kind = click.Choice([str(v) for v in typing.get_args(hint)])
        else:
            kind = {int: int, float: float, str: str}[type(default)]
        decorators.append(click.option(f"--{field.name.replace('_', '-')}", field.name, type=kind, default=None,
                                       help=f"[default: {default}]"))
    return decorators


# TrainOptions' own defaults, so --help and the library cannot drift apart.
_DEFAULTS = {field.name: field.default for field in dataclasses.fields(TrainOptions)}

# The options every family's command shares, built once (each decorator makes a fresh click.Option per command).
SHARED_OPTIONS = [
    click.option("--data", required=True, type=click.Path(path_type=Path),
                 help="Dataset: DIR/train/<class>/* and DIR/validation/<class>/*, or DIR/<class>/* "
                      "with --val-split."),
    click.option("--out", type=click.Path(path_type=Path), help="Run folder [default: runs/<family>]."),
    click.option("--epochs", default=_DEFAULTS["epochs"], show_default=True, type=int),
    click.option("--batch-size", default=_DEFAULTS["batch_size"], show_default=True, type=int),
    click.option("--val-split", type=float, help="Hold out this fraction when there is no validation/ folder."),
    click.option("--augment", default="none", show_default=True,
                 help="'course' (rotation 30, shift 10 px, shear 10, zoom 0.1, flip), 'none', or "
                      "e.g. 'rotation=30,zoom=0.1,flip'."),
    click.option("--interpolation", default=_DEFAULTS["interpolation"], show_default=True,
                 type=click.Choice(choices(Interpolation))),
    click.option("--decode", default=_DEFAULTS["decode"], show_default=True, type=click.Choice(choices(Decode)),
                 help="JPEG decoding: fast (reduced DCT scale for photos much larger than the input) or exact."),
    click.option("--classes", metavar="A,B,...",
                 help="Train on these class folders only (at least two), e.g. pants,shoes [default: all]."),
    click.option("--cache", type=click.Path(path_type=Path, file_okay=False),
                 help="Keep decoded images in this folder (uint8, memory-mapped) so later epochs, sweep "
                      "variants and later runs do not decode them again; files that change are decoded anew."),
    click.option("--resume", is_flag=True, help="Continue the run in --out from its last completed epoch."),
    click.option("--force", is_flag=True,
                 help="Start a new run in an --out that holds an earlier one, replacing its history.json and "
                      "resume.keras (without it, such a folder is refused)."),
    click.option("--init-from", type=click.Path(path_type=Path, dir_okay=False),
                 help="Start this new run from the weights of a checkpoint of the same family and classes "
                      "(e.g. to train on with --augment course); history.json records it."),
    click.option("--mixed-precision", default=_DEFAULTS["mixed_precision"], show_default=True,
                 type=click.Choice(choices(MixedPrecision)), help="auto: float16 compute on a GPU only."),
    click.option("--xla", is_flag=True, help="Compile the train step with XLA."),
    click.option("--seed", default=_DEFAULTS["seed"], show_default=True, type=int),
    click.option("--sweep", "sweep_spec", metavar="FIELD=V1,V2,...",
                 help="Train one variant per value (e.g. lr=0.0001,0.001,0.01,0.1) and compare them."),
    click.option("--json", "as_json", is_flag=True, help="Print the result as JSON."),
]


def _family_command(family: ModelFamily) -> click.Command:
    names = {f.name for f in dataclasses.fields(family.config)}

    def run(out, augment, classes, sweep_spec, as_json, **given):
        from edgelite.train import parse_augment, parse_sweep, sweep, train

        overrides = {k: v for k, v in given.items() if k in names and v is not None}
        shared = {k: v for k, v in given.items() if k not in names}  # the rest are TrainOptions fields
        options = TrainOptions(out=out or Path("runs") / family.name, augment=parse_augment(augment),
                               classes=split_list(classes), verbose=1 if sys.stdout.isatty() else 0, **shared)
        log = lambda message: click.echo(safe_text(message), err=True)  # noqa: E731 (class names are folder names)
        with ProgressBar() as progress:
            if sweep_spec:
                parameter, values = parse_sweep(sweep_spec, family.configure(**overrides))
                outcome = sweep(family.name, parameter, values, options, overrides, log, progress)
            else:
                result = train(family.name, options, overrides, log=log, progress=progress)
        if sweep_spec:
            _report_sweep(outcome, as_json)
        else:
            _report_run(result, as_json)

    command = run
    for decorator in reversed(SHARED_OPTIONS + _config_options(family)):  # shared ones first in --help
        command = decorator(command)
    example = (f"  edgelite train {family.name} --data data --epochs 10\n"
               f"  edgelite train {family.name} --data data --sweep lr=0.0001,0.001,0.01,0.1\n"
               f"  edgelite train {family.name} --data data --init-from runs/{family.name}/"
               f"{family.name}_10_0.800.keras --augment course --epochs 10 --out runs/{family.name}-augmented")
    help_text = f"Train the {family.summary}.\n\nThe best epoch by validation accuracy is saved as " \
                f"<family>_<epoch>_<accuracy>.keras in the run folder, with its labels and preprocessing " \
                f"inside, ready for 'edgelite convert'. A run folder that holds an earlier run is refused " \
                f"unless --resume continues it or --force replaces it.\n\n\b\nExample:\n{example}"
    return click.command(family.name, help=help_text)(command)


def _report_run(result, as_json: bool) -> None:
    if as_json:
        print_json(result.to_dict())
        return
    table(f"{result.family} in {result.out}", ["result", "value"], [
        ["best checkpoint", result.best_checkpoint.name if result.best_checkpoint else "-"],
        ["best val accuracy", f"{result.best_val_accuracy:.4f} (epoch {result.best_epoch})"],
        ["epochs run", len(result.history)],
        ["seconds / epoch (median)", f"{result.seconds_per_epoch:.1f}"],
        ["images / second (median)", f"{result.images_per_second:.1f}"],
        ["peak memory", f"{result.peak_memory_mb:.0f} MB"],
        ["devices", result.devices],
    ])


def _report_sweep(outcome, as_json: bool) -> None:
    best_value, best = outcome.winner
    if as_json:
        print_json({"parameter": outcome.parameter, "winner": best_value,
                    "plot": str(outcome.plot) if outcome.plot else None,
                    "variants": [{"value": v, **r.to_dict()} for v, r in outcome.results]})
        return
    rows = [[f"{outcome.parameter}={v}", f"{r.best_val_accuracy:.4f}", r.best_epoch,
             r.best_checkpoint.name if r.best_checkpoint else "-"] for v, r in outcome.results]
    table(f"sweep over {outcome.parameter}", ["variant", "best val accuracy", "epoch", "checkpoint"], rows)
    click.echo(f"winner: {outcome.parameter}={best_value} with validation accuracy {best.best_val_accuracy:.4f}")
    if outcome.plot:
        click.echo(f"plot: {outcome.plot}")


@click.group("train")
def train_group() -> None:
    """Train a model family on a folder-per-class dataset (one subcommand per family).

    \b
    Example:
      edgelite train scratch --data data --epochs 10
      edgelite train xception --data data --size 150 --inner 100 --dropout 0.2 --augment course
    """


for _family in families():
    train_group.add_command(_family_command(_family))

COMMANDS = [train_group]
