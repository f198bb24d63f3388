"""Same seed, same machine: bit-identical training in two fresh processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import hashlib, json, sys
from dataclasses import replace
sys.path.insert(0, {root!r})
from bench.archs import ARCHS
from bench.data import make_split, read_folder
from bench.training.train import train
from tests.support.synthetic import synthetic_ratings, write_folder

from pathlib import Path
split = make_split(read_folder(write_folder(Path({folder!r}), synthetic_ratings())), "seed", seed=0)
out = {{}}
for name, arch in ARCHS.items():
    result = train(replace(arch.config(), epochs=2), split)
    weights = b"".join(w.tobytes() for w in result.model.get_weights())
    out[name] = [result.history["train_loss"], hashlib.sha256(weights).hexdigest()]
print(json.dumps(out))
"""


def _fresh_process(tmp_path: Path) -> dict:
    code = SCRIPT.format(root=str(ROOT), folder=str(tmp_path / "data"))
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.integration
def test_every_architecture_at_its_published_settings_is_bit_identical_across_processes(
    tmp_path,
):
    first, second = _fresh_process(tmp_path), _fresh_process(tmp_path)
    assert set(first) == {"mf", "nnmf", "nn", "neumf"}
    assert first == second  # losses equal as floats and weights equal bit for bit
