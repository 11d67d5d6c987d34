"""``vq4all demo``: the main job end to end on the embedded default."""

from __future__ import annotations

import argparse
from pathlib import Path

from vq4all.cli.options import positive, power_of_two

__all__ = ["add_commands"]


def _cmd_demo(args: argparse.Namespace) -> None:
    from vq4all.demo import run_demo

    run_demo(
        args.output,
        K=args.K,
        D=args.D,
        L=args.L,
        sources=args.sources.split(","),
        network=args.network,
        images=args.images,
        sram_images=args.sram_images,
        seed=args.seed,
    )


def add_commands(commands) -> None:
    demo = commands.add_parser(
        "demo",
        help="end to end: codebook, compression, export, then test images through the RTL",
    )
    demo.add_argument("-o", "--output", type=Path, default=Path("build/demo"))
    demo.add_argument(
        "--K", type=power_of_two, default=65536, help="codebook entries (default: 2^16)"
    )
    demo.add_argument("--D", type=positive, default=8, help="codeword length (default: 8)")
    demo.add_argument("--L", type=positive, default=4, help="output lanes (default: 4)")
    demo.add_argument(
        "--sources", default="mlp,cnn,rescnn", help="codebook sources (default: mlp,cnn,rescnn)"
    )
    demo.add_argument(
        "--network", default="dscnn", help="the network compressed and run (default: dscnn)"
    )
    demo.add_argument(
        "--images", type=positive, default=100, help="test images on the RTL (default: 100)"
    )
    demo.add_argument(
        "--sram-images",
        type=positive,
        default=20,
        help="of those, through the trained per-layer VQ program in sram mode (default: 20)",
    )
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_cmd_demo)
