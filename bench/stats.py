"""Fold statistics, paired tests between models, and the regression gate.

All comparisons are paired by fold: two models (or two benchmark runs) evaluated on the
same folds differ by a per-fold difference whose mean, spread and tests are reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

LOWER_IS_BETTER = {"mae": True, "rmse": True, "mae_rounded": True, "rmse_rounded": True}
RANKING = ("precision_at_10", "recall_at_10", "ndcg_at_10")
GATED = ("mae", "rmse", *RANKING)


def lower_is_better(metric: str) -> bool:
    return LOWER_IS_BETTER.get(metric, metric.endswith("seconds"))


def describe_folds(values: np.ndarray) -> dict[str, float]:
    """Mean, sample std and the 95 % confidence interval of the mean (t distribution)."""
    values = np.asarray(values, dtype="float64")
    n = len(values)
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if n > 1 else 0.0
    half = float(stats.t.ppf(0.975, n - 1) * std / np.sqrt(n)) if n > 1 else float("nan")
    return {"mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half}


@dataclass(frozen=True)
class Paired:
    """`a` against `b` on one metric; `worse_by` > 0 means `a` is worse."""

    a: str
    b: str
    metric: str
    worse_by: float  # mean per-fold difference, signed so that positive = a worse
    std: float
    ci_low: float
    ci_high: float
    p_t: float
    p_wilcoxon: float

    def sentence(self) -> str:
        verb = "trails" if self.worse_by > 0 else "beats"
        return (
            f"{self.a} {verb} {self.b} on {self.metric} by {abs(self.worse_by):.4f} ± "
            f"{self.std:.4f} (paired t p = {self.p_t:.3g}, Wilcoxon p = {self.p_wilcoxon:.3g})"
        )


def _p_values(diff: np.ndarray) -> tuple[float, float]:
    if np.allclose(diff, 0):
        return 1.0, 1.0
    if np.allclose(diff, diff[0]):  # constant non-zero difference: no noise at all
        return 0.0, float(stats.wilcoxon(diff).pvalue)
    return float(stats.ttest_rel(diff, np.zeros_like(diff)).pvalue), float(
        stats.wilcoxon(diff).pvalue
    )


def paired(a_name: str, a: np.ndarray, b_name: str, b: np.ndarray, metric: str) -> Paired:
    diff = np.asarray(a, dtype="float64") - np.asarray(b, dtype="float64")
    if not lower_is_better(metric):
        diff = -diff
    summary = describe_folds(diff)
    p_t, p_w = _p_values(diff)
    return Paired(
        a_name,
        b_name,
        metric,
        summary["mean"],
        summary["std"],
        summary["ci_low"],
        summary["ci_high"],
        p_t,
        p_w,
    )


@dataclass(frozen=True)
class Regression:
    model: str
    metric: str
    old: float
    new: float
    comparison: Paired

    def message(self) -> str:
        c = self.comparison
        return (
            f"{self.model} regressed on {self.metric}: {self.old:.4f} -> {self.new:.4f} "
            f"(worse by {c.worse_by:.4f}, 95 % CI {c.ci_low:.4f}..{c.ci_high:.4f}, "
            f"paired t p = {c.p_t:.3g})"
        )


def find_regressions(
    new: pd.DataFrame, old: pd.DataFrame, min_delta: float = 0.005, metrics=GATED
) -> list[Regression]:
    """Per-fold results (columns model, fold, metrics...) of a new run against an old one.

    A metric regresses when the new run is worse on the paired per-fold difference beyond
    noise (the 95 % CI of the mean difference lies above 0) and by more than `min_delta`.
    Models or folds present in only one run are not compared.
    """
    regressions = []
    joined = new.merge(old, on=["model", "fold"], suffixes=("_new", "_old"))
    for model, rows in joined.groupby("model", sort=True):
        for metric in metrics:
            if f"{metric}_new" not in rows or f"{metric}_old" not in rows:
                continue
            comparison = paired(
                "new",
                rows[f"{metric}_new"].to_numpy(),
                "old",
                rows[f"{metric}_old"].to_numpy(),
                metric,
            )
            low = comparison.ci_low if len(rows) > 1 else comparison.worse_by
            if low > 0 and comparison.worse_by > min_delta:
                regressions.append(
                    Regression(
                        str(model),
                        metric,
                        float(rows[f"{metric}_old"].mean()),
                        float(rows[f"{metric}_new"].mean()),
                        comparison,
                    )
                )
    return regressions
