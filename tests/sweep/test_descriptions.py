"""The words on MLflow's pages say what the code does: a trial's objective is the value of
the epoch it kept."""

from __future__ import annotations

from types import SimpleNamespace

from bench.sweep.descriptions import champion_description, trial_description
from bench.sweep.objective import trial_value

VALUES = [0.95, 0.80, 0.85, 0.90]  # validation MAE per epoch; early stopping keeps epoch 2


def test_an_early_stopped_trial_says_the_value_of_the_epoch_it_kept():
    kept = SimpleNamespace(history={"val_mae": VALUES}, best_epoch=1)
    assert trial_value(kept, "val_mae") == 0.80  # what Optuna is told
    text = trial_description(3, "mf-seed", "COMPLETE", "val_mae", VALUES, 10, kept=1)
    assert (
        "Objective `val_mae` = 0.8000: the validation metric at epoch 2, the best of the 4 "
        "trained (of 10), kept by early stopping." in text
    )
    assert "after the last" not in text


def test_a_trial_without_early_stopping_says_its_last_epoch():
    last = SimpleNamespace(history={"val_mae": VALUES}, best_epoch=None)
    assert trial_value(last, "val_mae") == 0.90
    text = trial_description(3, "mf-seed", "COMPLETE", "val_mae", VALUES, 4)
    assert (
        "Objective `val_mae` = 0.9000: the validation metric after the last epoch (4 of 4)" in text
    )


def test_the_champion_description_names_the_kept_epoch():
    text = champion_description("mf-seed", 3, "val_mae", 0.8)
    assert "at the epoch the trial kept: its best under early stopping" in text
