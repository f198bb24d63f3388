"""The benchmark job's parts on toy cases, and the job end to end on small generated data."""

from __future__ import annotations

import importlib.util
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from scipy import stats as scipy_stats

from bench.archs.mf import MFConfig
from bench.benchmark import configs as protocol
from bench.benchmark import job as benchmark
from bench.benchmark import nested_tuning as nested
from bench.benchmark import peers, predictors, records
from bench.benchmark.baselines import BiasALS, DampedBias, GlobalMean
from bench.benchmark.results import FoldResult
from bench.benchmark.stats import describe_folds, find_regressions, paired
from bench.cli import benchmark as benchmark_cli
from bench.errors import BenchError
from bench.metrics.ranking import ranking_metrics, top_k_unseen
from bench.tracking.environment import code_version
from bench.tracking.recommend import load_keras_model, recommend
from bench.tracking.tracker import Tracker
from bench.training.train import predict_codes, train


def test_damped_bias_matches_a_hand_computation():
    train_frame = pd.DataFrame({"user": [0, 0, 1], "item": [0, 1, 0], "rating": [5, 3, 4]})
    model = DampedBias(n_users=2, n_items=2, damping=1.0).fit(train_frame)
    mu = 4.0
    b_item = np.array([((5 - mu) + (4 - mu)) / (2 + 1), (3 - mu) / (1 + 1)])
    b_user = np.array(
        [((5 - mu - b_item[0]) + (3 - mu - b_item[1])) / (2 + 1), (4 - mu - b_item[0]) / (1 + 1)]
    )
    expected = mu + b_user[[1, 0]] + b_item[[1, 0]]
    np.testing.assert_allclose(model.predict(np.array([1, 0]), np.array([1, 0])), expected)
    assert GlobalMean().fit(train_frame).predict(np.array([0, 1]), np.array([1, 1])).tolist() == [
        4.0,
        4.0,
    ]


def test_ranking_metrics_match_a_hand_computation():
    # 1 user, 6 items; item 0 was rated in training; test: items 1 (5 stars), 2 (2), 3 (4).
    train_frame = pd.DataFrame({"user": [0], "item": [0], "rating": [5]})
    test_frame = pd.DataFrame({"user": [0, 0, 0], "item": [1, 2, 3], "rating": [5, 2, 4]})
    scores = np.array([9.0, 3.0, 5.0, 1.0, 4.0, 0.0])  # unseen order: 2, 4, 1, 3, 5
    metrics = ranking_metrics(lambda u: scores, train_frame, test_frame, n_items=6, k=3)
    # top 3 = [2, 4, 1]; relevant = {1, 3}; one hit, at rank 3
    assert metrics["precision_at_3"] == pytest.approx(1 / 3)
    assert metrics["recall_at_3"] == pytest.approx(1 / 2)
    ideal = 1 + 1 / np.log2(3)
    assert metrics["ndcg_at_3"] == pytest.approx((1 / np.log2(4)) / ideal)
    seen = np.array([True, False, False, False, False, False])
    assert top_k_unseen(scores, seen, 2).tolist() == [2, 4]


def test_fold_metrics_equal_a_hand_computation(small_data):
    split = benchmark.fold_splits(small_data, ["u1"], seeds=0)[0]
    result = predictors.evaluate("global_mean", predictors.GlobalMeanBaseline(), split, seed=0)
    error = split.test["rating"].to_numpy() - split.train["rating"].mean()
    assert result.metrics["mae"] == pytest.approx(np.abs(error).mean())
    assert result.metrics["rmse"] == pytest.approx(np.sqrt((error**2).mean()))
    assert len(split.train) == len(small_data.read_split_file("u1.base"))  # no validation cut


def test_fold_statistics_and_paired_tests_match_scipy():
    values = np.array([0.91, 0.93, 0.92, 0.95, 0.90])
    d = describe_folds(values)
    half = scipy_stats.t.ppf(0.975, 4) * values.std(ddof=1) / np.sqrt(5)
    assert d["ci_low"] == pytest.approx(values.mean() - half)
    other = values - np.array([0.01, 0.02, 0.015, 0.012, 0.018])
    comparison = paired("nn", values, "mf", other, "rmse")
    assert comparison.worse_by == pytest.approx(0.015)
    assert comparison.p_t == pytest.approx(scipy_stats.ttest_rel(values, other).pvalue)
    assert comparison.sentence().startswith("nn trails mf on rmse by 0.0150 ± ")
    assert paired("nn", values, "mf", other, "ndcg_at_10").sentence().startswith("nn beats mf")


def _results(rmse_shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for model in ("mf", "bias"):
        for fold in ("u1", "u2", "u3", "u4", "u5"):
            rmse = 0.95 + rng.normal(scale=0.01)
            rows.append(
                {
                    "model": model,
                    "fold": fold,
                    "rmse": rmse + rmse_shift,
                    "mae": rmse * 0.8,
                    "precision_at_10": 0.1,
                    "recall_at_10": 0.1,
                    "ndcg_at_10": 0.2,
                }
            )
    return pd.DataFrame(rows)


def test_gate_passes_an_unchanged_rerun_and_flags_a_better_baseline():
    new = _results()
    assert find_regressions(new, new.copy()) == []
    better_baseline = _results(rmse_shift=-0.02)
    regressions = find_regressions(new, better_baseline)
    assert {(r.model, r.metric) for r in regressions} == {("mf", "rmse"), ("bias", "rmse")}
    message = regressions[1].message()
    assert message.startswith("mf regressed on rmse:") and "p = " in message
    noisy = _results(rmse_shift=-0.002)  # worse, but by less than the minimum
    assert find_regressions(new, noisy) == []


def test_logged_model_round_trips_with_identical_predictions(small_split, tmp_path):
    result = train(replace(MFConfig(k=3, use_bias=True), epochs=2), small_split)
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = tracker.start_run(tracker.experiment("round-trip"), "model")
    fold = FoldResult("mf", split_name := "u1", {}, keras_model=result.model)
    records.log_fold(
        tracker,
        run_id,
        tracker.experiment("round-trip"),
        fold,
        predictors.LearntConfig(result.config),
    )
    child = tracker.client.search_runs(
        [tracker.experiment("round-trip")], f"tags.fold = '{split_name}'"
    )[0]
    loaded = load_keras_model(f"runs:/{child.info.run_id}/model", tracker.uri)
    users, items = small_split.test["user"].to_numpy(), small_split.test["item"].to_numpy()
    np.testing.assert_array_equal(
        predict_codes(loaded, users, items), predict_codes(result.model, users, items)
    )


def test_recommend_lists_unseen_titles(small_data):
    split = benchmark.fold_splits(small_data, ["u1"], seeds=0)[0]
    model = train(replace(MFConfig(k=2), epochs=2), split).model
    user_id = int(small_data.ratings["user_id"].iloc[0])
    table = recommend(model, small_data, user_id, k=5)
    rated = set(small_data.ratings.loc[small_data.ratings["user_id"] == user_id, "item_id"])
    assert len(table) == 5 and not rated & set(table["movie id"])
    assert table["title"].str.startswith("Film ").all()
    assert table["predicted rating"].is_monotonic_decreasing


def _job_args(tmp_path, *extra: str):
    configs = tmp_path / "configs.json"
    configs.write_text(
        json.dumps({"mf": {"k": 2, "epochs": 2}, "nn": {"epochs": 2, "batch_size": 64}})
    )
    return benchmark_cli.parse_args(
        [
            "--protocol",
            "pinned",
            "--configs",
            str(configs),
            "--archs",
            "mf,nn",
            "--folds",
            "u1,u2",
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
            "--report-dir",
            str(tmp_path / "report"),
            *extra,
        ]
    )


def test_job_runs_end_to_end_and_gates(small_data, tmp_path, capsys):
    assert benchmark_cli.run(_job_args(tmp_path), small_data) == 0
    out = capsys.readouterr().out
    assert "no earlier comparable benchmark run" in out
    assert "nothing was compared" in (tmp_path / "report" / "report.md").read_text()
    assert "mf trails nn on rmse" in out or "mf beats nn on rmse" in out
    report = tmp_path / "report"
    results = pd.read_csv(report / "results.csv")
    assert set(results["model"]) == {"mf", "nn", "global_mean", "bias", "popularity"}
    assert set(results["fold"]) == {"u1", "u2"}
    for name in ("report.md", "report.html", "metrics.png", "loss_curves.png", "embeddings.png"):
        assert (report / name).is_file()
    page = (report / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 3 and "![" not in page
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(benchmark.EXPERIMENT)
    assert experiment.tags["mlflow.note.content"] == benchmark.BENCHMARK_EXPERIMENT
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1 + 5 * 2
    mf_run = next(r for r in runs if r.data.tags.get("model") == "mf")
    loaded = load_keras_model(
        f"runs:/{mf_run.info.run_id}/model", f"sqlite:///{tmp_path / 'mlflow.db'}"
    )
    assert loaded.count_params() == (small_data.n_users + 1 + small_data.n_items + 1) * 2
    assert len(client.get_metric_history(mf_run.info.run_id, "train_loss_mse")) == 2
    for arch in ("mf", "nn"):
        version = client.get_model_version_by_alias(f"recsys-{arch}-ml-100k", "benchmark")
        assert version.tags["fold"] == "u1" and "pinned file configs.json" in version.description
        fold_run = client.get_run(version.run_id)
        assert fold_run.data.tags["fold"] == "u1" and fold_run.data.tags["model"] == arch

    registered = {arch: client.get_model_version_by_alias(f"recsys-{arch}-ml-100k", "benchmark")
                  for arch in ("mf", "nn")}  # fmt: skip
    assert benchmark_cli.run(_job_args(tmp_path), small_data) == 0  # unchanged rerun: gate passes
    assert "regression gate: no metric worse" in capsys.readouterr().out
    for arch, version in registered.items():  # same config, data and code: nothing registered
        name = f"recsys-{arch}-ml-100k"
        assert client.get_model_version_by_alias(name, "benchmark").version == version.version
        assert len(client.search_model_versions(f"name = '{name}'")) == 1

    doctored = results.copy()
    doctored.loc[doctored["model"] == "mf", "rmse"] -= 0.05
    doctored.to_csv(tmp_path / "baseline.csv", index=False)
    assert (
        benchmark_cli.run(
            _job_args(tmp_path, "--baseline", str(tmp_path / "baseline.csv")), small_data
        )
        == 1
    )
    assert "mf regressed on rmse" in capsys.readouterr().out


def test_a_run_to_gate_against_whose_artifacts_are_gone_is_one_error_saying_what_to_do(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    artifacts = tmp_path / "mlartifacts"
    experiment = client.create_experiment("benchmark", artifact_location=artifacts.as_uri())
    identity = {"bench.data": "ml-100k u1"}
    run = client.create_run(experiment, tags=identity, run_name="benchmark-20261129-0300")
    client.log_text(run.info.run_id, "model,fold,rmse\nmf,u1,0.91\n", "results.csv")
    client.set_terminated(run.info.run_id)
    previous, against = records.previous_results(client, experiment, identity)
    assert list(previous["rmse"]) == [0.91] and against == "latest run benchmark-20261129-0300"

    shutil.rmtree(artifacts)  # a store cached or copied without its artifact folder
    with pytest.raises(BenchError) as raised:
        records.previous_results(client, experiment, identity)
    message = str(raised.value)
    assert message.startswith("the latest run benchmark-20261129-0300 to gate against")
    assert str(artifacts.name) in message and "--baseline" in message and "\n" not in message


def test_a_promoted_reference_fails_every_run_that_regresses_until_it_is_fixed(
    small_data, tmp_path, capsys, monkeypatch
):
    """Gated against the latest run, a regression fails one night and passes the next (and
    slow drift never fails); gated against a promoted reference it fails every night."""
    configs = tmp_path / "learning.json"  # an MF that learns on the small data
    configs.write_text(json.dumps({"mf": {"k": 2, "use_bias": True, "learning_rate": 0.02,
                                          "epochs": 10}}))  # fmt: skip
    args = ("--configs", str(configs), "--archs", "mf")
    assert benchmark_cli.run(_job_args(tmp_path, *args, "--promote"), small_data) == 0
    capsys.readouterr()
    honest = predictors.train

    def regressed(config, split, options):  # a code change that stops MF from learning
        return honest(replace(config, learning_rate=1e-6), split, options)

    monkeypatch.setattr(predictors, "train", regressed)
    for _ in range(2):  # the second night compares with the reference, not with the first
        assert benchmark_cli.run(_job_args(tmp_path, *args), small_data) == 1
        out = capsys.readouterr().out
        assert "REGRESSION against the reference run benchmark-" in out
        assert "mf regressed on rmse" in out
    monkeypatch.undo()
    assert benchmark_cli.run(_job_args(tmp_path, *args), small_data) == 0  # fixed
    assert "than the reference run benchmark-" in capsys.readouterr().out
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(benchmark.EXPERIMENT).experiment_id
    parents = client.search_runs([experiment], "tags.`bench.reference` != ''")
    [reference] = parents  # promoted once; the runs table says which run each was gated against
    jobs = client.search_runs([experiment], "tags.`bench.gated_against` != ''")
    gated = sorted((r.info.start_time, r.data.tags["bench.gated_against"]) for r in jobs)
    assert [against for _, against in gated] == [
        "nothing: no earlier comparable run",
        *[f"reference run {reference.info.run_name}"] * 3,
    ]


def test_bad_config_file_is_a_clear_error(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(BenchError, match=r"bad\.json: not a valid pinned-config file"):
        protocol.load_pinned(tmp_path / "bad.json")


@pytest.mark.parametrize("change", [["--max-epochs", "1"], ["--seed", "1"], ["--metric", "mae"]])
def test_runs_that_differ_in_cap_or_seed_are_never_each_others_baseline(
    small_data, tmp_path, capsys, change
):
    assert benchmark_cli.run(_job_args(tmp_path, "--archs", "mf"), small_data) == 0
    capsys.readouterr()
    assert benchmark_cli.run(_job_args(tmp_path, "--archs", "mf", *change), small_data) == 0
    assert "no earlier comparable benchmark run" in capsys.readouterr().out


def test_gate_identity_names_data_machine_and_configs(small_data, tmp_path):
    args = _job_args(tmp_path)
    tracker = Tracker(f"sqlite:///{tmp_path / 'unused.db'}")
    job = protocol.resolve_configs(args, tracker, small_data, [])
    identity = records.run_identity(job, args, small_data, "u1,u2")
    assert identity["dataset"] == "ml-100k" and identity["data_sha256"] == small_data.checksum
    assert identity["machine_class"] and identity["max_epochs"] == "none"
    other = protocol.resolve_configs(
        _job_args(tmp_path, "--max-epochs", "1"), tracker, small_data, []
    )
    assert (
        records.run_identity(other, args, small_data, "u1,u2")["configs_sha256"]
        != (identity["configs_sha256"])
    )


def test_a_study_stopped_by_its_timeout_is_said_in_one_line(small_data, tmp_path, capsys):
    args = benchmark_cli.parse_args(
        ["--archs", "mf", "--folds", "u1", "--tune-trials", "3", "--tune-timeout", "0.2",
         "--max-epochs", "1", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
         "--storage", str(tmp_path / "journal.log"), "--report-dir", str(tmp_path / "report")]
    )  # fmt: skip
    assert benchmark_cli.run(args, small_data) == 0
    out, err = capsys.readouterr()
    assert "rerun the command to add more" not in err  # a rerun reuses the finished study
    lines = [line for line in out.splitlines() if "timeout after" in line]
    assert lines == [
        "u1: mf stopped at its 0.2 s timeout after 1 of 3 trials, so its config depends on "
        "this machine's speed (--tune-timeout 0: no timeout)"
    ]
    report = (tmp_path / "report" / "report.md").read_text()
    assert "**Machine-dependent rows**" in report and f"- {lines[0]}" in report


def test_the_default_budget_is_a_trial_count_with_no_timeout(small_data, tmp_path, capsys):
    args = benchmark_cli.parse_args(
        ["--archs", "mf", "--folds", "u1", "--tune-trials", "2", "--max-epochs", "1",
         "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
         "--storage", str(tmp_path / "journal.log"), "--report-dir", str(tmp_path / "report")]
    )  # fmt: skip
    assert args.tune_timeout == 0
    assert benchmark_cli.run(args, small_data) == 0
    assert "(2 trials, no timeout)" in capsys.readouterr().out
    assert "Machine-dependent" not in (tmp_path / "report" / "report.md").read_text()


def test_a_model_identity_changes_with_the_config_the_data_or_the_code(monkeypatch):
    from bench.tracking import environment

    config = MFConfig(k=4)
    first = records.model_identity(config, "data-a")
    assert records.model_identity(MFConfig(k=4), "data-a") == first
    assert records.model_identity(replace(config, k=5), "data-a") != first
    assert records.model_identity(config, "data-b") != first
    monkeypatch.setattr(records, "code_version", lambda: "another-commit")
    assert records.model_identity(config, "data-a") != first
    monkeypatch.setattr(environment, "_git_commit", lambda: "abc123-dirty")
    environment.code_version.cache_clear()
    try:  # uncommitted edits: the same edits, the same version
        assert environment.code_version() == environment.code_version()
        assert environment.code_version().startswith("abc123+")
        monkeypatch.setattr(environment, "_git_commit", lambda: "unknown")  # no checkout
        environment.code_version.cache_clear()
        package = environment.source_digest(Path(environment.__file__).parents[1])
        assert environment.code_version().startswith("recsys-sweep-bench ")
        assert environment.code_version().endswith(f"+{package}")
    finally:
        environment.code_version.cache_clear()


def test_a_source_digest_names_the_code_wherever_it_was_copied_and_changes_with_it(tmp_path):
    from bench.tracking.environment import source_digest

    for folder in ("a", "b"):
        (tmp_path / folder / "sub").mkdir(parents=True)
        (tmp_path / folder / "sub" / "m.py").write_text("x = 1\n")
        (tmp_path / folder / "notes.txt").write_text(folder)  # not source
    assert source_digest(tmp_path / "a") == source_digest(tmp_path / "b")
    (tmp_path / "b" / "sub" / "m.py").write_text("x = 2\n")
    assert source_digest(tmp_path / "a") != source_digest(tmp_path / "b")
    (tmp_path / "b" / "sub" / "m.py").rename(tmp_path / "b" / "m.py")  # same text, moved
    (tmp_path / "b" / "m.py").write_text("x = 1\n")
    assert source_digest(tmp_path / "a") != source_digest(tmp_path / "b")


def test_unknown_architecture_lists_the_registered_ones(tmp_path):
    with pytest.raises(BenchError, match="unknown architecture 'xf'; known: mf, nnmf, nn"):
        protocol.resolve_configs(
            _job_args(tmp_path, "--archs", "xf"),
            Tracker(f"sqlite:///{tmp_path / 'x.db'}"),
            None,
            [],
        )


def test_nested_tuning_never_touches_the_fold_test_part(small_data, tmp_path, monkeypatch):
    seen = []
    real = nested.run_study

    def spy(settings, split):
        seen.append(split)
        return real(settings, split)

    monkeypatch.setattr(nested, "run_study", spy)
    fold = benchmark.fold_splits(small_data, ["u1"], seeds=0)[0]
    budget = nested.Budget(trials=2, timeout=None, max_epochs=2)
    stores = (str(tmp_path / "journal.log"), f"sqlite:///{tmp_path / 'mlflow.db'}")
    tuned = nested.tune(small_data, fold, "mf", 0, budget, stores)
    (split,) = seen
    pairs = lambda f: set(zip(f["user"], f["item"], strict=True))  # noqa: E731
    assert len(split.test) == 0
    assert pairs(split.train) | pairs(split.valid) == pairs(fold.train)
    assert not (pairs(split.train) | pairs(split.valid)) & pairs(fold.test)
    assert tuned.provenance["trials"] == 2 and tuned.provenance["study"].startswith("nested-")
    again = nested.tune(small_data, fold, "mf", 0, budget, stores)
    assert len(seen) == 1 and again.config == tuned.config  # a finished study is reused


def test_unseen_ids_get_the_fallback_not_untrained_rows(small_data):
    split = benchmark.fold_splits(small_data, ["u1"], seeds=0)[0]
    split = replace(split, train=split.train[split.train["item"] != 0])  # item 0: no rating
    predict = predictors.with_fallback(lambda u, i: np.full(len(u), 99.0), split)
    known = predictors.known_pairs(split)
    users = np.arange(split.n_users).repeat(split.n_items)
    items = np.tile(np.arange(split.n_items), split.n_users)
    out = predict(users, items)
    mask = known(users, items)
    assert (~mask == (items == 0)).all() and (out[mask] == 99.0).all()
    base = BiasALS(split.n_users, split.n_items).fit(split.train)
    np.testing.assert_allclose(out[~mask], base.predict(users[~mask], items[~mask]))


def test_nested_job_writes_per_fold_configs_that_pin_the_next_run(small_data, tmp_path, capsys):
    args = benchmark_cli.parse_args(
        ["--archs", "mf", "--folds", "u1,u2", "--tune-trials", "2", "--max-epochs", "2",
         "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
         "--storage", str(tmp_path / "journal.log"), "--report-dir", str(tmp_path / "report")]
    )  # fmt: skip
    assert benchmark_cli.run(args, small_data) == 0
    tuned = json.loads((tmp_path / "report" / "tuned_configs.json").read_text())
    assert set(tuned["mf"]) == {"u1", "u2"}
    provenance = tuned["mf"]["u1"]["provenance"]
    assert {"study", "trial", "value", "trials", "budget", "commit"} <= set(provenance)
    assert provenance["commit"] == code_version() != "unknown"
    report = (tmp_path / "report" / "report.md").read_text()
    assert "nested-ml-100k-u1-mf" in report and "fallback" in report
    pinned = protocol.load_pinned(tmp_path / "report" / "tuned_configs.json")
    assert set(pinned["mf"]) == {"u1", "u2"}


def test_peers_without_the_extra_is_one_clear_line(monkeypatch):
    monkeypatch.setattr(peers.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(BenchError, match=r"--peers needs scikit-surprise.*pip install"):
        benchmark_cli.parse_args(["--peers"])


@pytest.mark.skipif(importlib.util.find_spec("surprise") is None, reason="needs the bench extra")
def test_peers_are_tuned_per_fold_with_the_same_budget(small_data, tmp_path):
    args = _job_args(tmp_path, "--archs", "mf", "--peers", "--tune-trials", "2")
    assert benchmark_cli.run(args, small_data) == 0
    results = pd.read_csv(tmp_path / "report" / "results.csv")
    assert {"svd", "svdpp", "knn_baseline"} <= set(results["model"])
    svd = results[results["model"] == "svd"]
    assert svd["rmse"].notna().all() and svd["ndcg_at_10"].notna().all()
    report = (tmp_path / "report" / "report.md").read_text()
    assert "nested-ml-100k-u1-svd" in report  # each fold's peer config names its study


@pytest.mark.skipif(importlib.util.find_spec("surprise") is None, reason="needs the bench extra")
@pytest.mark.parametrize("name", ["svd", "svdpp"])
def test_vectorised_peer_predictions_equal_surprise_own(name, small_split):
    split = small_split
    params = {"n_factors": 4, "n_epochs": 3, "lr_all": 0.01, "reg_all": 0.05}
    peer = peers.fit(name, params, split.train, (1.0, 5.0))
    users = np.r_[split.test["user"].to_numpy()[:200], 10**6]  # the last pair: an unknown user
    items = np.r_[split.test["item"].to_numpy()[:200], 0]
    ours = peer.predict(users, items)
    theirs = [peer.algo.predict(int(u), int(i)).est for u, i in zip(users, items, strict=True)]
    np.testing.assert_allclose(ours, theirs, atol=1e-9)


def test_one_fold_gives_no_paired_comparison_and_two_folds_do():
    rows = [
        {"model": model, "fold": fold, "mae": mae, "rmse": mae + 0.2, "ndcg_at_10": 0.1}
        for fold, shift in (("u1", 0.0), ("u2", 0.01))
        for model, mae in (("mf", 0.72 + shift), ("nn", 0.74 + shift), ("bias", 0.75))
    ]
    one = pd.DataFrame(rows[:3])
    assert benchmark.comparisons(one, ["mf", "nn"], None) == [
        "(none: a paired comparison needs at least two folds or seeds)"
    ]
    sentences = benchmark.comparisons(pd.DataFrame(rows), ["mf", "nn"], 0.25)
    assert len(sentences) == 3 * 3  # (mf, nn), (mf, bias), (nn, bias) x mae, rmse, ndcg
    assert all("Holm-adjusted p" in s for s in sentences)


def test_a_one_fold_summary_says_it_has_no_interval_instead_of_zeros_and_nans():
    results = pd.DataFrame([{"model": "mf", "fold": "u1", **{m: 0.5 for m in benchmark.REPORTED}}])
    row = benchmark.summary_table(results, None).iloc[0]
    text = " ".join(map(str, row.to_numpy()))
    assert "one fold: no interval" in text
    assert "nan" not in text and "± 0.0000" not in text


def test_the_score_grid_is_every_pair_scored_in_bounded_blocks():
    calls = []

    def predict(users, items):
        calls.append(len(users))
        return users * 1000.0 + items

    grid = predictors._score_grid(predict, 2000, 300)
    assert grid.shape == (2000, 300) and grid[1234, 56] == 1234056 and grid[1999, 299] == 1999299
    assert max(calls) <= predictors.GRID_PAIRS and sum(calls) == 2000 * 300
