"""Energy reference tables: Accelergy's ERT form (YAML), read so that users can drop in the
table their own CACTI/Accelergy run produced, plus the technology the codebook model needs.

An ERT lists, per component, actions with their arguments and energy::

    ERT:
      version: 0.3
      tables:
      - name: System.codebook_sram       # matched by its last dotted part
        actions:
        - name: read
          arguments: {cells: hp}         # selects among entries; null matches any
          energy: 15.5                   # pJ; or a string with a unit: "15.5 pJ", "0.02 nJ"
          source: "CACTI 7, 22 nm, ..."  # optional; the shipped tables always carry one

Version 0.2's maps (``tables: {component: {action: [{arguments, energy}]}}``) are read too.
A ``leak`` action is a power: a string with a power unit (``"44 mW"``), or a number in pJ per
cycle at the technology's clock, as Accelergy writes it.

The optional ``technology`` section gives the clock, the SRAM cell type that the ``cells``
argument selects, the access width, the codebook size the memory figures were made for, and
the area per bit of ROM and SRAM. A table without it takes the technology of
:data:`DEFAULT_TABLE`, and says so.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from vq4all.golden.errors import InputError

__all__ = [
    "DEFAULT_TABLE",
    "REQUIRED",
    "SHIPPED",
    "EnergyTable",
    "TableError",
    "Technology",
    "load_table",
]

SHIPPED_DIR = Path(__file__).with_name("ert")
#: The shipped tables, by the name that ``--table`` also accepts.
SHIPPED = {path.stem: path for path in sorted(SHIPPED_DIR.glob("*.yaml"))}
DEFAULT_TABLE = "22nm"

#: The (component, action) pairs the model prices. ``codebook_rom`` and ``codebook_sram`` are
#: the universal codebook's memories (``codebook_bytes``); ``sram`` is every other on-chip SRAM
#: (weights, per-layer codebooks, activations, the decode-once weight buffer), its entries given
#: at several sizes (argument ``bytes``) and read between them by :meth:`EnergyTable.sized`.
REQUIRED = (
    ("mac", "mac"),
    ("codebook_rom", "read"),
    ("codebook_rom", "leak"),
    ("codebook_sram", "read"),
    ("codebook_sram", "write"),
    ("codebook_sram", "leak"),
    ("dram", "read"),
    ("dram", "write"),
    ("sram", "read"),
    ("sram", "write"),
    ("sram", "leak"),
)
ENERGY_UNITS = {"fJ": 1e-3, "pJ": 1.0, "nJ": 1e3, "uJ": 1e6, "mJ": 1e9, "J": 1e12}
POWER_UNITS = {"nW": 1e-6, "uW": 1e-3, "mW": 1.0, "W": 1e3}


class TableError(InputError):
    """A table that cannot be used; the message names the file, the component and the action."""


@dataclass(frozen=True)
class Sourced:
    value: float
    source: str


@dataclass(frozen=True)
class Technology:
    """What the model needs besides energies: the clock, the SRAM cells that the ``cells``
    argument selects, the bits of one memory access, the codebook size (bytes) the memory
    figures were made for, and the area per bit of each codebook memory (um^2)."""

    node_nm: float
    clock_mhz: Sourced
    cells: str
    word_bits: int
    codebook_bytes: int
    area_um2_per_bit: dict[str, Sourced]
    origin: str


@dataclass(frozen=True)
class Entry:
    """One action's energy (pJ) or, for ``leak``, power (mW), and where it comes from."""

    component: str
    action: str
    arguments: tuple[tuple[str, Any], ...]
    value: float
    source: str

    def matches(self, wanted: dict[str, Any]) -> bool:
        return all(wanted.get(name) == value for name, value in self.arguments)

    @property
    def unit(self) -> str:
        return "mW" if self.action == "leak" else "pJ"


@dataclass(frozen=True)
class EnergyTable:
    """The entries of one table file and its technology."""

    path: str
    technology: Technology
    entries: tuple[Entry, ...]

    def entry(self, component: str, action: str, **arguments: Any) -> Entry:
        """The first entry of ``component``/``action`` whose arguments ``arguments`` match
        (``cells`` defaults to the technology's)."""
        wanted = {"cells": self.technology.cells} | arguments
        for entry in self.entries:
            if (entry.component, entry.action) == (component, action) and entry.matches(wanted):
                return entry
        described = ", ".join(f"{name}={value}" for name, value in wanted.items())
        raise TableError(
            f"{self.path}: component {component!r} action {action!r}: no entry for {described}"
        )

    def energy(self, component: str, action: str, **arguments: Any) -> float:
        """pJ per action (or mW for ``leak``)."""
        return self.entry(component, action, **arguments).value

    def sized(self, component: str, action: str, size_bytes: float) -> float:
        """The energy (or leak) of ``component``/``action`` for a memory of ``size_bytes``: a
        power law through the two entries (argument ``bytes``) around it, the nearest two beyond
        the ends (CACTI's figures grow about as a power of the capacity between its points).
        A table with one size scales it in proportion to the capacity. Another cell type than the
        entries' scales them by the universal codebook SRAM's ratio of the two cell types (an
        assumption: the tables give other cells only at that size)."""
        points = sorted(
            (dict(entry.arguments)["bytes"], entry.value)
            for entry in self.entries
            if (entry.component, entry.action) == (component, action)
            and "bytes" in dict(entry.arguments)
        )
        if not points:
            return self.energy(component, action)
        return self._interpolated(points, size_bytes) * self._cells_ratio(component, action)

    def _cells_ratio(self, component: str, action: str) -> float:
        cells = [
            dict(e.arguments).get("cells")
            for e in self.entries
            if (e.component, e.action) == (component, action)
        ]
        made_for = next((c for c in cells if c), "hp")
        if self.technology.cells == made_for:
            return 1.0
        reference = self.energy("codebook_sram", action, cells=made_for)
        return self.energy("codebook_sram", action) / reference if reference else 1.0

    @staticmethod
    def _interpolated(points: list[tuple[float, float]], size_bytes: float) -> float:
        if len(points) == 1 or size_bytes <= 0:
            (size, value), *_ = points
            return value * max(size_bytes, 0) / size
        below = [p for p in points if p[0] <= size_bytes]
        index = min(max(len(below) - 1, 0), len(points) - 2)
        (x0, y0), (x1, y1) = points[index], points[index + 1]
        if y0 <= 0 or y1 <= 0:
            return y0 + (y1 - y0) * (size_bytes - x0) / (x1 - x0)
        exponent = math.log(y1 / y0) / math.log(x1 / x0)
        return y0 * (size_bytes / x0) ** exponent

    def cell_types(self) -> list[str]:
        """The SRAM cell types the codebook SRAM has entries for, the technology's first."""
        found = [
            dict(entry.arguments).get("cells")
            for entry in self.entries
            if entry.component == "codebook_sram"
        ]
        types = [self.technology.cells] + [cells for cells in found if cells]
        return list(dict.fromkeys(types))

    def with_value(self, component: str, action: str, value: float, **arguments: Any):
        """This table with the matching entry's value replaced (for sweeps)."""
        target = self.entry(component, action, **arguments)
        entries = tuple(
            replace(entry, value=value, source="sweep") if entry is target else entry
            for entry in self.entries
        )
        return replace(self, entries=entries)

    def with_cells(self, cells: str) -> EnergyTable:
        return replace(self, technology=replace(self.technology, cells=cells))

    def assumptions(self) -> list[str]:
        """Every entry and technology figure marked ``assumption``, as text."""
        found = [
            f"{entry.component}.{entry.action}"
            f"{''.join(f' {k}={v}' for k, v in entry.arguments)} = {entry.value:g} "
            f"{entry.unit}: {entry.source}"
            for entry in self.entries
            if "assumption" in entry.source
        ]
        technology = self.technology
        figures = {"clock_mhz": technology.clock_mhz} | {
            f"area_um2_per_bit.{name}": figure
            for name, figure in technology.area_um2_per_bit.items()
        }
        found += [
            f"technology.{name} = {figure.value:g}: {figure.source}"
            for name, figure in figures.items()
            if "assumption" in figure.source
        ]
        return found


def _quantity(path: str, where: str, raw: Any, leak: bool) -> float:
    """pJ (or mW for a leak) from a number or a string with a unit."""
    if isinstance(raw, bool) or raw is None:
        raise TableError(f"{path}: {where}: energy {raw!r} is not a number")
    if isinstance(raw, int | float):
        value, unit = float(raw), "pJ"
    elif isinstance(raw, str):
        number, _, unit = raw.strip().partition(" ")
        unit = unit.strip() or "pJ"
        try:
            value = float(number)
        except ValueError:
            raise TableError(f"{path}: {where}: energy {raw!r} is not a number") from None
    else:
        raise TableError(f"{path}: {where}: energy {raw!r} is not a number")
    if unit not in ENERGY_UNITS and unit not in POWER_UNITS:
        known = ", ".join([*ENERGY_UNITS, *POWER_UNITS])
        raise TableError(f"{path}: {where}: unknown unit {unit!r} (one of {known})")
    if not math.isfinite(value) or value < 0:
        raise TableError(f"{path}: {where}: energy {raw!r} must be finite and not negative")
    if unit in POWER_UNITS and not leak:
        raise TableError(f"{path}: {where}: {unit!r} is a power; only a leak action takes one")
    return value * (POWER_UNITS.get(unit) or ENERGY_UNITS[unit])


def _actions(path: str, ert: dict) -> list[tuple[str, str, Any, Any, str]]:
    """(component, action, arguments, energy, source) of every action, from either version."""
    tables = ert.get("tables")
    rows = []
    if isinstance(tables, list):  # version 0.3
        for i, table in enumerate(tables):
            if not isinstance(table, dict) or not isinstance(table.get("actions"), list):
                raise TableError(f"{path}: ERT.tables[{i}]: needs a name and a list of actions")
            for action in table["actions"]:
                if not isinstance(action, dict):
                    raise TableError(f"{path}: ERT.tables[{i}]: an action is not a mapping")
                rows.append(
                    (
                        str(table.get("name")),
                        str(action.get("name")),
                        action.get("arguments"),
                        action.get("energy"),
                        str(action.get("source", "")),
                    )
                )
    elif isinstance(tables, dict):  # version 0.2
        for component, actions in tables.items():
            for action, variants in (actions or {}).items():
                for variant in variants if isinstance(variants, list) else [variants]:
                    variant = variant if isinstance(variant, dict) else {"energy": variant}
                    rows.append(
                        (
                            str(component),
                            str(action),
                            variant.get("arguments"),
                            variant.get("energy"),
                            str(variant.get("source", "")),
                        )
                    )
    else:
        raise TableError(f"{path}: field 'ERT.tables' is missing or neither a list nor a map")
    return rows


def _entries(path: str, ert: Any, clock_mhz: float) -> tuple[Entry, ...]:
    if not isinstance(ert, dict):
        raise TableError(f"{path}: field 'ERT' is missing: not an Accelergy energy table")
    entries = []
    for component, action, arguments, energy, source in _actions(path, ert):
        name = component.rsplit(".", 1)[-1]
        where = f"component {name!r} action {action!r}"
        if arguments is not None and not isinstance(arguments, dict):
            raise TableError(f"{path}: {where}: arguments {arguments!r} are not a mapping")
        value = _quantity(path, where, energy, leak=action == "leak")
        if action == "leak" and not (isinstance(energy, str) and energy.split()[-1] in POWER_UNITS):
            # Accelergy's leak is pJ per cycle; as a power that is pJ * f.
            value = value * clock_mhz * 1e-3
        entries.append(Entry(name, action, tuple(sorted((arguments or {}).items())), value, source))
    present = {(entry.component, entry.action) for entry in entries}
    for component, action in REQUIRED:
        if (component, action) not in present:
            raise TableError(
                f"{path}: component {component!r} action {action!r} is missing (the codebook "
                f"model needs {', '.join(f'{c}.{a}' for c, a in REQUIRED)})"
            )
    return tuple(entries)


def _sourced(path: str, section: dict, name: str) -> Sourced:
    raw = section.get(name)
    value, source = (
        (raw.get("value"), str(raw.get("source", "")))
        if isinstance(raw, dict)
        else (
            raw,
            "",
        )
    )
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise TableError(f"{path}: field 'technology.{name}': {value!r} is not a positive number")
    return Sourced(float(value), source)


def _technology(path: str, section: Any) -> Technology:
    if not isinstance(section, dict):
        raise TableError(f"{path}: field 'technology' is not a mapping")
    areas = section.get("area_um2_per_bit")
    if not isinstance(areas, dict):
        raise TableError(f"{path}: field 'technology.area_um2_per_bit' is missing")
    memories = ("codebook_rom", "codebook_sram", "sram")
    area = {memory: _sourced(path, areas, memory) for memory in memories}
    numbers = {
        name: _sourced(path, section, name).value
        for name in ("node_nm", "word_bits", "codebook_bytes")
    }
    return Technology(
        node_nm=numbers["node_nm"],
        clock_mhz=_sourced(path, section, "clock_mhz"),
        cells=str(section.get("cells", "hp")),
        word_bits=int(numbers["word_bits"]),
        codebook_bytes=int(numbers["codebook_bytes"]),
        area_um2_per_bit=area,
        origin=path,
    )


def _read_yaml(path: str | os.PathLike) -> Any:
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise FileNotFoundError(f"{path}: {error.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise TableError(f"{path}: not YAML ({str(error).splitlines()[0]})") from None


def load_table(name_or_path: str | os.PathLike = DEFAULT_TABLE) -> EnergyTable:
    """The table ``name_or_path``: a shipped table's name (:data:`SHIPPED`) or a YAML file.

    Raises :class:`TableError` naming the file, the component and the action for a missing
    entry, a negative or non-numeric energy or an unknown unit.
    """
    path = SHIPPED.get(str(name_or_path), Path(name_or_path))
    document = _read_yaml(path)
    if not isinstance(document, dict):
        raise TableError(f"{path}: not an Accelergy energy table (no 'ERT' mapping)")
    if "technology" in document:
        technology = _technology(str(path), document["technology"])
    else:
        technology = load_table(DEFAULT_TABLE).technology
    entries = _entries(str(path), document.get("ERT"), technology.clock_mhz.value)
    return EnergyTable(str(path), technology, entries)
