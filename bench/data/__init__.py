"""Any registered data set: locate or download, verify, parse, encode, split."""

from bench.data.fetch import DATA_DIR_ENV, cache_dir, is_verified, locate
from bench.data.ratings import IdMap, RatingData, load_dataset, read_folder
from bench.data.splits import Split, make_split

__all__ = [
    "DATA_DIR_ENV",
    "IdMap",
    "RatingData",
    "Split",
    "cache_dir",
    "is_verified",
    "load_dataset",
    "locate",
    "make_split",
    "read_folder",
]
