"""The architecture registry: every architecture the harness knows, by name.

Adding an architecture is one module under `bench/archs/` that builds an `Arch` entry,
and one line in `REGISTRY` below. An entry's module (and Keras) loads when the entry is
first read: listing the names, as a command's `--help` does, loads neither.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from bench.errors import BenchError
from bench.lazy import lazy_exports

if TYPE_CHECKING:
    from bench.archs.base import Arch

REGISTRY = {  # name: the module and the name of its Arch entry
    "mf": ("bench.archs.mf", "MF"),
    "nnmf": ("bench.archs.mf", "NNMF"),
    "nn": ("bench.archs.nn", "NN"),
    "neumf": ("bench.archs.neumf", "NEUMF"),
}


class _Archs(Mapping[str, "Arch"]):
    """Name -> Arch, in registry order; an entry is imported when it is first read."""

    def __getitem__(self, name: str) -> Arch:
        module, entry = REGISTRY[name]
        return getattr(importlib.import_module(module), entry)

    def __iter__(self) -> Iterator[str]:
        return iter(REGISTRY)

    def __len__(self) -> int:
        return len(REGISTRY)


ARCHS: Mapping[str, Arch] = _Archs()

__all__ = ["ARCHS", "REGISTRY", "Arch", "config_params", "get_arch", "arch_of"]
__getattr__ = lazy_exports(
    __name__, {"Arch": "bench.archs.base", "config_params": "bench.archs.base"}
)


def get_arch(name: str) -> Arch:
    """The registered architecture `name`; an unknown name lists the known ones."""
    try:
        return ARCHS[name]
    except KeyError:
        raise BenchError(f"unknown architecture {name!r}; known: {', '.join(ARCHS)}") from None


def arch_of(config: Any) -> Arch:
    """The registered architecture of a config object."""
    return get_arch(config.arch)
