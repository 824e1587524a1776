"""The ``spikeship`` command line.

Each subcommand lives next to the code it drives (``spikeship/<pkg>/command.py``)
and is imported only when called, so ``spikeship --help`` stays fast and a broken
optional dependency (Lava, say) cannot break unrelated commands.

Errors from :mod:`spikeship.errors` become one line on stderr and a non-zero exit
code (the error's ``exit_code``); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import sys

import click

from spikeship import __version__
from spikeship.errors import NotYetAvailableError, SpikeshipError

# name -> ("module:attribute", one-line help). The attribute is a click.Command.
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("spikeship.train.command:train", "Train an SNN (or its ANN twin), optionally pruning."),
    "export": ("spikeship.targets.export_command:export", "Export a run's checkpoint to NIR, ONNX and netx."),
    "simulate": ("spikeship.sim.command:simulate", "Run the exported graph on a target."),
    "energy": ("spikeship.energy.command:energy", "Count synops, price them per chip, vanish check."),
    "compare": ("spikeship.report.compare:compare", "Compare run directories in a paper-style table."),
    "report": ("spikeship.report.command:report", "Write report.md / report.html / plots for a run."),
    "pipeline": ("spikeship.pipeline:pipeline", "Train, export, simulate, price and report in one go."),
    "inspect": ("spikeship.export.inspect_command:inspect", "Show what a NIR/ONNX/netx file holds."),
}


def _not_available(name: str, help_text: str, reason: str) -> click.Command:
    @click.command(name=name, help=f"{help_text} (not yet available)",
                   context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def _cmd(args):  # noqa: ARG001
        raise NotYetAvailableError(f"'spikeship {name}' is not yet available ({reason})")

    return _cmd


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        target, help_text = COMMANDS[name]
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name and (module_name == e.name or module_name.startswith(e.name + ".")):
                return _not_available(name, help_text, f"{module_name} does not exist yet")
            raise
        cmd = getattr(module, attr, None)
        if cmd is None:
            return _not_available(name, help_text, f"{target} does not exist yet")
        return cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="spikeship")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """spikeship: train and prune SNNs, export through NIR, run in Lava / ONNX / Norse,
    and price what the deployed network really does."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``spikeship`` console script; returns the exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        cli.main(args=args, prog_name="spikeship", standalone_mode=False)
    except SpikeshipError as e:
        if debug:
            raise
        click.echo(f"spikeship: error: {e}", err=True)
        return e.exit_code
    except click.exceptions.Abort:
        click.echo("spikeship: aborted", err=True)
        return 130
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except KeyboardInterrupt:
        click.echo("spikeship: interrupted", err=True)
        return 130
    except MemoryError as e:
        if debug:
            raise
        click.echo(f"spikeship: error: out of memory ({e or 'allocation failed'})", err=True)
        return INTERNAL_ERROR_EXIT
    except Exception as e:  # noqa: BLE001 - the last line of defence: still one line, no trace
        if debug:
            raise
        first = str(e).splitlines()[0] if str(e) else ""
        click.echo(f"spikeship: internal error: {type(e).__name__}: {first} (a bug: this should "
                   "have been a named error; --debug shows the traceback)", err=True)
        return INTERNAL_ERROR_EXIT
    return 0


# Exit code of an exception that is not a SpikeshipError (EX_SOFTWARE of sysexits.h).
INTERNAL_ERROR_EXIT = 70


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
