"""``vq4all``: one entry point, each subcommand a thin layer over a library function, in one
module per group of commands.

Errors that a user can cause (bad artifacts, parameters, paths, missing tools) and failed checks
end the program with exit code 2 and one readable line; nothing is half-written. Any other
exception is a bug, and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys

from vq4all.cli import demo, energy, hardware, model
from vq4all.golden.errors import InputError
from vq4all.hw.fpga.synth import SynthesisError
from vq4all.sim.rtl.build import LintError, SimulationError
from vq4all.sim.rtl.toolchain import ToolchainError

__all__ = ["build_parser", "main"]

#: The errors a user can cause or fix, which the command line reports as one line with exit
#: code 2. Anything else is a bug in the project, and keeps its traceback.
USER_ERRORS = (InputError, OSError, SimulationError, LintError, SynthesisError, ToolchainError)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line like every other error (exit code 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="vq4all",
        description="VQ4ALL co-design simulator: universal-codebook decode + MAC accelerator, "
        "bit-exact against a golden PyTorch reference.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (hardware, model, energy, demo):
        group.add_commands(commands)
    return parser


def _one_line(error: BaseException) -> str:
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror}"
    text = str(error)
    return text.splitlines()[0] if text else type(error).__name__


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except USER_ERRORS as error:
        print(f"vq4all: error: {_one_line(error)}", file=sys.stderr)
        return 2
    return 0
