"""NeuMF, added through the architecture registry alone: model, space, sweep, benchmark."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import optuna

from bench.archs import ARCHS, get_arch
from bench.archs.neumf import NeuMFConfig
from bench.cli import benchmark as benchmark_cli
from bench.sweep.settings import SweepSettings
from bench.sweep.workers import run_study
from bench.training.train import train


def test_neumf_joins_a_gmf_product_and_an_mlp_tower():
    model = get_arch("neumf").build(NeuMFConfig(), 10, 20)
    gmf = model.get_layer("gmf")
    assert gmf.output.shape[-1] == 8
    assert [model.get_layer(f"mlp_{i}").units for i in (1, 2, 3)] == [32, 16, 8]
    assert model.get_layer("neumf").output.shape[-1] == 8 + 8
    tables = 11 * (8 + 32) + 21 * (8 + 32)
    tower = (64 * 32 + 32) + (32 * 16 + 16) + (16 * 8 + 8)
    assert model.count_params() == tables + tower + (16 + 1)


def test_neumf_space_round_trips_its_defaults():
    arch = ARCHS["neumf"]
    assert arch.from_params(arch.default_params()) == NeuMFConfig()
    sampled = arch.suggest(optuna.trial.FixedTrial({**arch.default_params(), "n_hidden": 1,
                                                    "units_0": 64}), 20)  # fmt: skip
    assert sampled.hidden_units == (64,)


def test_neumf_learns_and_reports_its_four_tables(small_split):
    result = train(replace(NeuMFConfig(), epochs=3, batch_size=32), small_split)
    assert set(result.embeddings) == {"user_gmf", "item_gmf", "user_mlp", "item_mlp"}
    assert result.embeddings["user_mlp"].shape == (small_split.n_users, 32)
    assert result.history["train_loss"][-1] < result.history["train_loss"][0]
    assert np.isfinite(result.test["test_mae"])


def test_neumf_takes_part_in_a_sweep_and_the_benchmark(small_data, small_split, tmp_path):
    settings = SweepSettings(
        arch="neumf",
        n_trials=2,
        timeout=None,
        max_epochs=2,
        storage=str(tmp_path / "journal.log"),
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
    )
    study = run_study(settings, small_split)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert study.trials[0].params == get_arch("neumf").default_params(max_epochs=2)
    configs = tmp_path / "configs.json"
    configs.write_text('{"neumf": {"epochs": 2}}')
    args = benchmark_cli.parse_args(
        ["--protocol", "pinned", "--configs", str(configs), "--archs", "neumf", "--folds", "u1,u2",
         "--tracking-uri", settings.tracking_uri, "--report-dir", str(tmp_path / "report")]
    )  # fmt: skip
    assert benchmark_cli.run(args, small_data) == 0
    assert "neumf" in (tmp_path / "report" / "results.csv").read_text()
