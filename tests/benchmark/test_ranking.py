"""Ranking metrics on hand-built cases: values, candidate protocols, skips, tie-breaking."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.benchmark.baselines import GlobalMean, Popularity
from bench.metrics import RatingScale
from bench.metrics.ranking import ranking_metrics, tiebreak_ranks, top_k_unseen


def _frame(rows: list[tuple[int, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user", "item", "rating"])


def test_precision_recall_ndcg_by_hand():
    # 1 user, 6 items; item 0 was rated in training; test: items 1 (5 stars), 2 (2), 3 (4).
    train, test = _frame([(0, 0, 5)]), _frame([(0, 1, 5), (0, 2, 2), (0, 3, 4)])
    scores = np.array([9.0, 3.0, 5.0, 1.0, 4.0, 0.0])  # unseen order: 2, 4, 1, 3, 5
    metrics = ranking_metrics(lambda u: scores, train, test, n_items=6, k=3)
    # top 3 = [2, 4, 1]; relevant = {1, 3}; one hit, at rank 3
    assert metrics["precision_at_3"] == pytest.approx(1 / 3)
    assert metrics["recall_at_3"] == pytest.approx(1 / 2)
    assert metrics["ndcg_at_3"] == pytest.approx((1 / np.log2(4)) / (1 + 1 / np.log2(3)))
    seen = np.array([True, False, False, False, False, False])
    assert top_k_unseen(scores, seen, 2).tolist() == [2, 4]


def test_metrics_average_over_users_with_two_hits_in_one_list():
    train = _frame([(0, 0, 5), (1, 0, 3)])
    test = _frame([(0, 1, 5), (0, 3, 4), (1, 5, 4)])
    scores = np.array([9.0, 6.0, 5.0, 4.0, 1.0, 0.0])
    metrics = ranking_metrics(lambda u: scores, train, test, n_items=6, k=3)
    # both users get [1, 2, 3]: user 0 hits ranks 1 and 3 of 2 relevant, user 1 nothing
    ndcg_0 = (1 + 1 / np.log2(4)) / (1 + 1 / np.log2(3))
    assert metrics["precision_at_3"] == pytest.approx((2 / 3 + 0) / 2)
    assert metrics["recall_at_3"] == pytest.approx((1 + 0) / 2)
    assert metrics["ndcg_at_3"] == pytest.approx(ndcg_0 / 2)


def test_candidate_protocols_unrated_and_known():
    # items 4 and 5 have no training rating; user 0 rated item 0
    train = _frame([(0, 0, 5), (1, 1, 4), (1, 2, 3), (1, 3, 2)])
    test = _frame([(0, 5, 5), (0, 2, 4)])
    scores = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    unrated = ranking_metrics(lambda u: scores, train, test, n_items=6, k=2)
    known = ranking_metrics(lambda u: scores, train, test, n_items=6, k=2, candidates="known")
    assert unrated["recall_at_2"] == pytest.approx(1 / 2)  # list [5, 4]: hit item 5
    assert known["recall_at_2"] == pytest.approx(1 / 2)  # list [3, 2]: hit item 2
    assert unrated["ndcg_at_2"] == pytest.approx(1 / (1 + 1 / np.log2(3)))
    assert known["ndcg_at_2"] == pytest.approx((1 / np.log2(3)) / (1 + 1 / np.log2(3)))
    assert unrated["rec_median_train_count"] == 0.0  # items 5, 4: never rated
    assert known["rec_median_train_count"] == 1.0  # items 3, 2: one rating each
    with pytest.raises(ValueError, match="unknown candidates"):
        ranking_metrics(lambda u: scores, train, test, n_items=6, candidates="all")


def test_users_without_a_relevant_test_item_are_skipped_and_counted():
    train = _frame([(0, 0, 5), (1, 0, 4), (2, 0, 4), (3, 0, 4)])
    test = _frame([(0, 1, 4), (1, 1, 2), (1, 2, 3), (2, 2, 1)])  # user 3: not in test
    scores = np.array([3.0, 2.0, 1.0])
    metrics = ranking_metrics(lambda u: scores, train, test, n_items=3, k=1)
    assert (metrics["n_users_ranked"], metrics["n_users_skipped"]) == (1, 2)
    assert metrics["precision_at_1"] == 1.0  # only user 0 counts


def test_rec_median_train_count_over_all_lists():
    train = _frame([(0, 0, 4), (1, 0, 4), (2, 0, 4), (1, 1, 4), (2, 1, 4), (2, 2, 4)])
    test = _frame([(0, 3, 5), (1, 3, 5)])
    scores = np.array([4.0, 3.0, 2.0, 1.0])
    metrics = ranking_metrics(lambda u: scores, train, test, n_items=4, k=2)
    # user 0 gets [1, 2] (counts 2, 1); user 1 gets [2, 3] (counts 1, 0): median of 2,1,1,0
    assert metrics["rec_median_train_count"] == 1.0


def test_equal_scores_follow_the_tiebreak_whatever_the_input_order():
    scores, seen = np.ones(4), np.zeros(4, dtype=bool)
    tiebreak = np.array([3, 0, 2, 1])
    first = top_k_unseen(scores, seen, 4, tiebreak)
    assert first.tolist() == [1, 3, 2, 0]
    assert top_k_unseen(scores, seen, 4, tiebreak).tolist() == first.tolist()
    reversed_ = top_k_unseen(scores[::-1], seen[::-1], 4, tiebreak[::-1])
    assert (3 - reversed_).tolist() == first.tolist()  # same items once codes map back
    assert top_k_unseen(np.array([1.0, 2.0, 2.0]), seen[:3], 2).tolist() == [1, 2]  # by code


def test_tiebreak_ranks_are_the_seeded_permutation():
    ranks = tiebreak_ranks(50, seed=3)
    assert np.argsort(ranks).tolist() == np.random.default_rng(3).permutation(50).tolist()
    assert not np.array_equal(tiebreak_ranks(50, seed=0), ranks)


def test_a_constant_predictor_gets_the_seeded_random_list():
    n_items, k = 50, 10
    train = _frame([(0, i, 4) for i in range(0, n_items, 3)])
    model = GlobalMean().fit(train)
    scores = model.predict(np.zeros(n_items, dtype=int), np.arange(n_items))
    seen = np.zeros(n_items, dtype=bool)
    seen[train["item"]] = True
    permutation = np.random.default_rng(0).permutation(n_items)
    expected = [int(i) for i in permutation if not seen[i]][:k]
    assert top_k_unseen(scores, seen, k, tiebreak_ranks(n_items)).tolist() == expected
    assert expected != sorted(expected)  # random, not in item-code order


def test_ranking_metrics_do_not_depend_on_row_order_or_repetition():
    rng = np.random.default_rng(1)
    rows = [
        (u, i, int(rng.integers(1, 6))) for u in range(8) for i in range(30) if rng.random() < 0.4
    ]
    frame = _frame(rows)
    train, test = frame.iloc[::2], frame.iloc[1::2]
    pop = Popularity().fit(train)  # many equal counts: ties decide the lists

    def metrics(tr: pd.DataFrame, te: pd.DataFrame) -> dict[str, float]:
        return ranking_metrics(lambda u: pop.scores(30), tr, te, n_items=30, k=5)

    first = metrics(train, test)
    assert metrics(train, test) == first
    assert (
        metrics(train.sample(frac=1, random_state=2), test.sample(frac=1, random_state=3)) == first
    )


@pytest.mark.parametrize(
    ("scale", "relevant_items"),
    [(RatingScale(1, 5, 1), {1}), (RatingScale(0.5, 5, 0.5), {1}), (RatingScale(1, 10, 1), set())],
)
def test_relevance_is_the_top_quarter_of_the_data_sets_scale(scale, relevant_items):
    # test ratings 4.0 (item 1) and 3.5 (item 2): relevant on 1..5 and 0.5..5, not on 1..10
    train = _frame([(0, 0, 5)])
    test = pd.DataFrame({"user": [0, 0], "item": [1, 2], "rating": [4.0, 3.5]})
    scores = np.array([0.0, 2.0, 1.0])
    metrics = ranking_metrics(lambda u: scores, train, test, n_items=3, k=1, scale=scale)
    assert metrics["n_users_ranked"] == len(relevant_items)
    if relevant_items:
        assert metrics["precision_at_1"] == 1.0
