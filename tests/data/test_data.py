from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.data import IdMap, make_split, read_folder
from bench.datasets.ml100k import read_ratings
from bench.errors import DataError
from tests.support.synthetic import synthetic_ratings, write_folder


def test_id_map_round_trip_and_unknown_ids():
    raw = np.array([40, 7, 7, 19, 300])
    ids = IdMap.fit(raw)
    assert len(ids) == 4
    codes = ids.encode(raw)
    assert codes.tolist() == [2, 0, 0, 1, 3]
    assert ids.decode(codes).tolist() == raw.tolist()
    with pytest.raises(DataError, match=r"unknown ids \[8\]"):
        ids.encode(np.array([7, 8]))


def test_folder_encodes_contiguously_over_all_ratings(small_data):
    ratings = small_data.ratings
    assert sorted(ratings["user"].unique()) == list(range(small_data.n_users))
    assert sorted(ratings["item"].unique()) == list(range(small_data.n_items))
    assert (small_data.users.decode(ratings["user"]) == ratings["user_id"]).all()
    assert (small_data.items.decode(ratings["item"]) == ratings["item_id"]).all()
    assert ratings.dtypes["rating"] == np.int8 and ratings.dtypes["user_id"] == np.int32
    first = ratings.iloc[0]
    assert small_data.titles(np.array([first["item"]])) == [
        small_data.movies.loc[first["item_id"], "title"]
    ]


def test_movies_read_latin1_titles_and_genre_flags(tmp_path):
    folder = write_folder(tmp_path / "m", synthetic_ratings())
    lines = (folder / "u.item").read_text(encoding="latin-1").splitlines()
    fields = lines[0].split("|")
    fields[1] = "Café Crème (1996)"
    lines[0] = "|".join(fields)
    (folder / "u.item").write_text("\n".join(lines) + "\n", encoding="latin-1")
    movies = read_folder(folder).movies
    item_id = int(fields[0])
    assert movies.loc[item_id, "title"] == "Café Crème (1996)"
    assert movies.loc[item_id, f"g{item_id % 19}"]
    assert movies.loc[item_id, "release_date"] == pd.Timestamp("1995-01-01")


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("5\t6\t3", "expected 4 tab-separated columns, found 3"),
        ("5\t6\t3\t1\t9", "expected 4 tab-separated columns, found 5"),
        ("5\tsix\t3\t880000000", "field 2 is 'six', not an integer"),
        ("5\t6\tnan\t880000000", "field 3 is 'nan', not an integer"),
        ("5\t6\t\t880000000", "field 3 is '', not an integer"),
        ("5\t6\t7\t880000000", "rating 7 is outside 1..5"),
        ("5\t6\t0\t880000000", "rating 0 is outside 1..5"),
        ("-5\t6\t3\t880000000", "ids must be positive"),
        ("1\t2\t4\t880000001", "duplicate rating for \\(user 1, item 2\\)"),
    ],
)
def test_malformed_rating_lines_name_file_line_and_problem(tmp_path: Path, line, problem):
    path = tmp_path / "u.data"
    path.write_text(f"1\t2\t3\t880000000\n3\t4\t5\t880000000\n{line}\n")
    with pytest.raises(DataError, match=rf"u\.data, line 3: {problem}"):
        read_ratings(path)


def test_empty_rating_file_is_an_error(tmp_path):
    path = tmp_path / "u.data"
    path.write_text("")
    with pytest.raises(DataError, match="holds no ratings"):
        read_ratings(path)


def test_malformed_movie_line_names_file_and_line(small_folder):
    lines = (small_folder / "u.item").read_text(encoding="latin-1").splitlines()
    lines[1] = "|".join(lines[1].split("|")[:10])
    (small_folder / "u.item").write_text("\n".join(lines) + "\n", encoding="latin-1")
    with pytest.raises(DataError, match=r"u\.item, line 2: expected 24 '\|'-separated columns"):
        read_folder(small_folder)


def _pairs(frame: pd.DataFrame) -> set[tuple[int, int]]:
    return set(zip(frame["user"], frame["item"], strict=True))


def test_seed_split_is_disjoint_complete_and_seeded(small_data):
    split = make_split(small_data, "seed", seed=3, valid_fraction=0.1)
    train, valid, test = map(_pairs, (split.train, split.valid, split.test))
    assert not (train & valid) and not (train & test) and not (valid & test)
    assert train | valid | test == _pairs(small_data.ratings)
    n = len(small_data.ratings)
    assert len(split.test) == pytest.approx(0.2 * n, abs=1)
    assert len(split.valid) == pytest.approx(0.1 * 0.8 * n, abs=1)
    again = make_split(small_data, "seed", seed=3, valid_fraction=0.1)
    other = make_split(small_data, "seed", seed=4, valid_fraction=0.1)
    assert split.test.equals(again.test) and split.valid.equals(again.valid)
    assert not split.test.equals(other.test)


def test_canonical_split_carves_validation_from_base_only(small_data, small_folder):
    split = make_split(small_data, "u1", seed=0, valid_fraction=0.25)
    base = small_data.read_split_file("u1.base")
    test = small_data.read_split_file("u1.test")
    assert _pairs(split.train) | _pairs(split.valid) == _pairs(base)
    assert not _pairs(split.train) & _pairs(split.valid)
    assert _pairs(split.test) == _pairs(test)
    provenance = split.provenance
    assert provenance["split"] == "u1" and provenance["n_test"] == len(test)
    assert provenance["data_sha256"] == small_data.checksum != ""
    assert len(provenance["sha256_u1.base"]) == 64


def test_zero_validation_fraction_keeps_all_training_rows(small_data):
    split = make_split(small_data, "seed", valid_fraction=0.0)
    assert len(split.valid) == 0
    assert len(split.train) + len(split.test) == len(small_data.ratings)


def test_bad_split_arguments_are_clear_errors(small_data):
    with pytest.raises(DataError, match="unknown split .u9. for ml-100k"):
        make_split(small_data, "u9")
    with pytest.raises(DataError, match="valid fraction 1.5"):
        make_split(small_data, "seed", valid_fraction=1.5)
