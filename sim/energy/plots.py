"""The energy model's plots, rendered to PNG bytes (matplotlib's Agg backend, no display)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

from matplotlib import pyplot as plt  # noqa: E402 - the backend first
from matplotlib.figure import Figure  # noqa: E402

from vq4all.sim.energy.model import (
    ALTERNATIVE_NAMES,
    ARCHITECTURE_NAMES,
    ARCHITECTURES,
    COMPONENTS,
)

__all__ = ["render"]

LABELS = {a.name: a.label for a in ARCHITECTURES}
SHORT = {"rom": "ROM", "sram_per_layer": "SRAM/layer", "sram_universal": "SRAM univ."}
STYLES = {"rom": "-", "sram_per_layer": "--", "sram_universal": ":"}


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=120)
    plt.close(figure)
    return buffer.getvalue()


def _title(report: dict) -> str:
    technology = report["technology"]
    return f"{technology['node_nm']:g} nm, {technology['cells']} SRAM cells"


def breakdown(report: dict) -> bytes:
    """Stacked bars: energy per inference by component, per network and for the schedule."""
    groups = {name: result for name, result in report["networks"].items()}
    groups["schedule"] = report["schedule_result"]
    figure, axes = plt.subplots(figsize=(max(6, 2.2 * len(groups)), 4.5))
    width = 0.8 / len(ARCHITECTURES)
    colors = plt.get_cmap("tab10").colors
    ticks, labels = [], []
    for g, (name, result) in enumerate(groups.items()):
        for a, architecture in enumerate(ARCHITECTURE_NAMES):
            energy = result[architecture]["energy_pj"]
            per = result[architecture].get("inferences", 1)
            x = g + (a - (len(ARCHITECTURES) - 1) / 2) * width
            ticks.append(x)
            labels.append(f"{name}: {SHORT[architecture]}")
            bottom = 0.0
            for c, component in enumerate(COMPONENTS):
                value = energy[component] / per * 1e-6
                axes.bar(
                    x,
                    value,
                    width * 0.95,
                    bottom=bottom,
                    color=colors[c],
                    label=component if g == 0 and a == 0 else None,
                )
                bottom += value
            axes.text(x, bottom, f"{bottom:.3g}", ha="center", va="bottom", fontsize=7)
    axes.set_xticks(ticks, labels, rotation=60, ha="right", fontsize=8)
    axes.set_ylabel("energy per inference (uJ)")
    axes.set_title(f"Energy per inference by component, {_title(report)}")
    axes.legend(fontsize=8)
    return _png(figure)


def switching(report: dict) -> bytes:
    """Energy per inference against the task-switch interval."""
    sweep = report["sweeps"]["switch_every"]
    figure, axes = plt.subplots(figsize=(6, 4))
    for architecture in ARCHITECTURE_NAMES:
        values = [v * 1e-6 for v in sweep[f"{architecture}_pj"]]
        axes.plot(sweep["x"], values, STYLES[architecture], marker="o", label=LABELS[architecture])
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("inferences between task switches")
    axes.set_ylabel("energy per inference (uJ)")
    axes.set_title(f"Task switching over {'/'.join(report['schedule']['order'])}, {_title(report)}")
    axes.legend(fontsize=8)
    axes.grid(True, which="both", alpha=0.3)
    return _png(figure)


def sensitivity(report: dict) -> bytes:
    """The rom/sram energy ratio over the ROM read energy and over the DRAM energy per bit."""
    sweeps = report["sweeps"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    panels = (
        (left, "rom_read_fraction", "ROM read energy / SRAM read energy", "linear"),
        (right, "dram_pj_per_bit", "DRAM energy (pJ/bit)", "log"),
    )
    for axes, name, label, scale in panels:
        sweep = sweeps[name]
        for architecture in ALTERNATIVE_NAMES:
            axes.plot(
                sweep["x"],
                sweep[f"rom_over_{architecture}"],
                STYLES[architecture],
                label=f"ROM / {LABELS[architecture]}",
            )
        axes.axhline(1.0, color="black", linewidth=0.8)
        axes.set_xscale(scale)
        axes.set_yscale("log")
        axes.set_xlabel(label)
        axes.set_ylabel("energy ratio (below 1: ROM wins)")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=8)
    left.set_title("ROM read energy has no published figure: swept")
    right.set_title("Codebook reload cost")
    figure.suptitle(f"Sensitivity, {_title(report)}")
    return _png(figure)


def rate(report: dict) -> bytes:
    """Energy per inference against the inference rate, per SRAM cell type."""
    sweep = report["sweeps"]["rate_hz"]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    cells = sorted({key.rsplit("_", 2)[-2] for key in sweep if key != "x"})
    for spec in ARCHITECTURES:
        architecture = spec.name
        for cell in cells:
            if spec.codebook_memory == "rom" and cell != cells[0]:
                continue  # the ROM has no SRAM cells: one line
            values = [v * 1e-6 for v in sweep[f"{architecture}_{cell}_pj"]]
            label = LABELS[architecture] + ("" if spec.codebook_memory == "rom" else f" ({cell})")
            axes.plot(sweep["x"], values, STYLES[architecture], label=label)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("inferences per second")
    axes.set_ylabel("energy per inference (uJ)")
    axes.set_title(f"Leakage over idle time, {report['technology']['node_nm']:g} nm")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7)
    return _png(figure)


def render(report: dict) -> dict[str, bytes]:
    """Every plot of ``report``, as PNG bytes by file stem."""
    return {
        "energy_breakdown": breakdown(report),
        "energy_vs_switching": switching(report),
        "sensitivity": sensitivity(report),
        "energy_vs_rate": rate(report),
    }
