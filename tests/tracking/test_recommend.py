"""`bench recommend` reads its model from the store it is given, and creates no store."""

from __future__ import annotations

import pytest

from bench.cli.recommend import main as recommend
from bench.errors import BenchError
from tests.support.synthetic import synthetic_ratings, write_folder
from tests.tracking.test_serving import NAME, served  # noqa: F401 - a registered champion


def test_recommend_serves_from_the_given_store_and_writes_nothing_in_cwd(
    served,  # noqa: F811 - the fixture
    synthetic_dataset,
    tmp_path,
    monkeypatch,
    capsys,
):
    data = write_folder(tmp_path / "data", synthetic_ratings())  # user 3 is in it
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    flags = ["--model", f"models:/{NAME}@champion", "--user", "3", "-k", "3"]
    flags += ["--dataset", "synthetic", "--data-dir", str(data)]
    with pytest.raises(BenchError, match=r"no MLflow store at .*elsewhere/mlflow\.db"):
        recommend(flags)  # ./mlflow.db, which does not exist
    assert recommend([*flags, "--tracking-uri", served.tracking_uri]) == 0
    out = capsys.readouterr().out
    assert "top 3 unseen movies for user 3:" in out
    assert len(out.strip().splitlines()) == 2 + 3  # the title, the header and three movies
    assert list(elsewhere.iterdir()) == []  # no mlflow.db, no mlruns
