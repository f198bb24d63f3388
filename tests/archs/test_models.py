from __future__ import annotations

import pytest

from bench.archs import arch_of, get_arch
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
