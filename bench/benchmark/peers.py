"""Peer models from scikit-surprise (the `bench` extra), tuned like ours.

`--peers` adds SVD, SVD++ and KNNBaseline rows to the benchmark. Each is tuned per fold
with Optuna on the same validation part and with the same budget as our architectures
(validation MAE, trials and timeout), refitted on the fold's whole training part and
scored on its test part, so the report compares tuned against tuned. SVD and SVD++ score
every (user, item) pair vectorised from their learnt factors, so they get ranking metrics
too; KNNBaseline is scored on the test pairs only (its ranking metrics are left empty).
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import optuna
import pandas as pd

from bench.errors import BenchError
from bench.sweep.samplers import make_sampler, stream_of

INSTALL = "pip install 'recsys-sweep-bench[bench]'"


def require_surprise() -> None:
    if importlib.util.find_spec("surprise") is None:
        raise BenchError(f"--peers needs scikit-surprise, which is not installed; run {INSTALL}")


def _space(name: str, trial: optuna.Trial) -> dict[str, Any]:
    if name == "knn_baseline":
        return {
            "k": trial.suggest_int("k", 5, 100, log=True),
            "min_k": trial.suggest_int("min_k", 1, 5),
            "sim_options": {
                "name": trial.suggest_categorical("sim", ["pearson_baseline", "msd", "cosine"]),
                "user_based": trial.suggest_categorical("user_based", [True, False]),
            },
            "verbose": False,
        }
    high = 200 if name == "svd" else 50
    return {
        "n_factors": trial.suggest_int("n_factors", 5, high, log=True),
        "n_epochs": trial.suggest_int("n_epochs", 5, 60 if name == "svd" else 30),
        "lr_all": trial.suggest_float("lr_all", 1e-3, 5e-2, log=True),
        "reg_all": trial.suggest_float("reg_all", 5e-3, 0.2, log=True),
    }


def _algorithm(name: str, params: dict[str, Any]):
    import surprise  # the optional `bench` extra: imported only when --peers asks for it

    kind = {"svd": surprise.SVD, "svdpp": surprise.SVDpp, "knn_baseline": surprise.KNNBaseline}
    return kind[name](random_state=0, **params) if name != "knn_baseline" else kind[name](**params)


def _trainset(frame: pd.DataFrame, scale: tuple[float, float]):
    import surprise

    reader = surprise.Reader(rating_scale=scale)
    data = surprise.Dataset.load_from_df(frame[["user", "item", "rating"]], reader)
    return data.build_full_trainset()


def _inner_ids(inner_of: dict[int, int]) -> np.ndarray:
    """An array mapping each of our int codes to surprise's inner id (-1: not trained on)."""
    table = np.full(max(inner_of, default=-1) + 1, -1, dtype="int64")
    table[list(inner_of)] = list(inner_of.values())
    return table


def _lookup(table: np.ndarray, codes: np.ndarray) -> np.ndarray:
    codes = np.asarray(codes, dtype="int64")
    inside = (codes >= 0) & (codes < len(table))
    return np.where(inside, table[np.where(inside, codes, 0)], -1)


@dataclass(frozen=True)
class PeerSpec:
    """A tuned peer config, as the benchmark's predictor for one fold."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def arch(self) -> str:
        return self.name


@dataclass
class Peer:
    """A fitted surprise algorithm with vectorised predictions on our int codes."""

    name: str
    algo: Any
    trainset: Any
    scale: tuple[float, float]

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        if self.name == "knn_baseline":
            est = [self.algo.predict(int(u), int(i)).est for u, i in zip(users, items, strict=True)]
            return np.asarray(est, dtype="float64")
        return np.clip(self._factor_predict(users, items), *self.scale)

    def _factor_predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        algo, (user_inner, item_inner, implicit) = self.algo, self._factor_lookup
        u = _lookup(user_inner, users)
        i = _lookup(item_inner, items)
        known_u, known_i = u >= 0, i >= 0
        u, i = np.maximum(u, 0), np.maximum(i, 0)
        user_vec = algo.pu[u] + (implicit[u] if implicit is not None else 0)
        est = self.trainset.global_mean + np.where(known_u, algo.bu[u], 0.0)
        est += np.where(known_i, algo.bi[i], 0.0)
        dot = np.einsum("nk,nk->n", user_vec, algo.qi[i])
        return est + np.where(known_u & known_i, dot, 0.0)

    @cached_property
    def _factor_lookup(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Once per fitted peer: our code -> inner id arrays, and SVD++'s implicit term."""
        ts = self.trainset
        user_inner = _inner_ids({ts.to_raw_uid(u): u for u in ts.all_users()})
        item_inner = _inner_ids({ts.to_raw_iid(i): i for i in ts.all_items()})
        return user_inner, item_inner, self._implicit() if self.name == "svdpp" else None

    def _implicit(self) -> np.ndarray:
        """SVD++'s |N(u)|^-1/2 * sum of y_j over the user's rated items, per inner user."""
        ts, y = self.trainset, self.algo.yj
        out = np.zeros_like(self.algo.pu)
        for u, ratings in ts.ur.items():
            items = [j for j, _ in ratings]
            out[u] = y[items].sum(axis=0) / np.sqrt(len(items))
        return out

    @property
    def ranks_all_pairs(self) -> bool:
        return self.name != "knn_baseline"


def fit(name: str, params: dict[str, Any], train: pd.DataFrame, scale) -> Peer:
    trainset = _trainset(train, scale)
    algo = _algorithm(name, params)
    algo.fit(trainset)
    return Peer(name, algo, trainset, scale)


def tune(
    name: str, tuning, budget, seed: int, storage: optuna.storages.BaseStorage, study: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Tune peer `name` on the tuning split's validation part, on the budget's metric and
    with its sampler (as our architectures are tuned); (params, provenance)."""
    scale = (tuning.scale.low, tuning.scale.high)
    valid = tuning.valid

    def objective(trial: optuna.Trial) -> float:
        peer = fit(name, _space(name, trial), tuning.train, scale)
        error = peer.predict(valid["user"].to_numpy(), valid["item"].to_numpy()) - valid["rating"]
        return float(np.sqrt(np.mean(error**2)) if rmse else np.mean(np.abs(error)))

    rmse = budget.metric == "rmse"
    sampler = make_sampler(seed, (stream_of(tuning.name),), budget.sampler)
    found = optuna.create_study(
        study_name=study, storage=storage, sampler=sampler, load_if_exists=True
    )
    return run_budget(found, objective, lambda t: _space(name, t), budget, f"val_{budget.metric}")


def run_budget(
    found: optuna.Study, objective, space, budget, metric: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run a peer's study up to the budget's trial count in all (a rerun tops it up, never
    adds a new budget); (the best trial's params through `space`, its provenance)."""
    remaining = budget.trials - len([t for t in found.trials if t.state.is_finished()])
    if remaining > 0:
        found.optimize(objective, n_trials=remaining, timeout=budget.timeout)
    best = found.best_trial
    params = space(optuna.trial.FixedTrial(best.params))
    provenance = {"study": found.study_name, "trial": best.number, "metric": metric,
                  "value": best.value, "trials": len(found.trials)}  # fmt: skip
    return params, provenance


def fit_and_time(name: str, params: dict, train: pd.DataFrame, scale) -> tuple[Peer, float]:
    start = time.perf_counter()
    peer = fit(name, params, train, scale)
    return peer, time.perf_counter() - start
