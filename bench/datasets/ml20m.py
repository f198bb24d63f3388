"""MovieLens-20M (GroupLens, 2015): 20,000,263 ratings 0.5..5 in half stars of 26,744
movies (27,278 listed) by 138,493 users.

Same file formats as ML-25M (`ratings.csv`, `movies.csv`), read by the same functions.
No canonical folds.
"""

from __future__ import annotations

from bench.datasets.base import Dataset
from bench.datasets.ml25m import SCALE, read_items, read_ratings

ML20M = Dataset(
    name="ml-20m",
    description="MovieLens 20M: 20,000,263 ratings (0.5-5, half stars) of 26,744 movies by "
    "138,493 users",
    folder="ml-20m",
    ratings_file="ratings.csv",
    read_ratings=read_ratings,
    read_items=read_items,
    scale=SCALE,
    url="https://files.grouplens.org/datasets/movielens/ml-20m.zip",
    archive_size=198_702_078,
    archive_sha256="96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
    n_ratings=20_000_263,
)
