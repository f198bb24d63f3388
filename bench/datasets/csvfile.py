"""Any ratings file on disk: `--dataset csv:PATH[?OPTION=VALUE&...]`.

    csv:PATH                          comma-separated, header row with columns
                                      user, item, rating (and timestamp if present),
                                      whole-star ratings 1..5
    csv:/data/r.csv?sep=;&user=uid&item=iid&rating=stars&scale=1:10:1
    csv:/data/r.tsv?sep=tab&header=0&user=1&item=2&rating=3&timestamp=4&scale=0.5:5:0.5

Options (each at most once; the query starts at the first `?`, `%XX` escapes work):
  sep        one character, a string such as `::`, or tab | comma | semicolon | pipe | space
             (default comma)
  header     1 (default) or 0
  user, item, rating, timestamp
             with a header, column names (defaults user, item, rating, timestamp; without
             `timestamp=` the column is used when the header has it); with header=0, 1-based
             field positions (defaults 1, 2, 3; timestamp only when given)
  scale      LOW:HIGH:STEP of the ratings (default 1:5:1; half stars: 0.5:5:0.5)
  encoding   text encoding (default utf-8, a byte-order mark is skipped)

The data set's folder is the file's folder and its name is the spec as written; it has no
download address and no checksums (`--data-dir` may point at another folder holding a
file of the same name). Rows are read strictly by `read_delimited`.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from urllib.parse import parse_qsl

import pandas as pd

from bench.datasets.base import Dataset
from bench.datasets.delimited import read_delimited, split_line
from bench.errors import DataError
from bench.metrics import RatingScale

PREFIX = "csv:"
SYNTAX = (
    "write csv:PATH[?sep=,&header=1&user=COLUMN&item=COLUMN&rating=COLUMN&timestamp=COLUMN"
    "&scale=LOW:HIGH:STEP&encoding=utf-8] (see bench/datasets/csvfile.py)"
)
SEPARATORS = {"tab": "\t", "comma": ",", "semicolon": ";", "pipe": "|", "space": " "}
ROLES = {"user": "user_id", "item": "item_id", "rating": "rating", "timestamp": "timestamp"}
OPTIONS = ("sep", "header", *ROLES, "scale", "encoding")
BOOLEANS = {"1": True, "yes": True, "true": True, "0": False, "no": False, "false": False}


@dataclass(frozen=True)
class CsvOptions:
    sep: str = ","
    header: bool = True
    columns: tuple[tuple[str, str], ...] = ()  # (canonical column, name or 1-based position)
    scale: RatingScale = RatingScale()
    encoding: str = "utf-8-sig"


def _bad(spec: str, problem: str) -> DataError:
    return DataError(f"--dataset {spec}: {problem}; {SYNTAX}")


def _options(spec: str, query: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise _bad(spec, f"cannot read the options {query!r} ({exc})") from None
    options: dict[str, str] = {}
    for key, value in pairs:
        if key not in OPTIONS:
            raise _bad(spec, f"unknown option {key!r} (options: {', '.join(OPTIONS)})")
        if key in options:
            raise _bad(spec, f"option {key!r} given twice")
        options[key] = value
    return options


def _scale(spec: str, text: str) -> RatingScale:
    try:
        low, high, step = (float(part) for part in text.split(":"))
    except ValueError:
        raise _bad(spec, f"scale={text} is not LOW:HIGH:STEP (e.g. scale=0.5:5:0.5)") from None
    steps = (high - low) / step if step > 0 else math.nan
    if not (low < high and math.isfinite(steps) and abs(steps - round(steps)) < 1e-9):
        raise _bad(spec, f"scale={text}: need LOW < HIGH and HIGH - LOW a multiple of STEP > 0")
    return RatingScale(low, high, step)


def _columns(spec: str, options: dict[str, str], header: bool) -> tuple[tuple[str, str], ...]:
    defaults = {"user": "user", "item": "item", "rating": "rating"} if header else {
        "user": "1", "item": "2", "rating": "3"}  # fmt: skip
    given = {**defaults, **{role: options[role] for role in ROLES if role in options}}
    for role, value in given.items():
        if not value or (not header and not (value.isdigit() and int(value) >= 1)):
            what = "a column name" if header else "a 1-based field position"
            raise _bad(spec, f"{role}={value!r} is not {what}")
    if len(set(given.values())) < len(given):
        raise _bad(spec, f"two roles name the same column ({given})")
    return tuple((ROLES[role], value) for role, value in given.items())


def parse_spec(spec: str) -> CsvOptions:
    """The options of a `csv:PATH?...` spec; a bad spec is one DataError saying what to write."""
    path, _, query = spec.removeprefix(PREFIX).partition("?")
    if not path:
        raise _bad(spec, "no file named")
    options = _options(spec, query)
    header_text = options.get("header", "1").lower()
    if header_text not in BOOLEANS:
        raise _bad(spec, f"header={header_text!r} is not 1 or 0")
    header = BOOLEANS[header_text]
    sep = SEPARATORS.get(options.get("sep", ","), options.get("sep", ","))
    if not sep or sep in ('"', "\n", "\r"):
        raise _bad(spec, f"sep={sep!r} cannot separate fields")
    return CsvOptions(
        sep=sep,
        header=header,
        columns=_columns(spec, options, header),
        scale=_scale(spec, options["scale"]) if "scale" in options else RatingScale(),
        encoding=options.get("encoding", "utf-8-sig"),
    )


def _with_timestamp(path: Path, options: CsvOptions) -> dict[str, str | int]:
    """The columns to read: a header's `timestamp` column joins unless one was named."""
    columns = dict(options.columns)
    if options.header and "timestamp" not in columns:
        with path.open(encoding=options.encoding, errors="replace") as handle:
            if "timestamp" in split_line(handle.readline().rstrip("\r\n"), options.sep):
                columns["timestamp"] = "timestamp"
    if not options.header:
        return {name: int(position) - 1 for name, position in columns.items()}
    return columns


def read_ratings(path: Path, options: CsvOptions) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: no such ratings file")
    return read_delimited(
        path,
        sep=options.sep,
        columns=_with_timestamp(path, options),
        scale=options.scale,
        header=options.header,
        encoding=options.encoding,
    )


def csv_dataset(spec: str) -> Dataset:
    """The data set of a `csv:PATH?...` spec (see the module docstring)."""
    options = parse_spec(spec)
    path = Path(spec.removeprefix(PREFIX).partition("?")[0]).expanduser().absolute()
    return Dataset(
        name=spec,
        description=f"ratings file {path} ({options.scale})",
        folder=str(path.parent),
        ratings_file=path.name,
        read_ratings=partial(read_ratings, options=options),
        scale=options.scale,
        short_name=f"csv-{_safe(path.stem)}-{hashlib.sha256(spec.encode()).hexdigest()[:8]}",
    )


def _safe(stem: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", stem)[:40] or "file"
