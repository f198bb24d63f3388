"""Did tuning help? Each architecture's tuned config against its study's trial 0 (the
published settings), on validation and on test, fold by fold.

Trial 0 is refitted on each fold's training part and scored on its test part exactly like
the tuned config (its rows are `ARCH@trial0`), so the test difference is like for like; the
validation figures come from the nested studies themselves.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from bench.benchmark.stats import lower_is_better, paired

SUFFIX = "@trial0"


def trial0_name(arch: str) -> str:
    """The result rows of an architecture's trial 0 config."""
    return f"{arch}{SUFFIX}"


def _fold_values(results: pd.DataFrame, model: str, metric: str) -> pd.Series:
    rows = results[results["model"] == model]
    return rows.set_index("fold")[metric]


def _row(arch: str, origin: dict[str, dict], tuned: pd.Series, base: pd.Series, metric, ratio):
    folds = [f for f in tuned.index if f in base.index and f in origin]
    val_tuned = np.array([origin[f]["value"] for f in folds], dtype="float64")
    val_base = np.array([origin[f].get("trial0_value") or np.nan for f in folds], dtype="float64")
    test_tuned, test_base = tuned[folds].to_numpy(), base[folds].to_numpy()
    sign = 1.0 if lower_is_better(metric) else -1.0  # better: lower for an error
    row: dict[str, Any] = {
        "arch": arch,
        "folds": len(folds),
        "trial 0 chosen": sum(origin[f]["trial"] == 0 for f in folds),
        "a prior chosen": sum(origin[f].get("start") not in (None, "post") for f in folds),
        "tuned better on val": int(np.sum(sign * val_tuned < sign * val_base)),
        f"val {metric} tuned": float(np.mean(val_tuned)),
        f"val {metric} trial 0": float(np.nanmean(val_base)),
        f"test {metric} tuned": float(np.mean(test_tuned)),
        f"test {metric} trial 0": float(np.mean(test_base)),
    }
    if len(folds) >= 2:
        test = paired(arch, test_tuned, trial0_name(arch), test_base, metric, ratio)
        row["test difference (95 % CI)"] = (
            f"{test.worse_by:+.4f} [{test.ci_low:+.4f}, {test.ci_high:+.4f}]"
        )
        row["p (t-test)"] = test.p_t
    return row


def tuning_table(
    results: pd.DataFrame, provenance: dict[str, dict[str, dict]], metric: str, ratio
) -> pd.DataFrame:
    """One row per tuned architecture whose trial 0 was scored: on how many folds trial 0
    was chosen, and a prior (a fixed start such as `svd-defaults`); on how many the tuned
    config beat trial 0 on validation; both means on validation and test; and the test
    difference (tuned minus trial 0; negative is better for an error) with the corrected CI
    (`Paired.worse_by`: positive means the tuned config is worse)."""
    rows = []
    models = set(results["model"])
    for arch, origin in provenance.items():
        if trial0_name(arch) not in models or metric not in results:
            continue
        tuned = _fold_values(results, arch, metric)
        base = _fold_values(results, trial0_name(arch), metric)
        if any("value" not in o or "trial" not in o for o in origin.values()):
            continue  # not a nested study's provenance
        rows.append(_row(arch, origin, tuned, base, metric, ratio))
    return pd.DataFrame(rows)
