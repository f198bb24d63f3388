"""`bench data`: the registered data sets, and one located, verified and summarised."""

from __future__ import annotations

from bench.cli.common import add_data_flags, command_parser
from bench.datasets import DATASETS
from bench.datasets.csvfile import PREFIX as CSV_PREFIX


def _list() -> None:
    from bench.data import DATA_DIR_ENV, cache_dir, is_verified

    print(f"{'data set':<10} {'archive':>12} {'present':<9} {'verified':<9} cache folder")
    for name, dataset in DATASETS.items():
        folder = cache_dir() / dataset.folder
        present = (folder / dataset.ratings_file).is_file()
        verified = present and is_verified(dataset, folder)
        size = f"{dataset.archive_size / 1e6:.1f} MB" if dataset.archive_size else "-"
        print(f"{name:<10} {size:>12} {'yes' if present else 'no':<9} "
              f"{'yes' if verified else 'no':<9} {folder}")  # fmt: skip
    print(f"{CSV_PREFIX + 'PATH':<10} {'-':>12} {'-':<9} {'-':<9} "
          "your own ratings file, read in place (bench/datasets/csvfile.py)")  # fmt: skip
    print(f"\n(a folder given by --data-dir or ${DATA_DIR_ENV} is used instead of the cache)")


def main(argv: list[str] | None = None) -> int:
    parser = command_parser(
        "data",
        "List the data sets, or locate, verify and summarise one.",
        "bench data list",
        "bench data --data-dir ../shared/data/ml-100k",
    )
    parser.add_argument(
        "action",
        nargs="?",
        choices=["list", "show"],
        default="show",
        help="list: every registered data set; show: locate, verify and summarise one "
        "(default %(default)s)",
    )
    add_data_flags(parser)
    args = parser.parse_args(argv)
    if args.action == "list":
        _list()
        return 0
    from bench.data import load_dataset

    data = load_dataset(args.dataset, args.data_dir)
    checked = "verified" if data.dataset.files_sha256 else "read (no published checksums)"
    print(
        f"{data.root}: {data.dataset.name} {checked}; {len(data.ratings)} ratings, "
        f"{data.n_users} users, {data.n_items} items, ratings {data.dataset.scale}"
    )
    return 0
