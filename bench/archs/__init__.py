"""The architecture registry: every architecture the harness knows, by name.

Adding an architecture is one module under `bench/archs/` that builds an `Arch` entry,
and one line in `ARCHS` below.
"""

from __future__ import annotations

from typing import Any

from bench.archs.base import Arch, config_params
from bench.archs.mf import MF, NNMF
from bench.archs.neumf import NEUMF
from bench.archs.nn import NN
from bench.errors import BenchError

ARCHS: dict[str, Arch] = {
    arch.name: arch
    for arch in (
        MF,
        NNMF,
        NN,
        NEUMF,
    )
}

__all__ = ["ARCHS", "Arch", "config_params", "get_arch", "arch_of"]


def get_arch(name: str) -> Arch:
    """The registered architecture `name`; an unknown name lists the known ones."""
    try:
        return ARCHS[name]
    except KeyError:
        raise BenchError(f"unknown architecture {name!r}; known: {', '.join(ARCHS)}") from None


def arch_of(config: Any) -> Arch:
    """The registered architecture of a config object."""
    return get_arch(config.arch)
