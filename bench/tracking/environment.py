"""What a run records of where it ran: package versions, git commit, machine class."""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import tensorflow as tf
from mlflow.tracking.context.registry import resolve_tags

PACKAGES = ("tensorflow", "keras", "optuna", "mlflow", "numpy", "pandas", "scikit-learn")


def _git_commit() -> str:
    try:
        root = Path(__file__).resolve().parents[2]  # the checkout, when there is one
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if out.returncode != 0:
        return "unknown"
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


@functools.cache
def code_version() -> str:
    """Which code runs: the git commit, with a digest of the uncommitted changes to tracked
    files when there are any (the same edits give the same version), or outside a checkout
    the installed package's version with a digest of the package's source."""
    commit = _git_commit()
    if commit == "unknown":
        package = Path(__file__).resolve().parents[1]
        return f"recsys-sweep-bench {_version('recsys-sweep-bench')}+{source_digest(package)}"
    if not commit.endswith("-dirty"):
        return commit
    root = Path(__file__).resolve().parents[2]
    try:
        diff = subprocess.run(
            ["git", "diff", "HEAD", "--binary"], cwd=root, capture_output=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return f"{commit}-unknown-changes"
    return f"{commit.removesuffix('-dirty')}+{hashlib.sha256(diff).hexdigest()[:12]}"


def source_digest(package: Path) -> str:
    """12 hex digits of SHA-256 over the package's Python files, names and contents: the
    same source gives the same digest wherever it was copied to."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


@functools.cache
def environment_tags() -> dict[str, str]:
    """Package versions, git commit and machine: what a number depends on besides config."""
    tags = {f"version.{name}": _version(name) for name in PACKAGES}
    tags.update(
        {
            "version.python": platform.python_version(),
            "git_commit": _git_commit(),
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "cpu_count": str(os.cpu_count()),
            "machine_class": machine_class(),
            **numeric_tags(),
        }
    )
    return tags


def numeric_tags() -> dict[str, str]:
    """What float results depend on beyond code and seed: oneDNN picks kernels by CPU
    instruction set and splits reductions by thread count, so the same seed gives
    bit-identical numbers on one machine class and thread setting, not across them."""
    flags = ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        flags = " ".join(f for f in ("avx512f", "avx2", "fma", "amx_bf16") if f" {f}" in text)
    except OSError:
        pass
    return {
        "numerics.onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
        "numerics.intra_op_threads": str(tf.config.threading.get_intra_op_parallelism_threads()),
        "numerics.inter_op_threads": str(tf.config.threading.get_inter_op_parallelism_threads()),
        "numerics.cpu_flags": flags or "unknown",
    }


@functools.cache
def machine_class() -> str:
    """CPU model and core count: numbers may differ across machine classes."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model} x{os.cpu_count()}"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


@functools.cache
def source_tags() -> dict[str, str]:
    """What MLflow's fluent API records on every run (command, user, git commit), once."""
    return resolve_tags()
