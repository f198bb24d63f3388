"""Bad input gives one clear line on stderr and exit 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_missing_data_folder_is_one_line(tmp_path, capsys):
    assert main(["data", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "holds no u.data" in err


def test_unknown_command_prints_usage():
    assert main(["frobnicate"]) == 2


def test_data_command_reports_verified_folder(real_data_dir, capsys):
    assert main(["data", "--data-dir", str(real_data_dir)]) == 0
    assert "verified; 100000 ratings, 943 users, 1682 items" in capsys.readouterr().out


def test_study_script_with_unwritable_store_fails_cleanly(real_data_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    uri = f"sqlite:///{blocker}/mlflow.db"
    proc = subprocess.run(
        [
            sys.executable,
            "studies/seed_replication.py",
            "--quick",
            "--data-dir",
            str(real_data_dir),
            "--tracking-uri",
            uri,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"error: cannot open the MLflow store '{uri}'" in proc.stderr
    assert "training mf" not in proc.stdout  # failed before any training started
