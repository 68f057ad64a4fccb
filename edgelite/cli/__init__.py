"""The `edgelite` command: one small module per command group, no logic of its own."""

from __future__ import annotations

import os
import sys

import click

from edgelite import __version__
from edgelite.cli.common import safe_text
from edgelite.errors import EdgeliteError


class EdgeliteGroup(click.Group):
    """Turns library errors into one line on stderr and exit code 1 (the trace with --debug)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except EdgeliteError as exc:
            if _debug(ctx):
                raise
            click.echo(f"error: {safe_text(exc)}", err=True)
            ctx.exit(1)
        except BrokenPipeError:  # the reader went away (| head): end quietly, as a Unix tool does
            _quiet_stdout()
            ctx.exit(141)
        except KeyboardInterrupt:
            click.echo("error: interrupted", err=True)
            ctx.exit(130)
        except Exception as exc:  # the last guard: never show a user a traceback
            if _debug(ctx):
                raise
            click.echo(f"error: unexpected {type(exc).__name__}: {safe_text(exc)} "
                       "(run 'edgelite --debug ...' for the trace)", err=True)
            ctx.exit(1)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so the flush at exit does not fail on the closed pipe again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is not a file descriptor (captured): nothing to flush into a pipe
        pass


def _debug(ctx: click.Context) -> bool:
    return bool((ctx.obj or {}).get("debug")) or os.environ.get("EDGELITE_DEBUG") == "1"


@click.group(cls=EdgeliteGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgelite")
@click.option("--debug", is_flag=True, help="Show the full trace of an error.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """edgelite: convert a Keras image classifier, run it on a device, measure it.

    \b
    Example:
      edgelite convert model.keras --out artifacts --calibration data/validation
      edgelite predict artifacts/model_int8.tflite photo.jpg
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def _register() -> None:
    from edgelite.cli import bench, convert, demo, evaluate, predict, serve, train

    for module in (convert, predict, train, evaluate, bench, demo, serve):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="edgelite")
    sys.exit(0)
