"""Strict, fast reading of delimited rating files (pandas' C engine), each bad line named."""

from __future__ import annotations

import collections
import csv
import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.errors import DataError
from bench.metrics import RatingScale

RATING_COLUMNS = ("user_id", "item_id", "rating", "timestamp")
IDS = ("user_id", "item_id")
INT32_MAX = np.iinfo("int32").max
GRID_TOLERANCE = 1e-4  # in steps: float32 ratings such as 3.3 sit a hair off 33 * 0.1
FALLBACK_CHUNK = 1 << 20  # rows per chunk when a failed fast read is re-read to find the line
PHYSICAL_DTYPES = {
    "user_id": "int32",
    "item_id": "int32",
    "rating": "float32",
    "timestamp": "int64",
}
_LINE = re.compile(r"line (\d+)")


def rating_dtype(scale: RatingScale) -> str:
    """int8 for whole-number scales (1..5 stars), float32 for any other (half stars)."""
    whole = float(scale.low).is_integer() and float(scale.step).is_integer()
    return "int8" if whole and scale.low >= -128 and scale.high <= 127 else "float32"


@dataclass(frozen=True)
class _Layout:
    """Where each rating column sits in a file, and how the file's lines are split."""

    path: Path
    sep: str
    encoding: str
    header: bool
    positions: Mapping[str, int]  # canonical column -> 0-based field position
    labels: Mapping[str, str]  # canonical column -> the name messages use
    n_fields: int
    scale: RatingScale

    @property
    def repeat(self) -> int:
        """k for a separator of one character repeated k times (ML-1M's `::`), else 1."""
        return len(self.sep) if len(set(self.sep)) == 1 else 1

    def physical(self, position: int) -> int:
        """Column of field `position` in the table pandas reads (see `_read_options`)."""
        return position * self.repeat

    @property
    def gaps(self) -> list[int]:
        """The empty columns between the halves of a repeated-character separator."""
        used = {self.physical(p) for p in range(self.n_fields)}
        return [c for c in range(self.physical(self.n_fields - 1) + 1) if c not in used]

    def line_of(self, row: int) -> int:
        return row + 1 + int(self.header)


def split_line(text: str, sep: str) -> list[str]:
    """The fields of one line: csv quoting rules for a one-character separator."""
    if len(sep) == 1:
        return next(csv.reader([text], delimiter=sep), [])
    return text.split(sep)


def _first_line(path: Path, encoding: str) -> str | None:
    with path.open(encoding=encoding, newline="") as handle:
        line = handle.readline()
    return line.rstrip("\r\n") if line else None


def _line_text(layout: _Layout, lineno: int) -> str:
    with layout.path.open(encoding=layout.encoding, errors="replace") as handle:
        line = next(itertools.islice(handle, lineno - 1, None), "")
    return line.rstrip("\r\n")


def _layout(
    path: Path,
    sep: str,
    columns: Mapping[str, str | int],
    scale: RatingScale,
    header: bool,
    n_fields: int | None,
    encoding: str,
) -> _Layout:
    first = _first_line(path, encoding)
    if first is None:
        raise DataError(f"{path} holds no ratings (the file is empty)")
    fields = split_line(first, sep)
    if not header:
        positions = {name: int(position) for name, position in columns.items()}
        labels = {name: name for name in columns}
        return _Layout(
            path, sep, encoding, False, positions, labels, n_fields or len(fields), scale
        )
    missing = [name for name in columns.values() if name not in fields]
    if missing:
        raise DataError(
            f"{path}, line 1: the header ({', '.join(fields)}) has no column "
            f"{', '.join(map(repr, missing))}; expected {', '.join(columns.values())}"
        )
    positions = {name: fields.index(label) for name, label in columns.items()}
    return _Layout(path, sep, encoding, True, positions, dict(columns), len(fields), scale)


def _check_rating(where: str, text: str, scale: RatingScale) -> str | None:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        return f"{where}, not a number"
    if not scale.low <= value <= scale.high:
        return f"rating {text} is outside {scale.low:g}..{scale.high:g}"
    steps = (value - scale.low) / scale.step
    if abs(steps - round(steps)) > GRID_TOLERANCE:
        return f"rating {text} is not on the rating grid {scale}"
    return None


def _check_field(layout: _Layout, name: str, text: str) -> str | None:
    """What is wrong with one field's text, or None."""
    label = layout.labels[name]
    where = f"field {layout.positions[name] + 1} ({label}) is {text!r}"
    if name == "rating":
        return _check_rating(where, text, layout.scale)
    try:
        value = int(text)
    except ValueError:
        return f"{where}, not an integer"
    if name in IDS and not 1 <= value <= INT32_MAX:
        return f"{label} {value} is not a positive 32-bit id"
    return None


def _check_line(layout: _Layout, text: str) -> str | None:
    fields = split_line(text, layout.sep)
    if len(fields) != layout.n_fields:
        return (
            f"expected {layout.n_fields} {layout.sep!r}-separated fields, found {len(fields)} "
            f"in {text[:80]!r}"
        )
    for name, position in layout.positions.items():
        problem = _check_field(layout, name, fields[position])
        if problem:
            return problem
    return None


def _fail_at(layout: _Layout, lineno: int, detail: str = "") -> DataError:
    text = _line_text(layout, lineno)
    problem = _check_line(layout, text) or f"cannot parse {text[:80]!r} {detail}".rstrip()
    return DataError(f"{layout.path}, line {lineno}: {problem}")


def _read_options(layout: _Layout) -> dict:
    """pandas options: one-character separators and repeated ones (`::` read as `:`, the
    empty columns between the halves checked) use the C engine, others the python one."""
    if layout.repeat > 1:
        sep, engine = layout.sep[0], "c"
    else:
        sep, engine = (
            (layout.sep, "c") if len(layout.sep) == 1 else (re.escape(layout.sep), "python")
        )
    n_columns = layout.physical(layout.n_fields - 1) + 1
    used = sorted({layout.physical(p) for p in layout.positions.values()} | set(layout.gaps))
    return {
        "sep": sep,
        "engine": engine,
        "header": None,
        "names": range(n_columns),
        "usecols": used if len(used) < n_columns else None,
        "skiprows": int(layout.header),
        "skip_blank_lines": False,
        "index_col": False,
        "encoding": layout.encoding,
    }


def _typed_dtypes(layout: _Layout) -> dict[int, str]:
    dtypes = {c: "float64" for c in layout.gaps}  # empty: NaN
    for name, position in layout.positions.items():
        dtypes[layout.physical(position)] = PHYSICAL_DTYPES[name]
    return dtypes


def _bad_rows(layout: _Layout, chunk: pd.DataFrame) -> np.ndarray:
    """Rows of a text chunk that a field check would reject (the slow path's search)."""
    bad = np.zeros(len(chunk), dtype=bool)
    for name, position in layout.positions.items():
        values = pd.to_numeric(chunk[layout.physical(position)], errors="coerce").to_numpy()
        bad |= ~np.isfinite(values)
        if name != "rating":
            bad |= values != np.floor(values)
        if name in IDS:
            bad |= (values < 1) | (values > INT32_MAX)
    for column in layout.gaps:
        bad |= chunk[column].fillna("x").to_numpy() != ""
    return bad


def _failing_chunk(layout: _Layout) -> int | None:
    """First row of the chunk whose typed read fails (a ParserError propagates)."""
    options = _read_options(layout) | {"dtype": _typed_dtypes(layout)}
    start = 0
    with pd.read_csv(layout.path, chunksize=FALLBACK_CHUNK, **options) as chunks:
        while True:
            try:
                start += len(next(chunks))
            except StopIteration:
                return None
            except pd.errors.ParserError:
                raise
            except (ValueError, OverflowError):
                return start


def _first_bad_line(layout: _Layout) -> int | None:
    """The first line the fast typed read choked on: typed chunks find the chunk, then that
    chunk alone is read as text and checked row by row."""
    start = _failing_chunk(layout)
    if start is None:
        return None
    options = _read_options(layout) | {"dtype": str, "keep_default_na": False, "skiprows": 0}
    with layout.path.open("rb") as handle:  # skip lines here: pandas' skiprows=n builds a set
        collections.deque(itertools.islice(handle, start + int(layout.header)), maxlen=0)
        chunk = pd.read_csv(handle, nrows=FALLBACK_CHUNK, **options)
    bad = np.flatnonzero(_bad_rows(layout, chunk))
    return layout.line_of(start + int(bad[0])) if len(bad) else None


def _parse_failure(layout: _Layout, exc: Exception) -> DataError:
    if isinstance(exc, pd.errors.ParserError):
        match = _LINE.search(str(exc))
        if match is None:
            return DataError(f"{layout.path}: cannot parse ({exc})")
        return _fail_at(layout, int(match.group(1)), f"({exc})")
    try:
        lineno = _first_bad_line(layout)
    except pd.errors.ParserError as again:
        return _parse_failure(layout, again)
    if lineno is None:
        return DataError(f"{layout.path}: cannot parse ({exc})")
    return _fail_at(layout, lineno)


def _read_typed(layout: _Layout) -> pd.DataFrame:
    try:
        return pd.read_csv(layout.path, dtype=_typed_dtypes(layout), **_read_options(layout))
    except UnicodeDecodeError as exc:
        raise DataError(f"{layout.path} is not {layout.encoding} text ({exc})") from None
    except pd.errors.ParserError as exc:
        raise _parse_failure(layout, exc) from None
    except (ValueError, OverflowError) as exc:
        failure = exc.with_traceback(None)  # outside this block the parser's buffers are freed
    raise _parse_failure(layout, failure) from None


def _columns(layout: _Layout, table: pd.DataFrame) -> dict[str, np.ndarray]:
    return {name: table[layout.physical(p)].to_numpy() for name, p in layout.positions.items()}


def _check_values(layout: _Layout, table: pd.DataFrame) -> None:
    """Ids positive, ratings on the scale's grid, separator gaps empty: else the first bad line."""
    scale, column = layout.scale, _columns(layout, table)
    bad = (column["user_id"] < 1) | (column["item_id"] < 1)
    rating = column["rating"]  # float32: exact for half stars, and half the memory
    with np.errstate(invalid="ignore"):  # inf and nan are off the grid
        steps = (rating - np.float32(scale.low)) / np.float32(scale.step)
        bad |= ~(np.abs(steps - np.rint(steps)) <= GRID_TOLERANCE)
    bad |= ~((rating >= scale.low) & (rating <= scale.high))
    for gap in layout.gaps:
        bad |= ~np.isnan(table[gap].to_numpy())
    rows = np.flatnonzero(bad)
    if len(rows):
        raise _fail_at(layout, layout.line_of(int(rows[0])))


def _check_unique_pairs(layout: _Layout, users: np.ndarray, items: np.ndarray) -> None:
    key = (users.astype("int64") << 32) | items.astype("int64")
    ordered = np.sort(key)  # sorting 25M keys costs less memory than a hash table
    repeats = ordered[1:] == ordered[:-1]
    if not repeats.any():
        return
    rows = np.flatnonzero(np.isin(key, ordered[1:][repeats]))  # each repeated pair, in order
    second = int(rows[pd.Series(key[rows]).duplicated().to_numpy()][0])
    first = int(rows[key[rows] == key[second]][0])
    raise DataError(
        f"{layout.path}, line {layout.line_of(second)}: duplicate rating for (user "
        f"{users[first]}, item {items[first]}), first on line {layout.line_of(first)}; "
        f"each pair may appear once"
    )


def read_delimited(
    path: Path,
    *,
    sep: str,
    columns: Mapping[str, str | int],
    scale: RatingScale,
    header: bool = False,
    n_fields: int | None = None,
    encoding: str = "utf-8",
) -> pd.DataFrame:
    """Read a delimited ratings file strictly and fast (pandas' C engine where possible).

    `columns` maps user_id, item_id, rating and (optionally) timestamp to a header name
    (header=True) or a 0-based field position; without a header every line must have
    `n_fields` fields (default: as many as the first line). Returns int32 ids, an int8 or
    float32 rating (`rating_dtype`) and an int64 timestamp (0 where the file has none).
    Any bad line (field count, a non-numeric field, an id below 1, a rating off the scale or
    its step grid, a repeated (user, item) pair) raises one DataError naming file and line.
    """
    layout = _layout(Path(path), sep, columns, scale, header, n_fields, encoding)
    table = _read_typed(layout)
    if table.empty:
        raise DataError(f"{path} holds no ratings")
    _check_values(layout, table)
    column = _columns(layout, table)
    del table  # the separator gaps
    _check_unique_pairs(layout, column["user_id"], column["item_id"])
    rating = column["rating"]
    if rating_dtype(scale) == "int8":
        rating = np.rint(rating).astype("int8")
    timestamp = column.get("timestamp", np.zeros(len(rating), dtype="int64"))
    return pd.DataFrame(
        {"user_id": column["user_id"], "item_id": column["item_id"], "rating": rating,
         "timestamp": timestamp}
    )  # fmt: skip
