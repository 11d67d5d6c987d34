"""The end-to-end demo on the embedded default (sklearn digits): a universal codebook from some
zoo networks, VQ4ALL compression of one that was not among them, export, then real test images
through the RTL in rom mode, bit-exact against golden; the designs one would build instead
(int8, int4, per-layer VQ post-training and trained), the trained per-layer VQ program through
the RTL in sram mode; then energy and traffic per inference of each beside its accuracy."""

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
    zoo_baselines,
)
from vq4all.golden.errors import InputError
from vq4all.golden.network import load_network
from vq4all.model.compress import CompressConfig
from vq4all.model.workloads.data import load_dataset
from vq4all.sim.energy.report import METHOD_LABELS, EnergyReport, Setup, energy_report
from vq4all.sim.energy.tables import load_table
from vq4all.sim.rtl.network import NetworkReport, NetworkSimulation, simulate_network

__all__ = ["DemoResult", "run_demo"]


@dataclass(frozen=True)
class DemoResult:
    """What the demo measured: the compression, the export, the RTL reports of VQ4ALL's ROM
    and of per-layer VQ in sram mode, and the energy model's report."""

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
    sram_images: int = 20,
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
    bits = codebook.index_bits / D
    log(
        f"5. the designs one would build instead: int8 and int4 weights, and per-layer VQ with "
        f"each layer's own k-means codebook at the same {bits:g} index bits per weight, "
        "post-training and trained with the same distillation"
    )
    baselines = {
        name: zoo_baselines(
            out, codebook, name, data, CompressConfig(seed=seed), name == network, progress
        )
        for name in (network, *sources)
    }
    mine = baselines[network]
    log(
        "   test accuracy "
        + ", ".join(f"{METHOD_LABELS[m]} {a:.2f}%" for m, a in mine.accuracies.items())
    )
    per_layer = mine.programs["perlayer-trained"]
    sizes = [own.K for own in load_network(per_layer).codebooks]
    log(
        f"6. {sram_images} test images through the RTL in sram mode: trained per-layer VQ, each "
        f"layer loading its own codebook ({', '.join(map(str, sizes))} codewords)"
    )
    sram = simulate_network(
        NetworkSimulation(
            per_layer, out / "sram", mode="sram", L=L, seed=seed, build_root=out / "build"
        ),
        select_test_images(load_network(per_layer), count=sram_images),
        progress,
    )
    log(sram.format())
    log(
        f"   per image: VQ4ALL's ROM {rom.cycles_per_image:,} cycles, per-layer VQ "
        f"{sram.cycles_per_image:,} ({sram.cycles_per_image / rom.cycles_per_image:.3f}x): its "
        f"codebook loads take {sram.cycles_per_image - rom.cycles_per_image:,} cycles"
    )
    log(f"7. energy per inference at {load_table().technology.node_nm:g} nm, beside accuracy")
    programs = [program_path, *mine.programs.values()]
    accuracies = {network: {"vq4all": report.held_out["accuracy"]} | mine.accuracies}
    for name in sources:
        checkpoint = out / f"{name}-compressed.safetensors"
        source = compress_network(
            checkpoint, codebook, name, data.name, CompressConfig(seed=seed), progress=progress
        )
        programs += [out / f"{name}.safetensors", baselines[name].programs["kmeans"]]
        export_program(programs[-2], codebook, checkpoint)
        accuracies[name] = {"vq4all": source.report.held_out["accuracy"]}
        accuracies[name] |= baselines[name].accuracies
    energy = energy_report(programs, load_table(), Setup(), L=L, accuracies=accuracies)
    energy.write(out / "energy")
    log(energy.format(networks=[network]))
    log(f"   plots and tables in {out / 'energy'}")
    return DemoResult(compression, export, rom, sram, energy)
