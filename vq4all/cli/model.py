"""Model subcommands: ``codebook``, ``compress`` and ``export``."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from vq4all.cli.options import (
    add_config,
    add_normalize,
    config_from,
    normalize_from,
    positive,
    power_of_two,
    shape,
)
from vq4all.golden.codebook import load_codebook
from vq4all.golden.numerics import ACTIVATION_BITS
from vq4all.model.codebook import WEIGHTINGS
from vq4all.model.compress import CompressConfig
from vq4all.model.metrics import METRICS

__all__ = ["add_commands"]


def _cmd_codebook(args: argparse.Namespace) -> None:
    from vq4all.flow import make_codebook
    from vq4all.model.workloads.data import load_dataset

    sources = args.sources.split(",")
    codebook = make_codebook(
        args.output,
        load_dataset(args.data),
        sources,
        args.K,
        args.D,
        args.seed,
        input_shape=args.input_shape,
        weighting=args.weighting,
    )
    sampled = codebook.provenance["subvectors_sampled"]
    print(f"wrote {args.output}: K={codebook.K} D={codebook.D} from {', '.join(sources)} "
          f"({sampled} sub-vectors) sha256={codebook.sha256}")  # fmt: skip


def _cmd_compress(args: argparse.Namespace) -> None:
    from vq4all.flow import compress_network
    from vq4all.model.datafree import DataFreeConfig

    config = config_from(CompressConfig, args)  # bad flags first, before any file is read
    codebook = load_codebook(args.codebook)
    normalize = normalize_from(args)
    result = compress_network(
        args.output,
        codebook,
        args.network,
        None if args.data == "none" else args.data,
        config,
        weights=args.weights,
        held_out=args.held_out,
        input_shape=args.input_shape,
        normalize=normalize,
        keep_unsupported=args.keep_unsupported,
        data_free=DataFreeConfig(count=args.data_free_images, steps=args.data_free_steps),
        export_check=not args.no_export_check,
        metric=args.metric,
    )
    data = "images synthesised from BatchNorm statistics" if args.data == "none" else args.data
    print(f"wrote {args.output}: {args.network} on {data}")
    print(result.report.format())


def _cmd_export(args: argparse.Namespace) -> None:
    from vq4all.flow import export_program

    codebook = load_codebook(args.codebook)
    export = export_program(args.output, codebook, args.compressed, args.activation_bits)
    program = export.program
    accuracy = "" if math.isnan(export.accuracy) else f"accuracy {export.accuracy:.2f}%, "
    print(
        f"wrote {args.output}: {export.network}, {len(program.layers)} layers, "
        f"{len(program.graph)} ops, {program.activation_bits}-bit activations; golden integer "
        f"on {export.checked_on}: {accuracy}agreement with the float VQ model "
        f"{export.agreement:.2f}%"
    )


def add_commands(commands) -> None:
    codebook_cmd = commands.add_parser(
        "codebook", help="build a universal codebook from zoo networks and your own models"
    )
    codebook_cmd.add_argument(
        "--sources",
        default="mlp,cnn,rescnn",
        help="comma-separated zoo networks and trained models (model.py:factory, model.pt2, "
        "model.ts) (default: mlp,cnn,rescnn)",
    )
    codebook_cmd.add_argument(
        "--input-shape",
        type=shape,
        default=None,
        help="C,H,W of a TorchScript source's input (torch.export files carry theirs)",
    )
    codebook_cmd.add_argument(
        "--data", default="digits", help="digits or fashion-mnist (default: digits)"
    )
    codebook_cmd.add_argument(
        "--K", type=power_of_two, default=65536, help="codewords (default: 2^16)"
    )
    codebook_cmd.add_argument("--D", type=positive, default=8, help="codeword length (default: 8)")
    codebook_cmd.add_argument(
        "--weighting",
        choices=WEIGHTINGS,
        default="equal",
        help="each source's share of the density: the same, or in proportion to its weights "
        "(default: equal)",
    )
    codebook_cmd.add_argument("--seed", type=int, default=0)
    codebook_cmd.add_argument(
        "-o", "--output", type=Path, default=Path("build/model/codebook.safetensors")
    )
    codebook_cmd.set_defaults(run=_cmd_codebook)

    compress_cmd = commands.add_parser(
        "compress",
        help="compress a network (a zoo name, your model.py:factory or model.pt2) against a "
        "codebook",
        description="Compress a zoo network, or your own model (a Python file and the name of a "
        "factory in it that returns the nn.Module, with --weights; or a torch.export .pt2 or "
        "TorchScript file), against a universal codebook. The checkpoint rebuilds the model, "
        "so that export takes it as it is.",
    )
    compress_cmd.add_argument(
        "--codebook", type=Path, default=Path("build/model/codebook.safetensors")
    )
    compress_cmd.add_argument(
        "--network",
        default="dscnn",
        help="zoo network, path/to/model.py:factory, or a torch.export (.pt2) or TorchScript "
        "(.pt, .ts) file (default: dscnn)",
    )
    compress_cmd.add_argument(
        "--weights", type=Path, help="state dict of a model file (.safetensors, .pt or .pth)"
    )
    compress_cmd.add_argument(
        "--data",
        default="digits",
        help="calibration and distillation data: digits or fashion-mnist for a zoo network; "
        "for a model file, a .npy/.npz/.safetensors file of images [N,C,H,W] (and labels), a "
        "folder of images, or 'none' to synthesise them from BatchNorm statistics "
        "(default: digits)",
    )
    compress_cmd.add_argument(
        "--held-out", help="images of a model file's to score against the float model"
    )
    compress_cmd.add_argument(
        "--input-shape",
        type=shape,
        help="C,H,W of a model file's input (for --data none, and TorchScript)",
    )
    add_normalize(compress_cmd)
    compress_cmd.add_argument(
        "--keep-unsupported",
        action="store_true",
        help="keep layers with no GEMM form (an LSTM...) in int8 instead of stopping",
    )
    compress_cmd.add_argument(
        "--metric",
        choices=METRICS,
        help="what the model's output is, for the held-out scores (default: probabilities when "
        "the float outputs lie in [0, 1], else logits for a score per class, else regression)",
    )
    compress_cmd.add_argument(
        "--no-export-check",
        action="store_true",
        help="compress even when the model would not export to a network program (checked "
        "before any training)",
    )
    compress_cmd.add_argument(
        "--data-free-images", type=positive, default=64, help="images to synthesise (--data none)"
    )
    compress_cmd.add_argument(
        "--data-free-steps", type=positive, default=200, help="optimizer steps per batch of them"
    )
    add_config(compress_cmd, CompressConfig, "compression (the fields of CompressConfig)")
    compress_cmd.add_argument(
        "-o", "--output", type=Path, default=Path("build/model/compressed.safetensors")
    )
    compress_cmd.set_defaults(run=_cmd_compress)

    export_cmd = commands.add_parser(
        "export", help="export a compressed network to a network program"
    )
    export_cmd.add_argument(
        "--codebook", type=Path, default=Path("build/model/codebook.safetensors")
    )
    export_cmd.add_argument(
        "--compressed", type=Path, default=Path("build/model/compressed.safetensors")
    )
    export_cmd.add_argument(
        "-o", "--output", type=Path, default=Path("build/model/network.safetensors")
    )
    # 16 for a network whose outputs hang on finer differences than 256 codes resolve
    # (MobileNetV2's golden agrees with its float VQ model on 85% of crops at 8, 99% at 16).
    export_cmd.add_argument(
        "--activation-bits",
        type=int,
        choices=ACTIVATION_BITS,
        default=8,
        help="width of the program's activations (the accelerator is built for it)",
    )
    export_cmd.set_defaults(run=_cmd_export)
