"""Small generated data in the published MovieLens-1M and -20M/-25M formats.

ML-1M: `ratings.dat` (`UserID::MovieID::Rating::Timestamp`), `movies.dat` (latin-1,
`MovieID::Title::Genres`), `users.dat`. ML-20M/-25M: `ratings.csv` and `movies.csv` (utf-8)
with header rows, ratings written as `3.5` / `4.0`, titles with commas quoted.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

GENRES = ["Action", "Comedy", "Drama", "Children's", "Film-Noir", "Sci-Fi"]
TITLES = {1: "Café Society (1995)", 2: "American President, The (1995)", 3: "Misérables, Les"}


def movielens_ratings(
    n_users: int = 50, n_items: int = 60, density: float = 0.3, step: float = 1.0, seed: int = 0
) -> pd.DataFrame:
    """Ratings on the grid step..5 (step 1: whole stars 1..5, 0.5: half stars 0.5..5) from a
    rank-2 model plus noise; 1-based ids, each (user, item) pair once."""
    rng = np.random.default_rng(seed)
    users, items = np.nonzero(rng.random((n_users, n_items)) < density)
    taste = rng.normal(size=(n_users, 2)) @ rng.normal(size=(2, n_items))
    scores = 3 + taste[users, items] + rng.normal(scale=0.5, size=len(users))
    order = rng.permutation(len(users))  # files are not sorted by user
    return pd.DataFrame(
        {
            "user_id": users[order] + 1,
            "item_id": items[order] + 1,
            "rating": np.clip(np.round(scores[order] / step) * step, step, 5.0),
            "timestamp": 956703932 + rng.integers(0, 10**8, len(users)),
        }
    )


def title(item: int) -> str:
    return TITLES.get(item, f"Film {item} ({1990 + item % 10})")


def genres(item: int) -> str:
    return (
        "|".join(GENRES[i] for i in range(len(GENRES)) if (item >> i) & 1) or "(no genres listed)"
    )


def write_ml1m(folder: Path, ratings: pd.DataFrame) -> Path:
    """An unzipped `ml-1m` folder: ratings.dat, movies.dat (latin-1), users.dat."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        f"{u}::{i}::{int(r)}::{t}\n"
        for u, i, r, t in ratings[["user_id", "item_id", "rating", "timestamp"]].itertuples(
            index=False
        )
    ]
    (folder / "ratings.dat").write_text("".join(lines), encoding="latin-1")
    items = sorted(ratings["item_id"].unique())
    movies = "".join(f"{i}::{title(i)}::{genres(i)}\n" for i in items)
    (folder / "movies.dat").write_text(movies, encoding="latin-1")
    users = "".join(f"{u}::F::25::10::48067\n" for u in sorted(ratings["user_id"].unique()))
    (folder / "users.dat").write_text(users, encoding="latin-1")
    return folder


def write_ml25m(folder: Path, ratings: pd.DataFrame) -> Path:
    """An unzipped `ml-25m` (or `ml-20m`) folder: ratings.csv and movies.csv (utf-8)."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "ratings.csv").open("w", encoding="utf-8", newline="") as handle:
        handle.write("userId,movieId,rating,timestamp\n")
        for u, i, r, t in ratings[["user_id", "item_id", "rating", "timestamp"]].itertuples(
            index=False
        ):
            handle.write(f"{u},{i},{r:.1f},{t}\n")
    with (folder / "movies.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["movieId", "title", "genres"])
        writer.writerows([i, title(i), genres(i)] for i in sorted(ratings["item_id"].unique()))
    return folder
