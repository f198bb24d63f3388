"""MovieLens-1M, -20M, -25M and csv:PATH data sets, on small generated files in the
published formats (never the real data, never the network: downloads come from 127.0.0.1)."""

from __future__ import annotations

import json
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from bench.cli import main
from bench.data import fetch, load_dataset, make_split, read_folder
from bench.data.fetch import DATA_DIR_ENV, MANIFEST
from bench.datasets import DATASETS, delimited, get_dataset
from bench.datasets.csvfile import parse_spec
from bench.errors import DataError
from bench.metrics import RatingScale, rating_metrics
from tests.data import test_fetch
from tests.support.synthetic_ml import movielens_ratings, write_ml1m, write_ml25m

serve, cache = test_fetch.serve, test_fetch.cache  # fixtures: 127.0.0.1 server, empty cache
ML1M, ML20M, ML25M = (get_dataset(name) for name in ("ml-1m", "ml-20m", "ml-25m"))
ML1M_HEAD = "1::2::3::978300760\n3::4::5::978300761\n"
ML25M_HEAD = "userId,movieId,rating,timestamp\n1,2,3.5,1147880044\n3,4,0.5,1147880045\n"


@pytest.fixture
def ml1m_folder(tmp_path: Path) -> Path:
    return write_ml1m(tmp_path / "ml-1m", movielens_ratings())


@pytest.fixture
def ml25m_folder(tmp_path: Path) -> Path:
    return write_ml25m(tmp_path / "ml-25m", movielens_ratings(step=0.5))


def test_ml1m_folder_parses_ratings_and_latin1_titles(ml1m_folder):
    data = read_folder(ml1m_folder, ML1M)
    expected = movielens_ratings()
    assert len(data.ratings) == len(expected)
    assert data.ratings["rating"].tolist() == expected["rating"].astype(int).tolist()
    assert data.ratings.dtypes[["user_id", "item_id", "rating", "timestamp"]].tolist() == [
        np.int32, np.int32, np.int8, np.int64]  # fmt: skip
    assert data.movies.loc[1, "title"] == "Café Society (1995)"
    assert data.movies.loc[3, "genres"] == "Action|Comedy"
    assert data.dataset.splits == ("seed",) and ML1M.benchmark_folds == ()


@pytest.mark.parametrize("dataset", [ML20M, ML25M], ids=lambda d: d.name)
def test_ml25m_format_parses_half_stars_and_quoted_titles(tmp_path, dataset):
    expected = movielens_ratings(step=0.5)
    data = read_folder(write_ml25m(tmp_path / dataset.folder, expected), dataset)
    assert data.ratings["rating"].dtype == np.float32
    np.testing.assert_array_equal(data.ratings["rating"], expected["rating"])
    assert (data.ratings["rating"] % 1 == 0.5).any()
    assert data.ratings["timestamp"].tolist() == expected["timestamp"].tolist()
    assert data.movies.loc[2, "title"] == "American President, The (1995)"
    assert data.movies.loc[1, "title"] == "Café Society (1995)"
    assert dataset.scale == RatingScale(0.5, 5.0, 0.5)


def test_registry_declares_the_published_archives():
    assert list(DATASETS) == ["ml-100k", "ml-1m", "ml-20m", "ml-25m"]
    assert (ML1M.archive_size, ML1M.n_ratings) == (5_917_549, 1_000_209)
    assert (ML20M.archive_size, ML20M.n_ratings) == (198_702_078, 20_000_263)
    assert (ML25M.archive_size, ML25M.n_ratings) == (261_978_986, 25_000_095)
    for dataset in (ML1M, ML20M, ML25M):
        assert dataset.url == f"https://files.grouplens.org/datasets/movielens/{dataset.folder}.zip"
        assert len(dataset.archive_sha256) == 64


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("5::6::3", "expected 4 '::'-separated fields, found 3"),
        ("5::6::3::978300760::9", "expected 4 '::'-separated fields, found 5"),
        ("5:6::3::978300760", "expected 4 '::'-separated fields, found 3"),
        ("", "expected 4 '::'-separated fields, found 1"),
        ("5::six::3::978300760", r"field 2 \(item_id\) is 'six', not an integer"),
        ("5::6::::978300760", r"field 3 \(rating\) is '', not a number"),
        ("5::6::3::soon", r"field 4 \(timestamp\) is 'soon', not an integer"),
        ("5::6::7::978300760", "rating 7 is outside 1..5"),
        ("5::6::3.5::978300760", "rating 3.5 is not on the rating grid 1..5 step 1"),
        ("0::6::3::978300760", "user_id 0 is not a positive 32-bit id"),
        ("5::99999999999::3::978300760", "item_id 99999999999 is not a positive 32-bit id"),
        ("1::2::4::978300762", r"duplicate rating for \(user 1, item 2\), first on line 1"),
    ],
)
def test_bad_ml1m_lines_name_file_line_and_problem(tmp_path, line, problem):
    path = tmp_path / "ratings.dat"
    path.write_text(f"{ML1M_HEAD}{line}\n", encoding="latin-1")
    with pytest.raises(DataError, match=rf"ratings\.dat, line 3: {problem}"):
        ML1M.read_ratings(path)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("5,6,3.25,1147880046", "rating 3.25 is not on the rating grid 0.5..5 step 0.5"),
        ("5,6,5.5,1147880046", "rating 5.5 is outside 0.5..5"),
        ("5,6,0.0,1147880046", "rating 0.0 is outside 0.5..5"),
        ("5,6,inf,1147880046", r"field 3 \(rating\) is 'inf', not a number"),
        ("5,6,NA,1147880046", r"field 3 \(rating\) is 'NA', not a number"),
        ("5,6.5,3,1147880046", r"field 2 \(movieId\) is '6.5', not an integer"),
        ("5,6,3", "expected 4 ','-separated fields, found 3"),
        ("5,6,3,1147880046,x", "expected 4 ','-separated fields, found 5"),
        ("3,4,4.5,1147880046", r"duplicate rating for \(user 3, item 4\), first on line 3"),
    ],
)
def test_bad_ml25m_lines_name_file_line_and_problem(tmp_path, line, problem):
    path = tmp_path / "ratings.csv"
    path.write_text(f"{ML25M_HEAD}{line}\n")
    with pytest.raises(DataError, match=rf"ratings\.csv, line 4: {problem}"):
        ML25M.read_ratings(path)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", r"ratings\.csv holds no ratings \(the file is empty\)"),
        ("userId,movieId,rating,timestamp\n", r"ratings\.csv holds no ratings"),
        (
            "user,movieId,rating,timestamp\n1,2,3,4\n",
            "line 1: the header .* has no column 'userId'",
        ),
    ],
)
def test_empty_file_or_wrong_header_is_an_error(tmp_path, text, problem):
    path = tmp_path / "ratings.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=problem):
        ML25M.read_ratings(path)


def test_bad_line_far_into_a_file_is_found_chunk_by_chunk(tmp_path, monkeypatch):
    monkeypatch.setattr(delimited, "FALLBACK_CHUNK", 7)  # the slow path reads 7 rows at a time
    lines = [f"{u}::1::3::978300760" for u in range(1, 40)]
    lines[30] = "31::1::x::978300760"
    path = tmp_path / "ratings.dat"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"line 31: field 3 \(rating\) is 'x', not a number"):
        ML1M.read_ratings(path)


def test_fast_reader_agrees_with_the_python_engine(ml1m_folder):
    slow = pd.read_csv(
        ml1m_folder / "ratings.dat", sep="::", engine="python", header=None,
        names=["user_id", "item_id", "rating", "timestamp"],
    )  # fmt: skip
    fast = ML1M.read_ratings(ml1m_folder / "ratings.dat")
    pd.testing.assert_frame_equal(fast, slow, check_dtype=False)


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("movies.dat", "1::Toy Story (1995)\n", r"movies\.dat, line 1: expected 3 '::'"),
        ("movies.dat", "x::Toy Story (1995)::Comedy\n", r"line 1: movie id 'x' is not an int"),
        ("movies.csv", "movieId,title\n1,Toy Story\n", "line 1: header is movieId,title"),
        ("movies.csv", "movieId,title,genres\n1,A,B\nx,C,D\n", "line 3: movie id 'x' is not"),
    ],
)
def test_bad_movie_tables_name_the_line(ml1m_folder, ml25m_folder, name, text, problem):
    folder, dataset = (ml1m_folder, ML1M) if name == "movies.dat" else (ml25m_folder, ML25M)
    (folder / name).write_text(text)
    with pytest.raises(DataError, match=problem):
        read_folder(folder, dataset)


@pytest.mark.parametrize(("dataset", "step"), [(ML1M, 1.0), (ML25M, 0.5)], ids=["ml-1m", "ml-25m"])
def test_seed_split_of_each_format(tmp_path, dataset, step):
    write = write_ml1m if dataset is ML1M else write_ml25m
    data = read_folder(write(tmp_path / dataset.folder, movielens_ratings(step=step)), dataset)
    split = make_split(data, "seed", seed=0, valid_fraction=0.1)
    assert len(split.train) + len(split.valid) + len(split.test) == len(movielens_ratings())
    assert split.scale == dataset.scale and split.dataset == dataset.name
    on_grid = split.test["rating"].to_numpy() / step
    np.testing.assert_array_equal(on_grid, np.round(on_grid))
    with pytest.raises(DataError, match="unknown split 'u1' for"):
        make_split(data, "u1")


def test_half_star_predictions_round_to_the_half_star_grid():
    y_true = np.array([3.5, 4.0, 0.5, 5.0])
    y_pred = np.array([3.3, 4.2, 0.2, 5.6])  # snapped: 3.5, 4.0, 0.5, 5.0
    half = rating_metrics(y_true, y_pred, "test", ML25M.scale)
    assert half["test_mae_rounded"] == 0.0 and half["test_rmse_rounded"] == 0.0
    whole = rating_metrics(y_true, y_pred, "test", ML1M.scale)  # 3, 4, 1, 5
    assert whole["test_mae_rounded"] == pytest.approx((0.5 + 0.5) / 4)


# --- csv:PATH -------------------------------------------------------------------------------


def test_csv_spec_with_options(tmp_path):
    path = tmp_path / "stars.csv"
    path.write_text("uid;iid;stars;comment\n1;2;10;great\n3;2;7;ok\n1;5;1;bad\n")
    dataset = get_dataset(f"csv:{path}?sep=;&user=uid&item=iid&rating=stars&scale=1:10:1&header=1")
    assert (dataset.folder, dataset.ratings_file) == (str(tmp_path), "stars.csv")
    assert dataset.scale == RatingScale(1, 10, 1) and dataset.splits == ("seed",)
    ratings = dataset.read_ratings(path)
    assert ratings.values.tolist() == [[1, 2, 10, 0], [3, 2, 7, 0], [1, 5, 1, 0]]


def test_csv_defaults_and_positions(tmp_path):
    (tmp_path / "r.csv").write_text("user,item,rating,timestamp\n1,2,4,99\n")
    ratings = get_dataset(f"csv:{tmp_path}/r.csv").read_ratings(tmp_path / "r.csv")
    assert ratings.values.tolist() == [[1, 2, 4, 99]]
    (tmp_path / "r.tsv").write_text("2\t1\t3.5\n4\t3\t0.5\n")
    spec = f"csv:{tmp_path}/r.tsv?sep=tab&header=0&user=2&item=1&rating=3&scale=0.5:5:0.5"
    ratings = get_dataset(spec).read_ratings(tmp_path / "r.tsv")
    assert ratings[["user_id", "item_id", "rating"]].values.tolist() == [[1, 2, 3.5], [3, 4, 0.5]]
    assert parse_spec("csv:x.csv").scale == RatingScale(1, 5, 1)


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("?colour=red", "unknown option 'colour'"),
        ("?sep=;&sep=,", "option 'sep' given twice"),
        ("?scale=1:5", "scale=1:5 is not LOW:HIGH:STEP"),
        ("?scale=1:5:0.3", "HIGH - LOW a multiple of STEP"),
        ("?header=maybe", "header='maybe' is not 1 or 0"),
        ("?header=0&user=uid", "user='uid' is not a 1-based field position"),
        ("?user=item", "two roles name the same column"),
    ],
)
def test_bad_csv_spec_says_what_to_write(query, problem):
    with pytest.raises(DataError, match=rf"{problem}.*; write csv:PATH\[\?sep=,&header=1&user="):
        get_dataset(f"csv:/data/r.csv{query}")


def test_csv_file_is_read_in_place_even_with_a_data_dir_variable(tmp_path, cache, monkeypatch):
    path = tmp_path / "own" / "r.csv"
    path.parent.mkdir()
    path.write_text("user,item,rating\n1,2,4\n2,2,5\n")
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))  # a default data set's folder
    data = load_dataset(f"csv:{path}")
    assert data.root == path.parent and len(data.ratings) == 2
    assert path.is_file() and not cache.exists()  # read where it is, never cached or removed
    with pytest.raises(DataError, match=r"csv:.*gone\.csv: no file .*gone\.csv"):
        load_dataset(f"csv:{tmp_path}/gone.csv")


def test_unknown_name_mentions_csv():
    with pytest.raises(DataError, match="known: ml-100k, ml-1m, ml-20m, ml-25m, or csv:PATH"):
        get_dataset("ml-10m")


# --- download, cache, listing -------------------------------------------------------------


def _zip_folder(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.iterdir()):
            zf.write(path, f"ml-1m/{path.name}")
    return archive


def test_ml1m_download_verifies_writes_manifest_and_caches(ml1m_folder, serve, cache):
    root, url = serve
    archive = _zip_folder(ml1m_folder, root / "ml-1m.zip")
    ours = replace(
        ML1M, archive_size=archive.stat().st_size, archive_sha256=fetch.sha256_of(archive)
    )
    folder = fetch.locate(ours, url=url("ml-1m.zip"))
    assert folder == cache / "ml-1m" and [p.name for p in cache.iterdir()] == ["ml-1m"]
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["ratings.dat"] == fetch.sha256_of(ml1m_folder / "ratings.dat")
    assert set(manifest) == {"ratings.dat", "movies.dat", "users.dat"}
    archive.unlink()  # a second lookup uses the cache, not the network
    assert fetch.locate(ours, url=url("ml-1m.zip")) == folder
    assert len(load_dataset("ml-1m").ratings) == len(movielens_ratings())


def test_ml1m_wrong_checksum_is_refused(ml1m_folder, serve, cache):
    root, url = serve
    archive = _zip_folder(ml1m_folder, root / "ml-1m.zip")
    wrong = replace(ML1M, archive_size=archive.stat().st_size)  # the official SHA-256
    with pytest.raises(DataError, match="fails its SHA-256 check"):
        fetch.locate(wrong, url=url("ml-1m.zip"))
    assert list(cache.iterdir()) == []


def test_data_list_shows_all_kinds_with_present_and_verified(ml1m_folder, serve, cache, capsys):
    root, url = serve
    archive = _zip_folder(ml1m_folder, root / "ml-1m.zip")
    ours = replace(
        ML1M, archive_size=archive.stat().st_size, archive_sha256=fetch.sha256_of(archive)
    )
    fetch.locate(ours, url=url("ml-1m.zip"))
    (cache / "ml-25m").mkdir()  # unpacked by hand: present, not verified
    write_ml25m(cache / "ml-25m", movielens_ratings(step=0.5))
    assert main(["data", "list"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines() if line}
    assert rows["data"][:5] == ["data", "set", "archive", "present", "verified"]
    assert rows["ml-1m"][3:5] == ["yes", "yes"]
    assert rows["ml-25m"][3:5] == ["yes", "no"]
    assert rows["ml-100k"][3:5] == rows["ml-20m"][3:5] == ["no", "no"]
    assert rows["csv:PATH"][1:4] == ["-", "-", "-"]


# --- end to end: a sweep on generated MovieLens-format folders -----------------------------


def _sweep(dataset: str, folder: Path, tmp_path: Path) -> list:
    argv = [
        "sweep", "--dataset", dataset, "--data-dir", str(folder), "--arch", "mf",
        "--trials", "2", "--max-epochs", "2", "--timeout", "0",
        "--tracking-uri", f"sqlite:///{tmp_path}/m.db", "--storage", f"{tmp_path}/j.log",
    ]  # fmt: skip
    assert main(argv) == 0
    client = MlflowClient(f"sqlite:///{tmp_path}/m.db")
    experiment = client.get_experiment_by_name(f"{dataset}-mf-seed-e2")
    runs = client.search_runs([experiment.experiment_id])
    return [run for run in runs if "mlflow.parentRunId" in run.data.tags]


def test_sweep_runs_on_an_ml1m_folder(ml1m_folder, tmp_path):
    trials = _sweep("ml-1m", ml1m_folder, tmp_path)
    assert len(trials) == 2
    assert {run.data.tags["dataset"] for run in trials} == {"ml-1m"}


def test_ml25m_sweep_rounds_predictions_to_half_stars(ml25m_folder, tmp_path, monkeypatch):
    snapped = []
    snap = RatingScale.snap

    def spy(self: RatingScale, predictions: np.ndarray) -> np.ndarray:
        snapped.append(snap(self, predictions))
        return snapped[-1]

    monkeypatch.setattr(RatingScale, "snap", spy)
    trials = _sweep("ml-25m", ml25m_folder, tmp_path)
    assert {run.data.tags["dataset"] for run in trials} == {"ml-25m"}
    values = np.concatenate(snapped)
    np.testing.assert_array_equal(values * 2, np.round(values * 2))  # on the 0.5 grid ...
    assert (values % 1 == 0.5).any()  # ... and not only whole stars
    client = MlflowClient(f"sqlite:///{tmp_path}/m.db")
    parent = client.get_run(trials[0].data.tags["mlflow.parentRunId"])
    n_test = int(parent.data.params["n_test"])  # the split's provenance, on the study's run
    for run in trials:  # a mean of |half-star differences|: n_test * MAE is a multiple of 0.5
        total = run.data.metrics["test_mae_rounded"] * n_test
        assert total * 2 == pytest.approx(round(total * 2), abs=1e-6)
