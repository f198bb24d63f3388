"""MovieLens-25M (GroupLens, 2019): 25,000,095 ratings 0.5..5 in half stars of 59,047 movies
(62,423 listed) by 162,541 users.

Files: `ratings.csv` (header `userId,movieId,rating,timestamp`), `movies.csv` (utf-8,
header `movieId,title,genres`; titles with commas are quoted), plus tags, links and the
genome. ML-20M has the same formats and reuses this module's readers. No canonical folds.
A generated 25,000,095-row ratings.csv parses with every check in about 8 s at 1.4 GB peak
RSS (the ratings take 477 MiB) on two shared cores.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pandas as pd

from bench.datasets.base import Dataset
from bench.datasets.delimited import read_delimited
from bench.errors import DataError
from bench.metrics import RatingScale

SCALE = RatingScale(0.5, 5.0, 0.5)
RATING_HEADER = {"user_id": "userId", "item_id": "movieId", "rating": "rating",
                 "timestamp": "timestamp"}  # fmt: skip
MOVIE_HEADER = ["movieId", "title", "genres"]

read_ratings = partial(
    read_delimited, sep=",", columns=RATING_HEADER, scale=SCALE, header=True, encoding="utf-8"
)


def read_movies(path: Path) -> pd.DataFrame:
    """movies.csv: title and `|`-separated genres by movie id."""
    try:
        movies = pd.read_csv(path, encoding="utf-8", dtype=str, keep_default_na=False)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot parse ({exc})") from None
    if list(movies.columns) != MOVIE_HEADER:
        raise DataError(
            f"{path}, line 1: header is {','.join(movies.columns)}, expected "
            f"{','.join(MOVIE_HEADER)}"
        )
    ids = pd.to_numeric(movies["movieId"], errors="coerce")
    bad = ids.isna() | (ids < 1) | (ids != ids.round())
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise DataError(
            f"{path}, line {row + 2}: movie id {movies['movieId'].iloc[row]!r} is not a "
            f"positive integer"
        )
    if ids.duplicated().any():
        raise DataError(f"{path}: movie ids are not unique")
    movies = movies.assign(item_id=ids.astype("int32")).set_index("item_id")
    return movies[["title", "genres"]].astype("string")


def read_items(folder: Path) -> pd.DataFrame | None:
    return read_movies(folder / "movies.csv") if (folder / "movies.csv").is_file() else None


ML25M = Dataset(
    name="ml-25m",
    description="MovieLens 25M: 25,000,095 ratings (0.5-5, half stars) of 59,047 movies by "
    "162,541 users",
    folder="ml-25m",
    ratings_file="ratings.csv",
    read_ratings=read_ratings,
    read_items=read_items,
    scale=SCALE,
    url="https://files.grouplens.org/datasets/movielens/ml-25m.zip",
    archive_size=261_978_986,
    archive_sha256="8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa",
    n_ratings=25_000_095,
)
