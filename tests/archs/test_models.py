from __future__ import annotations

from dataclasses import replace

import keras
import numpy as np
import pytest

from bench.archs import arch_of, get_arch
from bench.archs.layers import row_penalties
from bench.archs.mf import MFConfig, NNMFConfig
from bench.archs.nn import NNConfig

USER_EMBEDDING, ITEM_EMBEDDING = "user_embedding", "item_embedding"


def build_model(config, n_users, n_items):
    return arch_of(config).build(config, n_users, n_items)


ML100K_USERS, ML100K_ITEMS = 943, 1682


@pytest.mark.parametrize(
    ("config", "expected"), [(MFConfig(), 7881), (NNMFConfig(), 7881), (NNConfig(), 25675)]
)
def test_post_settings_give_the_posts_parameter_counts(config, expected):
    assert build_model(config, ML100K_USERS, ML100K_ITEMS).count_params() == expected


def test_tables_have_one_spare_row_as_in_the_post():
    model = build_model(NNConfig(), ML100K_USERS, ML100K_ITEMS)
    assert model.get_layer(USER_EMBEDDING).get_weights()[0].shape == (944, 5)
    assert model.get_layer(ITEM_EMBEDDING).get_weights()[0].shape == (1683, 8)


def test_bias_terms_add_one_weight_per_user_and_item_plus_one():
    plain = build_model(MFConfig(k=4), 10, 20).count_params()
    with_bias = build_model(MFConfig(k=4, use_bias=True), 10, 20).count_params()
    assert with_bias - plain == 11 + 21 + 1


def test_nn_tower_follows_the_config():
    config = NNConfig(hidden_units=(16, 8), hidden_activations=("relu", "tanh"), dropout=0.5)
    model = build_model(config, 10, 20)
    dense = [layer for layer in model.layers if layer.name.startswith("dense_")]
    assert [layer.units for layer in dense] == [16, 8]
    assert [layer.activation.__name__ for layer in dense] == ["relu", "tanh"]
    with pytest.raises(ValueError, match="same length"):
        NNConfig(hidden_units=(4,), hidden_activations=("relu", "relu"))


def test_bias_terms_have_their_own_l2_in_the_space_and_the_model():
    arch = get_arch("mf")
    config = MFConfig(k=2, use_bias=True, bias_l2=1e-3)
    assert arch.from_params(arch.to_params(config)) == config
    model = build_model(config, 10, 20)
    assert len(model.losses) == 2  # one L2 term per bias table, none on the factors (l2=0)
    assert arch.from_params(arch.to_params(MFConfig(use_bias=True))).bias_l2 == 0.0


@pytest.mark.parametrize(
    "config", [MFConfig(k=3, row_l2=0.2), NNConfig(row_l2=0.2)], ids=["mf", "nn"]
)
def test_row_l2_is_strength_times_the_batch_mean_of_the_looked_up_squared_norms(config):
    """SVD's regularisation: each rating shrinks the two rows it reads, not whole tables."""
    arch = arch_of(config)
    assert arch.from_params({**arch.to_params(config), "epochs": config.epochs}) == config
    model = build_model(config, 10, 20)
    users, items = np.array([[1], [1], [4]], "int32"), np.array([[2], [7], [7]], "int32")
    model([users, items], training=False)
    assert row_penalties(model) == []  # no training loss outside training
    model([users, items], training=True)
    expected = 0.0
    for layer, codes in ((USER_EMBEDDING, users), (ITEM_EMBEDDING, items)):
        rows = model.get_layer(layer).get_weights()[0][codes[:, 0]]
        expected += 0.2 * np.mean(np.sum(rows**2, axis=1))
    assert float(sum(row_penalties(model))) == pytest.approx(expected, rel=1e-5)
    assert build_model(replace(config, row_l2=0.0), 10, 20).count_params() == (
        model.count_params() - 2  # one non-trainable strength per table
    )


def test_a_model_with_row_l2_saves_and_loads_with_its_strength(tmp_path):
    model = build_model(MFConfig(k=2, row_l2=0.05), 10, 20)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert float(loaded.get_layer("user_embedding_row_l2").strength.numpy()) == pytest.approx(0.05)


def test_every_registry_entry_is_the_architecture_of_its_name():
    """The registry names entries before loading them: a name must match its entry."""
    from bench.archs import ARCHS, REGISTRY

    assert list(ARCHS) == list(REGISTRY)
    assert [arch.name for arch in ARCHS.values()] == list(REGISTRY)
