"""Fold statistics, paired tests between models, and the regression gate.

All comparisons are paired by fold: two models (or two benchmark runs) evaluated on the
same folds differ by a per-fold difference whose mean, spread and tests are reported.

Folds of k-fold cross-validation share most of their training data, so their results are
correlated and the plain paired t-test is too confident. Given the test/train size ratio,
the Nadeau & Bengio (2003) corrected resampled t-test widens the variance of the mean to
make up for that; without it (ratio None) the plain paired t-test is used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from bench.errors import BenchError

LOWER_IS_BETTER = {"mae": True, "rmse": True, "mae_rounded": True, "rmse_rounded": True}
RANKING = ("precision_at_10", "recall_at_10", "ndcg_at_10")
GATED = ("mae", "rmse", *RANKING)
PLAIN_T = "paired t"
ONE_FOLD = "one fold: no interval or test, which need at least 2 folds or seeds"


def lower_is_better(metric: str) -> bool:
    return LOWER_IS_BETTER.get(metric, metric.endswith("seconds"))


def _variance_factor(n: int, test_train_ratio: float | None) -> float:
    """What multiplies the sample variance to give the variance of the mean of n folds:
    1/n for independent folds, 1/n + n_test/n_train (Nadeau-Bengio) for overlapping ones."""
    return 1.0 / n + (test_train_ratio or 0.0)


def describe_folds(
    values: np.ndarray,
    bounds: tuple[float, float] | None = None,
    test_train_ratio: float | None = None,
) -> dict[str, float]:
    """Mean, sample std and the 95 % confidence interval of the mean (t distribution).

    With `test_train_ratio` (n_test / n_train of each fold) the interval uses the
    Nadeau-Bengio corrected standard error. With `bounds` = (low, high) the interval is
    clipped to the range the metric can take (e.g. (0, 1) for NDCG), so it never claims
    values that cannot occur; the clipped interval is no longer symmetric about the mean.
    """
    values = np.asarray(values, dtype="float64")
    n = len(values)
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if n > 1 else 0.0
    half = float("nan")
    if n > 1:
        se = std * math.sqrt(_variance_factor(n, test_train_ratio))
        half = float(stats.t.ppf(0.975, n - 1) * se)
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return {"mean": mean, "std": std, "ci_low": low, "ci_high": high}


def corrected_ttest(diff: np.ndarray, test_train_ratio: float) -> tuple[float, float]:
    """Nadeau & Bengio's corrected resampled t-test that the mean of `diff` is 0.

    t = mean / sqrt((1/k + n_test/n_train) * s^2) with k - 1 degrees of freedom, s^2 the
    sample variance of the k per-fold differences; two-sided p. A ratio of 0 gives the
    plain paired t-test. An all-zero difference gives (0, 1); a constant non-zero one,
    which has no noise at all, gives (+-inf, 0).
    """
    diff = np.asarray(diff, dtype="float64")
    k = len(diff)
    if k < 2:
        raise ValueError(f"a t-test needs at least 2 folds, got {k}")
    if np.allclose(diff, 0):
        return 0.0, 1.0
    if np.allclose(diff, diff[0]):
        return math.copysign(math.inf, diff[0]), 0.0
    se = math.sqrt(_variance_factor(k, test_train_ratio) * diff.var(ddof=1))
    t = float(diff.mean() / se)
    return t, float(2 * stats.t.sf(abs(t), k - 1))


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values, in the input order.

    Sorted ascending, the i-th smallest (0-based) of m is multiplied by m - i; a running
    maximum keeps the adjusted values in the same order as the raw ones, and they are
    capped at 1. Reject where adjusted <= alpha to control the family-wise error rate.
    """
    p = np.asarray(pvalues, dtype="float64")
    order = np.argsort(p, kind="stable")
    scaled = p[order] * (len(p) - np.arange(len(p)))
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted


def t_test_label(test_train_ratio: float | None) -> str:
    """How a sentence names the t-test used for a given test/train ratio."""
    if test_train_ratio is None:
        return PLAIN_T
    return f"corrected resampled t (Nadeau-Bengio, n_test/n_train = {test_train_ratio:.3g})"


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
    test: str = PLAIN_T  # which t-test gave p_t (and the CI's standard error)
    folds: int = 2  # how many per-fold differences: a test needs at least two

    def sentence(self) -> str:
        verb = "trails" if self.worse_by > 0 else "beats"
        head = f"{self.a} {verb} {self.b} on {self.metric} by {abs(self.worse_by):.4f}"
        if self.folds < 2:
            return f"{head} ({ONE_FOLD})"
        return (
            f"{head} ± {self.std:.4f} ({self.test} p = {self.p_t:.3g}, "
            f"Wilcoxon p = {self.p_wilcoxon:.3g})"
        )


def wilcoxon_floor(folds: int) -> float:
    """The smallest two-sided p-value the exact Wilcoxon signed-rank test can give on
    `folds` paired differences (every difference of one sign): 2 / 2**folds."""
    return 2.0 / 2**folds


def _wilcoxon(diff: np.ndarray) -> float:
    """Wilcoxon signed-rank p, a second figure that assumes no distribution (uncorrected
    for overlapping training sets, so read it with the same caution as the plain t)."""
    if np.allclose(diff, 0):
        return 1.0
    return float(stats.wilcoxon(diff).pvalue)


def paired(
    a_name: str,
    a: np.ndarray,
    b_name: str,
    b: np.ndarray,
    metric: str,
    test_train_ratio: float | None = None,
) -> Paired:
    """Compare `a` with `b` fold by fold; `test_train_ratio` None = plain paired t-test,
    a number = the corrected resampled t-test and corrected CI for folds of that ratio."""
    diff = np.asarray(a, dtype="float64") - np.asarray(b, dtype="float64")
    if not lower_is_better(metric):
        diff = -diff
    summary = describe_folds(diff, test_train_ratio=test_train_ratio)
    p_t = corrected_ttest(diff, test_train_ratio or 0.0)[1] if len(diff) > 1 else float("nan")
    p_w = _wilcoxon(diff) if len(diff) > 1 else float("nan")
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
        t_test_label(test_train_ratio),
        len(diff),
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
        noise = (
            f"95 % CI {c.ci_low:.4f}..{c.ci_high:.4f}, {c.test} p = {c.p_t:.3g}"
            if c.folds > 1
            else ONE_FOLD
        )
        return (
            f"{self.model} regressed on {self.metric}: {self.old:.4f} -> {self.new:.4f} "
            f"(worse by {c.worse_by:.4f}; {noise})"
        )


def read_baseline(path: Path) -> pd.DataFrame:
    """The per-fold results of an earlier run (its results.csv) that the gate compares with;
    one error line when the file cannot be read or lacks the columns the gate needs."""
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BenchError(f"--baseline {path}: cannot read it ({reason})") from exc
    missing = [c for c in ("model", "fold") if c not in table]
    gated = [m for m in GATED if m in table]
    if missing or not gated:
        raise BenchError(
            f"--baseline {path}: not a benchmark results.csv (it needs the columns model, "
            f"fold and one of {', '.join(GATED)}); pass the results.csv of an earlier "
            "benchmark run's --report-dir"
        )
    numeric = [m for m in gated if not pd.api.types.is_numeric_dtype(table[m])]
    if numeric:
        raise BenchError(
            f"--baseline {path}: column {numeric[0]} holds values that are not numbers; "
            "pass an earlier benchmark run's results.csv"
        )
    return table.astype({"model": str, "fold": str})


def find_regressions(
    new: pd.DataFrame,
    old: pd.DataFrame,
    min_delta: float = 0.005,
    metrics=GATED,
    test_train_ratio: float | None = None,
) -> list[Regression]:
    """Per-fold results (columns model, fold, metrics...) of a new run against an old one.

    A metric regresses when the new run is worse on the paired per-fold difference beyond
    noise (the 95 % CI of the mean difference lies above 0; corrected for overlapping
    training sets when `test_train_ratio` is given) and by more than `min_delta`.
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
                test_train_ratio,
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
