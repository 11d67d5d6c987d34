"""What the subcommands share: argument types, the accelerator's flags, and flags derived from a
configuration dataclass's fields (their defaults and help in one place: the dataclass)."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from vq4all.golden.errors import InputError
from vq4all.golden.numerics import ACTIVATION_BITS
from vq4all.hw.params import MODES, AcceleratorParams

__all__ = [
    "accelerator_params",
    "add_config",
    "add_params",
    "check_codebook_params",
    "config_from",
    "floats",
    "positive",
    "power_of_two",
    "shape",
]


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def power_of_two(text: str) -> int:
    value = positive(text)
    if value & (value - 1):
        raise argparse.ArgumentTypeError(f"{value} is not a power of two")
    return value


def shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(size) for size in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not C,H,W") from None
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not C,H,W")
    return shape


def floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(value) for value in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list") from None


def add_normalize(parser: argparse.ArgumentParser) -> None:
    """``--mean``/``--std``: how images read from a folder are normalised."""
    parser.add_argument("--mean", type=floats, help="per-channel mean of folder images")
    parser.add_argument("--std", type=floats, help="per-channel std of folder images")


def normalize_from(args: argparse.Namespace) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """``(mean, std)`` of :func:`add_normalize`'s flags, or None; both or neither."""
    if (args.mean is None) != (args.std is None):
        raise InputError("--mean and --std go together")
    return (args.mean, args.std) if args.mean is not None else None


def add_params(parser: argparse.ArgumentParser, limits: str = "") -> None:
    defaults = AcceleratorParams()
    group = parser.add_argument_group(
        "accelerator parameters",
        f"The limits default to {limits}{defaults.max_inputs} inputs, {defaults.max_outputs} "
        f"outputs and {defaults.max_columns} columns.",
    )
    group.add_argument(
        "--K", type=power_of_two, default=None, help="codebook entries (default: the codebook's)"
    )
    group.add_argument(
        "--D", type=positive, default=None, help="codeword length (default: the codebook's)"
    )
    group.add_argument("--L", type=positive, default=4, help="output lanes (default: 4)")
    group.add_argument("--max-inputs", type=positive, help="largest N (inputs per column)")
    group.add_argument("--max-outputs", type=positive, help="largest M (outputs per column)")
    group.add_argument("--max-columns", type=positive, help="most im2col columns in one layer run")
    group.add_argument(
        "--mode", choices=MODES, default="rom", help="codebook memory (default: rom)"
    )
    group.add_argument(
        "--activation-bits",
        type=int,
        choices=ACTIVATION_BITS,
        help="activation width (default: the network program's, else 8)",
    )


def check_codebook_params(args: argparse.Namespace, codebook) -> None:
    for name, value in (("K", codebook.K), ("D", codebook.D)):
        given = getattr(args, name)
        if given is not None and given != value:
            raise InputError(
                f"--{name} {given} does not match the codebook's {name}={value} ({args.codebook})"
            )


def accelerator_params(
    args: argparse.Namespace, codebook, fallback: AcceleratorParams | None = None
) -> AcceleratorParams:
    """The accelerator of the flags, for ``codebook``: limits not given are ``fallback``'s."""
    check_codebook_params(args, codebook)
    return AcceleratorParams.for_runs(
        [],
        codebook.K,
        codebook.D,
        args.L,
        args.mode,
        args.activation_bits,
        args.max_inputs,
        args.max_outputs,
        args.max_columns,
        fallback,
    )


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config(
    parser: argparse.ArgumentParser, config_type: type, title: str, defaults: Any = None
) -> None:
    """One flag per field of dataclass ``config_type`` (``--block-steps`` for ``block_steps``),
    with the field's type and ``help`` / ``choices`` metadata, and its value in ``defaults``
    (default: the field's default) as the default."""
    group = parser.add_argument_group(title)
    for field in dataclasses.fields(config_type):
        default = getattr(defaults, field.name) if defaults is not None else field.default
        help_text = f"{field.metadata.get('help', '')} (default: {default})"
        if isinstance(default, bool):
            action = argparse.BooleanOptionalAction
            group.add_argument(_flag(field.name), action=action, default=default, help=help_text)
            continue
        group.add_argument(
            _flag(field.name),
            type=type(default),
            default=default,
            choices=field.metadata.get("choices"),
            help=help_text,
        )


def config_from(config_type: type, args: argparse.Namespace) -> Any:
    """The ``config_type`` of the flags of :func:`add_config`."""
    return config_type(
        **{field.name: getattr(args, field.name) for field in dataclasses.fields(config_type)}
    )
