"""The `dexforge` command: one entry point for every layer's commands.

Bad input (an unknown asset, a malformed spec, a missing file) ends with one line on stderr and
exit status 2, never a traceback; set DEXFORGE_DEBUG=1 to see the traceback.
"""

from __future__ import annotations

import os
import sys

import typer

from dexforge import __version__
from dexforge.agents import batch_cli, run_cli
from dexforge.evals import cli as eval_cli
from dexforge.memory import cli as memory_cli
from dexforge.policies import cli as policy_cli
from dexforge.policies.dexgen import cli as dexgen_cli
from dexforge.sim.cli import app as sim_app

app = typer.Typer(
    help="dexforge: from a sentence to a simulated dexterous-hand task, trained policies and a dataset.\n\n"
    "State (runs, caches, your catalog) lives in $DEXFORGE_HOME (default: your data directory).",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
app.command("run")(run_cli.run)
app.command("resume")(run_cli.resume)
app.command("chat")(run_cli.chat)
app.command("overnight")(batch_cli.overnight)
app.add_typer(memory_cli.app, name="memory")
app.add_typer(sim_app, name="sim")
app.command("train")(policy_cli.train)
app.command("eval")(eval_cli.evaluate)
app.add_typer(policy_cli.dataset_app, name="dataset")
app.add_typer(dexgen_cli.app, name="dexgen")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dexforge {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """dexforge command line."""


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors become one line on stderr and exit status 2."""
    from pydantic import ValidationError

    from dexforge.home import DexforgeError

    try:
        code = app(args=argv, standalone_mode=False)  # click returns typer.Exit's code here
        if isinstance(code, int):
            return code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except (DexforgeError, ValidationError, FileNotFoundError, ValueError) as exc:
        if os.environ.get("DEXFORGE_DEBUG"):
            raise
        typer.echo(f"error: {_one_line(exc)}", err=True)
        return 2
    except Exception as exc:  # click's usage errors
        from typer._click.exceptions import ClickException

        if isinstance(exc, ClickException):
            exc.show()
            return exc.exit_code
        raise
    return 0


def _one_line(exc: Exception) -> str:
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        from dexforge.sim.spec import describe_validation_error

        return describe_validation_error(exc)
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return f"no such file: {exc.filename}"
    return " ".join(str(exc).split())


if __name__ == "__main__":
    sys.exit(main())
