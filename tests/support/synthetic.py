"""Small generated data in MovieLens-100k format, for fast unit tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

GENRES = [f"g{i}" for i in range(19)]


def synthetic_ratings(n_users: int = 30, n_items: int = 40, density: float = 0.35, seed: int = 0):
    """Integer ratings 1..5 from a rank-2 model plus noise; ids 1-based with gaps removed."""
    rng = np.random.default_rng(seed)
    users, items = np.nonzero(rng.random((n_users, n_items)) < density)
    taste = rng.normal(size=(n_users, 2)) @ rng.normal(size=(2, n_items))
    scores = 3 + taste[users, items] + rng.normal(scale=0.5, size=len(users))
    return pd.DataFrame(
        {
            "user_id": users + 1,
            "item_id": items + 1,
            "rating": np.clip(np.round(scores), 1, 5).astype(int),
            "timestamp": 880000000 + rng.integers(0, 10**6, len(users)),
        }
    )


def write_folder(folder: Path, ratings: pd.DataFrame, seed: int = 0) -> Path:
    """Write u.data, u.item, u.genre and folds u1, u2 (base/test pairs) in MovieLens format."""
    folder.mkdir(parents=True, exist_ok=True)
    ratings.to_csv(folder / "u.data", sep="\t", header=False, index=False)
    lines = []
    for item in sorted(ratings["item_id"].unique()):
        flags = ["1" if g == item % 19 else "0" for g in range(19)]
        lines.append(
            "|".join([str(item), f"Film {item} (199{item % 10})", "01-Jan-1995", "", "", *flags])
        )
    (folder / "u.item").write_text("\n".join(lines) + "\n", encoding="latin-1")
    (folder / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(GENRES)))
    for fold in ("u1", "u2"):
        test_rows = np.random.default_rng([seed, int(fold[1])]).random(len(ratings)) < 0.2
        ratings[~test_rows].to_csv(folder / f"{fold}.base", sep="\t", header=False, index=False)
        ratings[test_rows].to_csv(folder / f"{fold}.test", sep="\t", header=False, index=False)
    return folder
