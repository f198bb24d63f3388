"""Bad input gives one clear line on stderr and exit 2, never a traceback."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import verbosity
from bench.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_missing_data_folder_is_one_line(tmp_path, capsys):
    assert main(["data", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "holds no u.data" in err


def test_an_unknown_command_is_one_error_line_with_the_closest_one(capsys):
    assert main(["swep"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: bench: unknown command 'swep'; did you mean 'sweep'?"), err
    assert err.count("\n") == 1


def test_no_command_prints_usage(capsys):
    assert main([]) == 2
    assert capsys.readouterr().err.startswith("usage: bench")


def test_help_lists_every_command_with_its_line_on_stdout(capsys):
    from bench.cli import COMMANDS

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name, (_, line) in COMMANDS.items():
        assert f"  {name}" in out and line in out
    assert {"sweep", "benchmark", "tuners", "replicate", "recommend", "data", "study"} <= set(
        COMMANDS
    )


HEAVY = ("tensorflow", "keras", "mlflow", "optuna")


@pytest.mark.parametrize(
    "argv",
    [
        *([name, "--help"] for name in ("sweep", "benchmark", "tuners", "replicate", "recommend")),
        ["data", "--help"],
        ["study", "repair", "--help"],
        ["sweep", "--no-such-flag"],
        ["sweep", "--arch", "nope"],
        ["sweep", "--trials", "0"],
        ["benchmark", "--tune-trials", "0"],
        ["tuners", "--samplers", "nope"],
        ["study", "repair", "--grace-period", "0"],
    ],
    ids=" ".join,
)
def test_help_and_bad_flags_answer_before_the_libraries_load(argv):
    """Every `--help` and every bad flag returns before TensorFlow, MLflow or Optuna load."""
    code = (
        "import sys; from bench.cli import run, _command, COMMANDS\n"
        f"argv = {argv!r}\n"
        "try:\n    code = run(_command(COMMANDS[argv[0]][0]), argv[1:])\n"
        "except SystemExit as exc:\n    code = exc.code\n"
        f"print(code, sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)"
    )
    env = {k: v for k, v in os.environ.items() if k != verbosity.MARKER}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT, env=env
    )
    expected = 0 if argv[-1] == "--help" else 2
    assert done.stderr.strip().splitlines()[-1] == f"{expected} []", done.stderr
    if expected == 0:
        assert done.stdout.startswith(f"usage: bench {' '.join(argv[:-1])}"), done.stdout
    else:
        assert done.stderr.count("\n") == 2 and "error:" in done.stderr, done.stderr


NO_GP = (  # the gp sampler's optional package missing, whether or not torch is installed
    "import dataclasses, bench.sweep.samplers as s; "
    "s.SAMPLERS['gp'] = dataclasses.replace(s.SAMPLERS['gp'], needs='no_such_package_here')\n"
)


@pytest.mark.parametrize(
    "argv, said, prelude",
    [
        (["benchmark", "--baseline", "junk.csv"], "--baseline junk.csv: not a benchmark", ""),
        (["benchmark", "--baseline", "text.csv"], "column mae holds values that are not", ""),
        (["benchmark", "--baseline", "none.csv"], "--baseline none.csv: cannot read it", ""),
        (["benchmark", "--min-delta", "-1"], "--min-delta -1: the smallest worsening", ""),
        (["benchmark", "--tune-timeout", "-1"], "--tune-timeout must be positive", ""),
        (
            ["benchmark", "--task", "ranking", "--metric", "rmse"],
            "does not measure the ranking",
            "",
        ),
        (["benchmark", "--task", "ranking", "--ensembles", "2"], "has no ensembles", ""),
        (["benchmark", "--workers", "0"], "--workers 0: studies at a time", ""),
        (["sweep", "--task", "ranking", "--metric", "mae"], "does not measure the ranking", ""),
        (["sweep", "--metric", "ndcg_at_10"], "does not measure the rating task", ""),
        (["sweep", "--task", "ranking", "--sparse-updates"], "ranking trains with dense", ""),
        (["benchmark", "--folds", "u1,u9"], "--folds u1,u9: ml-100k has seed, u1", ""),
        (["tuners", "--folds", "u9"], "--folds u9: ml-100k has", ""),
        (
            ["sweep", "--storage", "j.log", "--heartbeat-interval", "5"],
            "--heartbeat-interval needs a database storage, not the journal file j.log",
            "",
        ),
        (["sweep", "--sampler", "gp"], "the gp sampler needs the Python package", NO_GP),
        (["recommend", "--model", "models:/m@champion", "--user", "1", "-k", "0"], "-k 0", ""),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)
def test_bad_values_are_one_line_before_the_libraries_load(argv, said, prelude, tmp_path):
    """Values that used to be found after start-up (or after the whole job) are refused
    before TensorFlow, MLflow or Optuna load: one error line, exit 2."""
    (tmp_path / "junk.csv").write_text("a,b\n1,2\n")
    (tmp_path / "text.csv").write_text("model,fold,mae\nmf,u1,abc\n")
    code = (
        f"import sys\n{prelude}from bench.cli import run, _command, COMMANDS\n"
        f"argv = {argv!r}\n"
        "try:\n    code = run(_command(COMMANDS[argv[0]][0]), argv[1:])\n"
        "except SystemExit as exc:\n    code = exc.code\n"
        f"print(code, sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)"
    )
    env = {k: v for k, v in os.environ.items() if k not in (verbosity.MARKER, "BENCH_STORAGE")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env=env,
    )  # fmt: skip
    lines = done.stderr.strip().splitlines()
    assert lines[-1] == "2 []", done.stderr
    assert len(lines) == 2 and lines[0].startswith("error: ") and said in lines[0], done.stderr


def test_bench_help_loads_no_library():
    """`bench --help` answers before TensorFlow, MLflow, Optuna or pandas load."""
    code = (
        "import sys; from bench.cli import main; code = main(['--help']); "
        "heavy = ('tensorflow', 'keras', 'mlflow', 'optuna', 'matplotlib', 'pandas'); "
        "print(code, sorted(m for m in heavy if m in sys.modules), file=sys.stderr)"
    )
    env = {k: v for k, v in os.environ.items() if k != verbosity.MARKER}  # as from a shell
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT, env=env
    )
    assert done.stderr.strip().splitlines()[-1] == "0 []", done.stderr
    assert "sweep" in done.stdout


@pytest.mark.parametrize("command", ["sweep", "benchmark", "tuners", "replicate", "data"])
def test_every_command_says_its_name_in_its_usage(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert capsys.readouterr().out.startswith(f"usage: bench {command}")


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


NOISE = ("onednn", "cuda", "absl", "i0000", "e0000", "w0000", "view run", "alembic", "info ")


@pytest.mark.integration
def test_study_script_prints_only_its_own_lines(real_data_dir, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in verbosity.ENVIRONMENT}
    env.pop(verbosity.MARKER, None)
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "studies/seed_replication.py"),
            "--quick",
            "--data-dir",
            str(real_data_dir),
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    noisy = [line for line in proc.stderr.splitlines() if any(n in line.lower() for n in NOISE)]
    assert noisy == []
    assert len(proc.stderr.splitlines()) <= 2, proc.stderr[-2000:]
    assert "training mf" in proc.stdout and len(proc.stdout.splitlines()) < 80


def test_verbose_flag_is_taken_out_of_the_arguments_and_keeps_the_environment(monkeypatch):
    assert verbosity.split_flags(["--quick", "-v", "--seed", "1"]) == (
        ["--quick", "--seed", "1"],
        True,
    )
    assert verbosity.split_flags(["--verbose"]) == ([], True)
    assert verbosity.split_flags(["--quick"]) == (["--quick"], False)
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.setenv(verbosity.MARKER, "1")
    verbosity.apply(verbose=True)
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ and verbosity.MARKER not in os.environ


def test_stderr_to_devnull_swallows_native_writes_and_restores_the_descriptor(capfd):
    with verbosity.stderr_to_devnull():
        os.write(2, b"native chatter\n")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"


def test_data_show_says_a_csv_file_was_read_not_verified(tmp_path, capsys):
    """A ratings file has no published checksum: nothing was verified."""
    path = tmp_path / "r.csv"
    path.write_text("user,item,rating\n1,1,4\n1,2,3\n2,1,5\n")
    assert main(["data", "show", "--dataset", f"csv:{path}"]) == 0
    out = capsys.readouterr().out
    assert "read (no published checksums); 3 ratings, 2 users, 2 items" in out
    assert "verified" not in out


def test_a_bad_mlflow_store_is_named_as_the_mlflow_store(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path / "unused"))
    sweep = ["sweep", "--arch", "mf", "--trials", "1", "--tracking-uri"]
    assert main([*sweep, "garbage://x/y"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: MLflow store 'garbage://x/y': unknown scheme 'garbage'")
    assert err.count("\n") == 1 and "registry" not in err
    (tmp_path / "mlflow.db.create.lock").mkdir()  # the store's lock cannot be opened
    monkeypatch.chdir(tmp_path)
    assert main([*sweep, "sqlite:///mlflow.db"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot open MLflow store sqlite:///mlflow.db: ")
    assert "Optuna" not in err and err.count("\n") == 1


def _flags_without_help(parser: argparse.ArgumentParser, prefix: str) -> list[str]:
    """Flags with no help text, or with a default value their help does not state."""
    missing = []
    for action in parser._actions:
        name = f"{prefix} {'/'.join(action.option_strings) or action.dest}"
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                missing += _flags_without_help(sub, f"{prefix} {sub_name}")
        elif not action.help:
            missing.append(name)
        elif action.default not in (None, False, argparse.SUPPRESS) and "default" not in (
            action.help
        ):
            missing.append(f"{name} (its default {action.default!r} unsaid)")
    return missing


def _command_parsers(monkeypatch) -> dict[str, argparse.ArgumentParser]:
    """Each command's parser, as `bench COMMAND --help` builds it."""
    from bench.cli import COMMANDS

    parsers = {}

    def captured(self, *args, **kwargs):
        parsers[self.prog.removeprefix("bench ")] = self
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", captured)
    for command in COMMANDS:
        with pytest.raises(SystemExit):
            main([command, "--help"])
    return parsers


def test_every_flag_of_every_command_has_help_text_with_its_default(monkeypatch):
    missing = []
    for command, parser in _command_parsers(monkeypatch).items():
        missing += _flags_without_help(parser, f"bench {command}")
    assert missing == []


def test_the_long_commands_group_their_flags_by_concern(monkeypatch):
    parsers = _command_parsers(monkeypatch)
    for command in ("sweep", "benchmark"):
        groups = [g for g in parsers[command]._action_groups[2:]]  # after argparse's own two
        assert len(groups) >= 4, command
        ungrouped = [a for a in parsers[command]._optionals._group_actions if a.dest != "help"]
        assert ungrouped == [], command  # every flag sits in a named group
        assert all(group._group_actions for group in groups), command


def test_a_full_disk_is_said_in_its_own_words_once():
    """What a full disk broke on the way (an assertion, a wrapper) does not replace its words,
    and a message already made into one line is not wrapped again."""
    from bench.errors import StoreFull, one_line

    try:
        try:
            raise OSError(28, "No space left on device")
        except OSError:
            raise AssertionError("Should not reach.")  # noqa: B904 - as Optuna's finally does
    except AssertionError as exc:
        line = one_line(exc)
    assert line.startswith("the disk of a store is full (") and "Should not reach" not in line
    assert "No space left on device" in line
    assert one_line(StoreFull(line)) == line
    assert one_line(ValueError("first\nsecond")) == "first"


@pytest.mark.parametrize("command", ["sweep", "benchmark", "tuners", "replicate", "data"])
def test_every_command_help_ends_with_examples_and_the_verbose_flag(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    examples = out.split("examples:\n", 1)[1]
    assert examples.startswith(f"  bench {command} ")
    assert out.rstrip().endswith("-v, --verbose anywhere on the line: the libraries' logging too")
