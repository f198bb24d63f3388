"""MovieLens-100k: locate or download, verify, parse, encode, split."""

from bench.data.fetch import locate
from bench.data.movielens import IdMap, MovieLens, load_movielens, read_folder
from bench.data.splits import CANONICAL, SPLITS, Split, make_split

__all__ = [
    "CANONICAL",
    "SPLITS",
    "IdMap",
    "MovieLens",
    "Split",
    "load_movielens",
    "locate",
    "make_split",
    "read_folder",
]
