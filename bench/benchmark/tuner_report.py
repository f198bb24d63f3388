"""The tuner benchmark's report: the ranking table, the anytime-curve figure, the raw rows."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats

from bench.benchmark.html import to_html
from bench.benchmark.report import markdown_table
from bench.benchmark.tuners import TunerRun, runs_frame

FIGURE = "anytime.png"
GRID_POINTS = 100  # points of the CPU-seconds axis the curves are averaged on


def band(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and 95 % t-interval, per column, of curves stacked as rows (one per seed); nan
    where no curve has a value yet."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # columns before any complete trial
        return _band(curves)


def _band(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean = np.nanmean(curves, axis=0)
    n = np.sum(~np.isnan(curves), axis=0)
    sem = np.nanstd(curves, axis=0, ddof=1) / np.sqrt(np.maximum(n, 1)) if len(curves) > 1 else 0
    half = stats.t.ppf(0.975, np.maximum(n - 1, 1)) * sem
    return mean, mean - half, mean + half


def ranking(runs: list[TunerRun]) -> pd.DataFrame:
    """Per architecture and tuner, over folds and seeds: final value and area under the
    best-so-far curve (mean ± std), CPU seconds, pruned trials; ranked by area, then final."""
    frame = runs_frame(runs)
    rows = []
    for (arch, sampler, pruner), group in frame.groupby(["arch", "sampler", "pruner"], sort=False):
        rows.append(
            {
                "arch": arch,
                "sampler": sampler,
                "pruner": pruner,
                "studies": len(group),
                "area": group["area"].mean(),
                "area std": group["area"].std(ddof=1),
                "final": group["final"].mean(),
                "final std": group["final"].std(ddof=1),
                "CPU s": group["cpu_seconds"].mean(),
                "pruned": group["pruned"].mean(),
            }  # fmt: skip
        )
    table = pd.DataFrame(rows)
    table["rank (area)"] = table.groupby("arch")["area"].rank(method="min").astype(int)
    table["rank (final)"] = table.groupby("arch")["final"].rank(method="min").astype(int)
    return table.sort_values(["arch", "rank (area)", "rank (final)"]).reset_index(drop=True)


def _by_trial(runs: list[TunerRun]) -> np.ndarray:
    width = max(len(r.curve.best) for r in runs)
    rows = [r.curve.best + [r.curve.best[-1]] * (width - len(r.curve.best)) for r in runs]
    return np.array(rows, dtype="float64")


def _by_second(runs: list[TunerRun], grid: np.ndarray) -> np.ndarray:
    """Each step curve read at the grid's seconds (nan before its first complete trial)."""
    rows = []
    for run in runs:
        at = np.searchsorted(np.array(run.curve.seconds), grid, side="right") - 1
        best = np.array(run.curve.best, dtype="float64")
        rows.append(np.where(at >= 0, best[np.clip(at, 0, None)], np.nan))
    return np.array(rows)


def _panel(ax, x, curves: np.ndarray, label: str) -> None:
    mean, low, high = band(curves)
    ax.plot(x, mean, label=label)
    ax.fill_between(x, low, high, alpha=0.2)


def anytime_figure(runs: list[TunerRun], metric: str, path: Path) -> None:
    """Per architecture: the mean best-so-far curve of each tuner with its 95 % band, against
    trials and against cumulative CPU seconds."""
    archs = sorted({r.arch for r in runs})
    fig, axes = plt.subplots(len(archs), 2, figsize=(12, 4.5 * len(archs)), squeeze=False)
    for (by_trial, by_second), arch in zip(axes, archs, strict=True):
        mine = [r for r in runs if r.arch == arch]
        grid = np.linspace(0, max(r.curve.seconds[-1] for r in mine), GRID_POINTS)
        for tuner in dict.fromkeys(r.tuner for r in mine):
            group = [r for r in mine if r.tuner == tuner]
            curves = _by_trial(group)
            _panel(by_trial, np.arange(1, curves.shape[1] + 1), curves, tuner)
            _panel(by_second, grid, _by_second(group, grid), tuner)
        finite = _by_trial(mine)
        top = np.nanpercentile(finite[:, min(3, finite.shape[1] - 1)], 90)
        for ax in (by_trial, by_second):
            ax.set_ylim(np.nanmin(finite) - 0.005, top)  # the first few trials off the scale
            ax.set_ylabel(f"best val {metric} so far ({arch})")
        by_trial.set(xlabel="trial", title=f"{arch}: per trial (mean, 95 % band over seeds)")
        by_second.set(xlabel="cumulative CPU seconds", title=f"{arch}: per CPU second")
        by_trial.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_tuner_report(folder: Path, runs: list[TunerRun], metric: str) -> Path:
    """report.md (ranking and figure), report.html, anytime.png and runs.csv in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    runs_frame(runs).to_csv(folder / "runs.csv", index=False)
    anytime_figure(runs, metric, folder / FIGURE)
    folds = ", ".join(sorted({r.fold for r in runs}))
    seeds = len({r.seed for r in runs})
    text = f"""# Tuner benchmark

Best validation {metric.upper()} found so far, per study of each tuner (sampler / pruner) on
the tuning splits of folds {folds} (each fold's training part; its test part is never read),
{seeds} sampler seed(s) each. Area: the mean of the best-so-far curve over the trials (lower
is better: good values found early); final: the best value after the last trial. Both are
means over folds and seeds; ranks are per architecture.

{markdown_table(ranking(runs))}

![anytime curves]({FIGURE})
"""
    path = folder / "report.md"
    path.write_text(text)
    (folder / "report.html").write_text(to_html(text, folder, "Tuner benchmark"))
    return path
