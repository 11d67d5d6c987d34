"""The end-to-end demo on the embedded default (sklearn digits): a universal codebook from some
zoo networks, VQ4ALL compression of one that was not among them, export, then real test images
through the RTL, bit-exact against golden, in rom mode and, for a few, in sram mode; then the
energy and traffic of ROM versus SRAM codebooks for it and for a task-switching schedule over
the zoo."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vq4all.api import Result
from vq4all.flow import (
    Export,
    compress_network,
    export_program,
    make_codebook,
    select_test_images,
)
from vq4all.golden.errors import InputError
from vq4all.model.compress import CompressConfig
from vq4all.model.workloads.data import load_dataset
from vq4all.sim.energy.model import Schedule
from vq4all.sim.energy.report import EnergyReport, energy_report
from vq4all.sim.energy.tables import load_table
from vq4all.sim.rtl.network import NetworkReport, NetworkSimulation, simulate_network

__all__ = ["DemoResult", "run_demo"]


@dataclass(frozen=True)
class DemoResult:
    """What the demo measured: the compression, the export, the two RTL reports and the
    energy model's report."""

    compression: Result
    export: Export
    rom: NetworkReport
    sram: NetworkReport
    energy: EnergyReport


def run_demo(
    out_dir: str | Path,
    *,
    K: int = 65536,  # noqa: N803 - the paper's names
    D: int = 8,  # noqa: N803
    L: int = 4,  # noqa: N803
    sources: list[str] = ("mlp", "cnn", "rescnn"),
    network: str = "dscnn",
    images: int = 100,
    sram_images: int = 2,
    seed: int = 0,
    log=print,
    progress: bool = True,
) -> DemoResult:
    """Run the whole flow under ``out_dir`` and print its story; return what it measured.

    Raises ``ValueError`` if ``network`` is one of the codebook's ``sources`` (the point is a
    network the codebook never saw), or for a bad count; see
    :func:`vq4all.sim.rtl.network.simulate_network` for the rest.
    """
    if network in sources:
        raise InputError(f"--network {network} is a source of the codebook; pick another")
    if sram_images > images:
        raise InputError(f"--sram-images {sram_images} is more than --images {images}")
    out = Path(out_dir)
    data = load_dataset("digits")
    log(f"1. universal codebook K={K} D={D} from {', '.join(sources)} (trained on digits)")
    codebook = make_codebook(out / "codebook.safetensors", data, list(sources), K, D, seed)
    log(f"   sha256 {codebook.sha256}")
    log(f"2. VQ4ALL compression of {network}, not a source of the codebook")
    compression = compress_network(
        out / f"{network}-compressed.safetensors",
        codebook,
        network,
        data.name,
        CompressConfig(seed=seed),
    )
    report = compression.report
    log(
        f"   test accuracy float {report.held_out['float_accuracy']:.2f}% -> VQ4ALL "
        f"{report.held_out['accuracy']:.2f}% at {report.bits_per_weight:.2f} bits per weight "
        f"({100 * report.frozen_by_pnc:.1f}% frozen by PNC)"
    )
    log("3. export to a network program")
    program_path = out / f"{network}.safetensors"
    export = export_program(program_path, codebook, out / f"{network}-compressed.safetensors")
    log(
        f"   {len(export.program.layers)} layers, {len(export.program.graph)} ops; golden "
        f"integer accuracy {export.accuracy:.2f}%"
    )
    log(f"4. {images} test images through the RTL (Verilator), ROM codebook")
    test = select_test_images(export.program, count=images)
    rom = simulate_network(
        NetworkSimulation(program_path, out / "rom", L=L, seed=seed, build_root=out / "build"),
        test,
        progress,
    )
    log(rom.format())
    log(f"5. {sram_images} of them again with the codebook reloaded into SRAM before each layer")
    sram = simulate_network(
        NetworkSimulation(
            program_path, out / "sram", mode="sram", L=L, seed=seed, build_root=out / "build"
        ),
        select_test_images(export.program, count=sram_images),
        progress,
    )
    log(sram.format())
    ratio = sram.cycles_per_image / rom.cycles_per_image
    log(
        f"per image: ROM {rom.cycles_per_image:,} cycles, SRAM {sram.cycles_per_image:,} "
        f"cycles ({ratio:.1f}x): reloading the {K}-entry codebook before each of the "
        f"{len(export.program.layers)} layers costs "
        f"{sram.cycles_per_image - rom.cycles_per_image:,} cycles that the ROM does not"
    )
    log(
        "   (a labelled extreme: the RTL's sram mode reloads the whole universal codebook; a "
        "per-layer VQ design would load only its layer's small codebook)"
    )
    log(f"6. energy: {network} and the codebook's sources compressed against the same codebook")
    programs = [program_path]
    for name in sources:
        checkpoint = out / f"{name}-compressed.safetensors"
        compress_network(
            checkpoint, codebook, name, data.name, CompressConfig(seed=seed), progress=progress
        )
        programs.append(out / f"{name}.safetensors")
        export_program(programs[-1], codebook, checkpoint)
    energy = energy_report(programs, load_table(), Schedule(), L=L)
    energy.write(out / "energy")
    log(energy.format())
    log(
        "   (SRAM/layer is the same labelled extreme; the energy model prices no weight memory "
        "yet, so these ratios are not a comparison with int8, int4 or per-layer VQ designs)"
    )
    log(f"   plots and tables in {out / 'energy'}")
    return DemoResult(compression, export, rom, sram, energy)
