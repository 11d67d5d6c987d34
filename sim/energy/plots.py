"""The energy model's plots, rendered to PNG bytes (matplotlib's Agg backend, no display)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

from matplotlib import pyplot as plt  # noqa: E402 - the backend first
from matplotlib.figure import Figure  # noqa: E402

from vq4all.sim.energy.model import ARCHITECTURES, COMPONENTS, KINDS  # noqa: E402

__all__ = ["render"]

LABELS = {a.name: a.label for a in ARCHITECTURES}
STYLES = {
    "rom": ("-", "tab:red"),
    "sram_universal": (":", "tab:orange"),
    "sram_per_layer": ("--", "tab:blue"),
    "int8": ("-.", "tab:green"),
    "int4": ("-.", "tab:olive"),
    "sram_per_layer_full": (":", "tab:gray"),
}


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=120)
    plt.close(figure)
    return buffer.getvalue()


def _title(report: dict) -> str:
    technology = report["technology"]
    return f"{technology['node_nm']:g} nm, {technology['cells']} SRAM cells"


def _names(report: dict, extremes: bool = True) -> list[str]:
    return [a["name"] for a in report["architectures"] if extremes or not a["extreme"]]


def _line(axes, x, values, name: str) -> None:
    style, color = STYLES[name]
    axes.plot(x, values, style, color=color, marker=".", label=LABELS[name])


def accuracy_vs_energy(report: dict) -> bytes:
    """One point per method and architecture: accuracy against energy per inference, a panel
    per network."""
    networks = list(report["networks"])
    figure, panels = plt.subplots(1, len(networks), figsize=(6 * len(networks), 4.5), squeeze=False)
    for axes, network in zip(panels[0], networks, strict=True):
        for entry in (e for e in report["answer"] if e["network"] == network):
            if entry["accuracy"] is None:
                continue
            _, color = STYLES[entry["architecture"]]
            marker = "x" if entry["extreme"] else "o"
            axes.scatter(entry["energy_pj"] * 1e-6, entry["accuracy"], color=color, marker=marker)
            axes.annotate(
                f"{entry['method_label']} ({entry['architecture']})",
                (entry["energy_pj"] * 1e-6, entry["accuracy"]),
                fontsize=7,
                xytext=(4, 2),
                textcoords="offset points",
            )
        axes.set_xscale("log")
        axes.set_xlabel("energy per inference (uJ)")
        axes.set_ylabel("accuracy or agreement (%)")
        axes.set_title(network)
        axes.grid(True, which="both", alpha=0.3)
    figure.suptitle(f"Accuracy against energy per inference, {_title(report)}")
    return _png(figure)


def _stacked_bars(axes, report: dict, stack, colors, totals: bool = False) -> None:
    """A bar per network and architecture, side by side per network, stacked with
    ``stack(result)``'s (label, value) pairs; each bar's total on top when ``totals``. A network
    has a bar for every architecture it runs on (per-layer VQ only with its per-layer program)."""
    ticks, labels = [], []
    for g, (network, results) in enumerate(report["networks"].items()):
        present = [name for name in LABELS if name in results]
        width = 0.8 / len(present)
        for a, name in enumerate(present):
            x = g + (a - (len(present) - 1) / 2) * width
            ticks.append(x)
            labels.append(f"{network}: {name}")
            bottom = 0.0
            for c, (label, value) in enumerate(stack(results[name])):
                first = not g and not a
                kwargs = {"bottom": bottom, "color": colors[c], "label": label if first else None}
                axes.bar(x, value, width * 0.95, **kwargs)
                bottom += value
            if totals:
                axes.text(x, bottom, f"{bottom:.3g}", ha="center", va="bottom", fontsize=7)
    axes.set_xticks(ticks, labels, rotation=60, ha="right", fontsize=8)
    axes.legend(fontsize=8)


def breakdown(report: dict) -> bytes:
    """Stacked bars: energy per inference by component, per network and architecture."""
    bars = sum(len(results) for results in report["networks"].values())
    figure, axes = plt.subplots(figsize=(max(7, 1.1 * bars), 4.8))

    def stack(result: dict) -> list[tuple[str, float]]:
        return [(component, result["energy_pj"][component] * 1e-6) for component in COMPONENTS]

    _stacked_bars(axes, report, stack, plt.get_cmap("tab10").colors, totals=True)
    axes.set_ylabel("energy per inference (uJ)")
    axes.set_title(f"Energy per inference by component, {_title(report)}")
    return _png(figure)


def traffic(report: dict) -> bytes:
    """Bytes per inference by kind, from DRAM and read on chip, per network and architecture."""
    figure, (dram, chip) = plt.subplots(1, 2, figsize=(13, 4.8))
    for axes, level, title in ((dram, "dram", "from DRAM"), (chip, "on_chip_read", "read on chip")):

        def stack(result: dict, level=level) -> list[tuple[str, float]]:
            return [(kind, result["traffic"][f"{level}_{kind}_bytes"] / 1024) for kind in KINDS]

        _stacked_bars(axes, report, stack, plt.get_cmap("Set2").colors)
        axes.set_ylabel("KiB per inference")
        axes.set_title(f"Traffic {title}")
    figure.suptitle(f"Traffic by kind, {_title(report)}")
    return _png(figure)


def sweeps(report: dict) -> bytes:
    """Energy per inference of every architecture against each swept figure: the weight SRAM,
    the ROM read energy, the int4 MAC energy, the DRAM energy per bit and the task-switch
    interval."""
    panels = (
        ("weight_sram_kib", "weight SRAM (KiB; 0: weights from DRAM)", "symlog"),
        ("rom_read_fraction", "ROM read energy / SRAM read energy (assumption)", "linear"),
        ("int4_mac_fraction", "int4 MAC energy / int8 MAC energy (assumption)", "linear"),
        ("dram_pj_per_bit", "DRAM energy (pJ/bit)", "log"),
        ("switch_every", "inferences between task switches", "log"),
    )
    figure, grid = plt.subplots(2, 3, figsize=(15, 8.4))
    grid = grid.ravel()
    for axes, (name, label, scale) in zip(grid, panels, strict=False):
        sweep = report["sweeps"][name]
        for architecture in _names(report):
            _line(axes, sweep["x"], [v * 1e-6 for v in sweep[f"{architecture}_pj"]], architecture)
            if name == "weight_sram_kib":  # where its weights fit
                _, color = STYLES[architecture]
                axes.axvline(sweep["fits_kib"][architecture], color=color, linewidth=0.6)
        if scale == "symlog":
            axes.set_xscale("symlog", linthresh=1)
        else:
            axes.set_xscale(scale)
        axes.set_yscale("log")
        axes.set_xlabel(label)
        axes.set_ylabel("energy per inference (uJ)")
        axes.grid(True, which="both", alpha=0.3)
    handles, labels = grid[0].get_legend_handles_labels()
    grid[-1].axis("off")
    grid[-1].legend(handles, labels, loc="center", fontsize=9)
    figure.suptitle(f"Sweeps of what the answer turns on, {_title(report)}")
    return _png(figure)


def rate(report: dict) -> bytes:
    """Energy per inference against the inference rate, per SRAM cell type."""
    sweep = report["sweeps"]["rate_hz"]
    figure, axes = plt.subplots(figsize=(7.5, 4.8))
    cells = sorted({key.rsplit("_", 2)[-2] for key in sweep if key != "x"})
    for name in _names(report, extremes=False):
        style, color = STYLES[name]
        for cell in cells:
            values = [v * 1e-6 for v in sweep[f"{name}_{cell}_pj"]]
            axes.plot(
                sweep["x"],
                values,
                style,
                color=color,
                alpha=1 if cell == cells[0] else 0.5,
                label=f"{LABELS[name]} ({cell})",
            )
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("inferences per second")
    axes.set_ylabel("energy per inference (uJ)")
    axes.set_title(f"Leakage over idle time, {report['technology']['node_nm']:g} nm")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=6, ncol=2)
    return _png(figure)


def render(report: dict) -> dict[str, bytes]:
    """Every plot of ``report``, as PNG bytes by file stem."""
    return {
        "accuracy_vs_energy": accuracy_vs_energy(report),
        "energy_breakdown": breakdown(report),
        "traffic": traffic(report),
        "sweeps": sweeps(report),
        "energy_vs_rate": rate(report),
    }
