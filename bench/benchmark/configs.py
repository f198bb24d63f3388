"""Which config each architecture runs on each fold of a benchmark, and where it came from.

Three protocols: nested tuning per fold (the default; `bench.benchmark.nested_tuning`), a
pinned file (one config per fold with provenance, as a nested run writes it, or one per
architecture), or the best trials of sweep studies. Peers from scikit-surprise are tuned
like nested configs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

import bench.benchmark.bfm as bfm
import bench.benchmark.ensembles as ensembles
import bench.benchmark.nested_tuning as nested
import bench.benchmark.peers as peers
import bench.benchmark.rankers as rankers
from bench.archs import ARCHS, get_arch
from bench.benchmark.processes import run_all
from bench.benchmark.spec import BenchmarkSpec
from bench.benchmark.stats import read_baseline
from bench.datasets import DEFAULT
from bench.errors import BenchError
from bench.sweep.storage.backends import open_storage
from bench.sweep.storage.urls import redact, resolve_storage
from bench.tracking.tracker import Tracker
from bench.training.tasks import RankedConfig

ALL_FOLDS = "*"  # a pinned config that applies to every fold


def _pinned_entry(arch: str, entry: dict) -> dict[str, tuple[Any, dict]]:
    """One architecture's pinned entry: {fold: {"config": ..., "provenance": ...}} written
    by a nested run, or plain config fields for every fold (older files)."""
    build = get_arch(arch).from_fields
    if entry and all(isinstance(v, dict) and "config" in v for v in entry.values()):
        return {fold: (build(v["config"]), v.get("provenance", {})) for fold, v in entry.items()}
    return {ALL_FOLDS: (build(entry), {"origin": "hand-pinned, no recorded study"})}


def load_pinned(path: Path) -> dict[str, dict[str, tuple[Any, dict]]]:
    """Pinned configs per architecture and fold, each with its provenance."""
    try:
        raw = json.loads(path.read_text())
        return {arch: _pinned_entry(arch, entry) for arch, entry in raw.items()}
    except (
        OSError,
        json.JSONDecodeError,
        TypeError,
        ValueError,
        AttributeError,
        BenchError,
    ) as exc:
        raise BenchError(
            f"{path}: not a valid pinned-config file ({exc}); expected a JSON mapping of "
            f"architecture names ({', '.join(ARCHS)}) to config fields, or to folds each with "
            f"'config' and 'provenance' (as a nested run writes tuned_configs.json)"
        ) from exc


def write_pinned(path: Path, job: Job) -> None:
    """The configs a run used, per fold with provenance: the file --configs takes."""
    out = {
        arch: {
            fold: {"config": config_fields(config), "provenance": job.provenance[arch][fold]}
            for fold, config in folds.items()
        }
        for arch, folds in job.configs.items()
        if arch in ARCHS  # peers are tuned afresh by each --peers run
    }
    path.write_text(json.dumps(out, indent=2, default=str) + "\n")


def config_fields(config: Any) -> dict[str, Any]:
    """A config's fields; an entry that wraps configs says its own (`report_fields`: a
    ranking entry's config then setup, an ensemble's members)."""
    return config.report_fields() if hasattr(config, "report_fields") else dict(vars(config))


def configs_from_studies(storage_url: str, names: dict[str, str]) -> dict[str, Any]:
    """The best (validation) trial of each study, rebuilt as a config."""
    configs = {}
    for arch, name in names.items():
        try:
            study = optuna.load_study(study_name=name, storage=open_storage(storage_url))
            best = study.best_trial
        except (KeyError, ValueError) as exc:
            raise BenchError(
                f"study {name!r} in {redact(storage_url)} has no completed trial ({exc}); run "
                f"`bench sweep --arch {arch}` first or use the pinned configs"
            ) from exc
        configs[arch] = get_arch(arch).from_trial(best)
    return configs


def study_names(spec: BenchmarkSpec, archs: list[str]) -> dict[str, str]:
    """The sweep study of each architecture that --from-studies reads (and the Pareto plot)."""
    prefix = "" if spec.dataset == DEFAULT else f"{spec.dataset}-"
    return {arch: f"{prefix}{arch}-{spec.study_split}" for arch in archs}


@dataclass(frozen=True)
class Job:
    """The resolved inputs of one benchmark run: each architecture's config per fold."""

    configs: dict[str, dict[str, Any]]  # arch -> fold (or ALL_FOLDS) -> config
    provenance: dict[str, dict[str, dict]]  # arch -> fold -> where the config came from
    source: str
    studies: dict[str, str]
    previous_file: pd.DataFrame | None
    trial0: dict[str, dict[str, Any]] = field(default_factory=dict)  # arch -> fold -> config

    def config(self, arch: str, fold: str) -> Any:
        folds = self.configs[arch]
        return folds[fold] if fold in folds else folds[ALL_FOLDS]


def _capped(entry: Any, max_epochs: int) -> Any:
    """An entry trained for at most `max_epochs` (a ranking entry: its config)."""
    if isinstance(entry, RankedConfig):
        return replace(entry, config=_capped(entry.config, max_epochs))
    return replace(entry, epochs=min(entry.epochs, max_epochs))


def _budget(spec: BenchmarkSpec) -> nested.Budget:
    return nested.Budget(
        trials=spec.tune_trials,
        timeout=spec.tune_timeout or None,
        max_epochs=spec.max_epochs or nested.Budget.max_epochs,
        valid_fraction=spec.valid_fraction,
        metric=spec.metric,
        task=spec.task,
    )


def budget_words(budget: nested.Budget) -> str:
    """A study's budget in words: `20 trials, 120 s` or `3 trials, no timeout`."""
    limit = f"{budget.timeout:g} s" if budget.timeout else "no timeout"
    return f"{budget.trials} trial{'' if budget.trials == 1 else 's'}, {limit}"


def _tuned_studies(spec, archs, data, splits, tracker) -> dict[tuple[str, str], Any]:
    """Every study of the run, by (fold, name): each fold's architecture studies (protocol
    nested) and peer studies, `spec.workers` at a time (the peers' after the architectures':
    short ones last, where they fill the time the last long one leaves)."""
    budget = _budget(spec)
    stores = (resolve_storage(spec.storage, tracker.uri), tracker.uri)
    nested_archs = archs if spec.protocol == "nested" else []
    pieces = nested.tuning_pieces(data, splits, nested_archs, spec.seed, budget, stores)
    pieces.update({(s.name, name): (_tune_fold_peer, (name, data, s, spec.seed, budget, stores[0]))
                   for s in splits for name in spec.peers})  # fmt: skip
    if nested_archs:
        at_once = f", {spec.workers} studies at a time" if spec.workers > 1 else ""
        words = budget_words(budget)
        print(f"tuning {', '.join(archs)} on {len(splits)} fold(s) ({words}{at_once})")
    return run_all(pieces, spec.workers, "tuning it")


def _nested_configs(spec, archs, splits, tuned, trial0) -> tuple[dict, dict, str]:
    """Each fold's config tuned on its training part (`tuned`: the studies' results);
    `trial0` gets each study's trial 0 (the published settings, early-stopped), for the
    "did tuning help?" table."""
    budget = _budget(spec)
    configs: dict[str, dict[str, Any]] = {arch: {} for arch in archs}
    provenance: dict[str, dict[str, dict]] = {arch: {} for arch in archs}
    for split in splits:
        for arch in archs:
            result = tuned[split.name, arch]
            configs[arch][split.name] = result.config
            provenance[arch][split.name] = result.provenance
            _say_if_short(split.name, arch, result.provenance, budget)
            if result.trial0 is not None:
                trial0.setdefault(arch, {})[split.name] = result.trial0
    source = (
        f"nested tuning per fold: {budget.trials} trials ({budget.sampler}, {budget.pruner}), "
        f"{budget.timeout} s, <= {budget.max_epochs} epochs, validation "
        f"{budget.valid_fraction}, selected on {budget.metric} (budget {budget.digest()})"
    )
    return configs, provenance, source


def _peer_configs(spec, splits, tuned) -> tuple[dict, dict]:
    """Each peer's params per fold (`tuned`: its studies' results, or the BFM's settings)."""
    budget = _budget(spec)
    configs: dict[str, dict[str, Any]] = {name: {} for name in spec.peers}
    provenance: dict[str, dict[str, dict]] = {name: {} for name in spec.peers}
    for split in splits:
        for name in spec.peers:
            params, origin = tuned[split.name, name]
            configs[name][split.name] = peers.PeerSpec(name, params)
            provenance[name][split.name] = origin
            _say_if_short(split.name, name, origin, budget)
    return configs, provenance


def _tune_fold_peer(name: str, data, split, seed: int, budget, storage: str) -> tuple[dict, dict]:
    """A peer's params for one fold and where they come from: a ranker's or a surprise
    peer's study on the fold's validation part (tuned on validation NDCG@10, or the
    budget's rating metric), or the BFM's settings fixed in advance."""
    print(f"{split.name}: tuning peer {name} ...", flush=True)
    if name == bfm.NAME:
        return dict(bfm.SETTINGS), {"origin": bfm.ORIGIN}
    tuning = nested.tuning_split(data, split, seed, budget)
    study = nested.study_name(split.dataset, split.name, name, seed, budget)
    tune = rankers.tune if name in rankers.RANKERS else peers.tune
    return tune(name, tuning, budget, seed, open_storage(storage), study)


def _ensemble_configs(spec, archs, provenance, tracker) -> tuple[dict, dict]:
    """Each fold's ensembles: an architecture's `spec.ensembles` best trials of its nested
    study (`ARCH-ens`), and, with several architectures, all of them together (`all-ens`)."""
    storage = resolve_storage(spec.storage, tracker.uri)
    members = {
        arch: {
            fold: nested.top_configs(storage, origin["study"], arch, spec.ensembles)
            for fold, origin in provenance[arch].items()
        }
        for arch in archs
    }
    if len(archs) > 1:
        folds = members[archs[0]]
        members[ensembles.ALL] = {f: sum((members[a][f] for a in archs), ()) for f in folds}
    configs, origins = {}, {}
    for prefix, by_fold in members.items():
        name = ensembles.row_name(prefix)
        configs[name] = {
            fold: ensembles.EnsembleSpec(name, chosen, spec.valid_fraction, spec.metric)
            for fold, chosen in by_fold.items()
        }
        origins[name] = {
            fold: {"origin": f"greedy ensemble of {', '.join(label for label, _ in chosen)}"}
            for fold, chosen in by_fold.items()
        }
    return configs, origins


def _say_if_short(fold: str, name: str, origin: dict, budget: nested.Budget) -> None:
    """One line if the study's timeout cut it short; the report marks that row too."""
    line = nested.short_line(fold, name, origin, budget) if "trials" in origin else None
    if line:
        origin["cut_short"] = line
        print(line, flush=True)


def _fixed_configs(spec, archs, tracker, studies) -> tuple[dict, dict, str]:
    if spec.protocol == "studies":
        storage = resolve_storage(spec.storage, tracker.uri)
        found = configs_from_studies(storage, studies)
        origin = {"origin": f"best trial of study {{}} in {Path(storage).name}"}
        provenance = {
            a: {ALL_FOLDS: {"origin": origin["origin"].format(studies[a])}} for a in archs
        }
        source = (
            f"best trials of the {spec.study_split} studies (tuned on data that overlaps the folds)"
        )
        return {a: {ALL_FOLDS: found[a]} for a in archs}, provenance, source
    if spec.configs is None:
        raise BenchError(
            "--protocol pinned needs --configs FILE (studies/pinned_configs.json in a checkout)"
        )
    pinned = load_pinned(spec.configs)
    missing = [a for a in archs if a not in pinned]
    if missing:
        raise BenchError(f"{spec.configs} has no config for {missing}")
    configs = {a: {f: c for f, (c, _) in pinned[a].items()} for a in archs}
    provenance = {a: {f: p for f, (_, p) in pinned[a].items()} for a in archs}
    return configs, provenance, f"pinned file {spec.configs.name}"  # no path: the gate matches


def resolve_configs(spec: BenchmarkSpec, tracker: Tracker, data, splits) -> Job:
    """Part 1: which config each architecture runs on each fold, from where (nested tuning,
    a pinned file, or sweep studies), and the gate's baseline file."""
    archs = list(spec.archs)
    for arch in archs:
        get_arch(arch)
    previous_file = read_baseline(spec.baseline) if spec.baseline is not None else None
    studies = study_names(spec, archs)
    trial0: dict[str, dict[str, Any]] = {}
    if spec.protocol != "nested":  # read before any study runs: a bad file is one line
        configs, provenance, source = _fixed_configs(spec, archs, tracker, studies)
    tuned = _tuned_studies(spec, archs, data, splits, tracker)
    if spec.protocol == "nested":
        configs, provenance, source = _nested_configs(spec, archs, splits, tuned, trial0)
    if spec.max_epochs:
        configs = {
            a: {f: _capped(c, spec.max_epochs) for f, c in folds.items()}
            for a, folds in configs.items()
        }
    if spec.ensembles:
        ensemble_configs, ensemble_provenance = _ensemble_configs(spec, archs, provenance, tracker)
        configs.update(ensemble_configs)
        provenance.update(ensemble_provenance)
    if spec.peers:
        peer_configs, peer_provenance = _peer_configs(spec, splits, tuned)
        configs.update(peer_configs)
        provenance.update(peer_provenance)
    return Job(configs, provenance, source, studies, previous_file, trial0)
