"""The ``spikeship`` command line: a thin click shell over :mod:`spikeship.api`.

One module per subcommand (``spikeship/cli/<command>.py``), imported only when called,
so ``spikeship --help`` stays fast and a broken optional dependency (Lava, say) cannot
break unrelated commands. click is imported nowhere else in spikeship.

Errors from :mod:`spikeship.errors` become one line on stderr and a non-zero exit
code (the error's ``exit_code``); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import sys

import click

from spikeship import __version__
from spikeship.errors import SpikeshipError, UsageError

# name -> ("module:attribute", one-line help). The attribute is a click.Command.
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("spikeship.cli.train:train", "Train an SNN (or its ANN twin), optionally pruning."),
    "export": ("spikeship.cli.export:export", "Export a run's checkpoint to NIR, ONNX and netx."),
    "simulate": ("spikeship.cli.simulate:simulate", "Run the exported graph on a target."),
    "energy": ("spikeship.cli.energy:energy", "Count synops, price them per chip, vanish check."),
    "compare": ("spikeship.cli.compare:compare", "Compare run directories in a paper-style table."),
    "report": ("spikeship.cli.report:report", "Write report.md / report.html / plots for a run."),
    "pipeline": ("spikeship.cli.pipeline:pipeline", "Train, export, simulate, price and report in one go."),
    "inspect": ("spikeship.cli.inspect:inspect", "Show what a NIR/ONNX/netx file holds."),
    "targets": ("spikeship.cli.targets:targets", "List the simulators (options, capabilities) and chips."),
    "data": ("spikeship.cli.data:data", "Fetch datasets into the data cache (mnist)."),
    "import": ("spikeship.cli.import_:import_", "Import a lava-dl netx file as NIR."),
    "tune": ("spikeship.cli.tune:tune", "Search pruning budgets: a Pareto front on Optuna."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module_name, attr = COMMANDS[name][0].split(":")
        return getattr(importlib.import_module(module_name), attr)

    def format_commands(self, ctx, formatter):
        # the one-line help of each command from COMMANDS: `spikeship --help` imports
        # none of the command modules (torch, matplotlib, Lava stay unloaded)
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_text) for name, (_, help_text) in COMMANDS.items()])


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
    except click.UsageError as e:
        # a misspelled choice, a missing argument, an unknown command: exit 2
        if debug:
            raise UsageError(e.format_message()) from e
        sub = e.ctx.command_path.removeprefix("spikeship").strip() if e.ctx else ""
        click.echo(f"spikeship: error: {sub + ': ' if sub else ''}{e.format_message()}",
                   err=True)
        return UsageError.exit_code
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
