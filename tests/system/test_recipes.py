"""The scheduling recipes of docs/benchmark.md, read from deploy/ (the very text users copy).

Cron: the job line runs under /bin/sh with cron's environment in a copy of the checkout where
`.venv/bin/python` is a stand-in for the benchmark job that prints a canned report and exits
0, 1 or 2 as the real job does. What is tested is the recipe's plumbing (what it mails and
logs for each exit status), not the benchmark job, which has its own tests.

systemd: `systemd-analyze verify` on the three units (placeholder paths replaced by existing
ones), the timer's calendar through `systemd-analyze calendar`, and the failure unit's shell
command with stand-ins for `journalctl` and `mail`.

GitHub Actions: the workflow's cache, key and report upload, read with PyYAML; and two
scheduled nights run for real: the job step's command verbatim (bash -eo pipefail, as Actions
runs it) on MovieLens-100k (its registered checksums refuse generated files) with a fork's
small pinned configs,
in a workspace that `actions/checkout` leaves clean each night and `actions/cache` restores
(by key prefix, the newest entry) and saves (after a passing job) as documented.
"""

from __future__ import annotations

import re
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CRON = DEPLOY / "cron" / "recsys-benchmark.cron"
SYSTEMD = DEPLOY / "systemd"
SERVICE = SYSTEMD / "recsys-benchmark.service"
TIMER = SYSTEMD / "recsys-benchmark.timer"
FAILED = SYSTEMD / "recsys-benchmark-failed@.service"
WORKFLOW = DEPLOY / "github" / "benchmark.yml"
DOCS = ROOT / "docs" / "benchmark.md"

CHECKOUT = "/opt/recsys-sweep-bench"  # the placeholders the recipes use
DATA = "/data/ml-100k"
JOB_ARGS = ["studies/benchmark.py", "--protocol", "pinned", "--configs"]
JOB_ARGS += ["studies/pinned_configs.json"]
TIMEOUT_S = 60

REPORT = """\
arch  test_rmse  test_mae
  mf     0.9120    0.7170
paired comparisons over folds:
- mf beats bias on test_rmse in 5 of 5 folds
"""
PASSED = REPORT + "\nregression gate: no metric worse beyond noise (exit 0)\n"
REGRESSED = REPORT + "\nREGRESSION against the reference run r1:\n- mf test_rmse 0.9120 > 0.9010\n"
ERROR = "error: benchmark job failed: OperationalError: database is locked\n"
CRASH = "Traceback (most recent call last):\nModuleNotFoundError: No module named 'tensorflow'\n"


def executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def stand_in_job(checkout: Path, stdout: str, stderr: str, code: int) -> Path:
    """`.venv/bin/python` of `checkout`: records how it was called, prints, exits `code`."""
    return executable(
        checkout / ".venv" / "bin" / "python",
        "#!/bin/sh\n"
        "# stand-in for the benchmark job\n"
        'printf "%s\\n" "$PWD" "${BENCH_DATA_DIR-unset}" "$@" > "$PWD/stand-in-called"\n'
        f"cat <<'OUT'\n{stdout}OUT\n"
        f"cat >&2 <<'ERR'\n{stderr}ERR\n"
        f"exit {code}\n",
    )


def copy_checkout(tmp_path: Path, name: str = "checkout") -> Path:
    checkout = tmp_path / name
    (checkout / "studies").mkdir(parents=True)
    for name in ("benchmark.py", "pinned_configs.json"):
        shutil.copy(ROOT / "studies" / name, checkout / "studies" / name)
    return checkout


# --- cron ---------------------------------------------------------------------------------


def crontab() -> tuple[dict[str, str], list[str]]:
    """The crontab's variable assignments and its job lines (comments and blanks dropped)."""
    variables, jobs = {}, []
    for line in CRON.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if re.match(r"^[A-Za-z_][A-Za-z0-9_]*\s*=", line):
            name, _, value = line.partition("=")
            variables[name.strip()] = value.strip()
        else:
            jobs.append(line)
    return variables, jobs


def cron_job() -> tuple[list[str], str]:
    """The job line's five schedule fields and its command."""
    _, jobs = crontab()
    assert len(jobs) == 1, jobs
    *schedule, command = jobs[0].split(None, 5)
    return schedule, command


def run_like_cron(command: str, home: Path) -> subprocess.CompletedProcess:
    """`command` as cron runs it: /bin/sh -c in the user's home with cron's environment."""
    environment = [f"HOME={home}", "LOGNAME=bench", "PATH=/usr/bin:/bin", "SHELL=/bin/sh"]
    return subprocess.run(
        ["env", "-i", *environment, "/bin/sh", "-c", command],
        cwd=home, capture_output=True, text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_the_crontab_runs_the_job_nightly_at_3_and_mails_its_failures():
    variables, _ = crontab()
    schedule, command = cron_job()
    assert schedule == ["0", "3", "*", "*", "*"]
    assert "@" in variables.get("MAILTO", "")
    assert "%" not in command  # cron would turn it into a newline
    assert f"cd {CHECKOUT} && " in command
    assert f"BENCH_DATA_DIR={DATA} .venv/bin/python {' '.join(JOB_ARGS)}" in command
    assert CRON.read_text().endswith("\n")  # crontab(1) rejects a last line without one


@pytest.mark.parametrize(
    "stdout, stderr, code, mailed",
    [
        (PASSED, "", 0, []),
        (REGRESSED, "", 1, ["benchmark exit 1", "REGRESSION against the reference run r1:",
                            "- mf test_rmse 0.9120 > 0.9010"]),
        (REPORT, ERROR, 2, ["benchmark exit 2", ERROR.strip()]),
        ("", CRASH, 1, ["benchmark exit 1", CRASH.splitlines()[-1]]),
    ],
    ids=["pass", "regression", "job-failed", "crash-without-verdict"],
)  # fmt: skip
def test_the_cron_job_prints_only_a_failure_and_its_verdict(tmp_path, stdout, stderr, code, mailed):
    checkout = copy_checkout(tmp_path)
    stand_in_job(checkout, stdout, stderr, code)
    home = tmp_path / "home"
    home.mkdir()
    _, command = cron_job()
    done = run_like_cron(command.replace(CHECKOUT, str(checkout)), home)

    called = (checkout / "stand-in-called").read_text().splitlines()
    assert called == [str(checkout), DATA, *JOB_ARGS]  # the real command line, in the checkout
    mail = done.stdout + done.stderr  # cron mails both
    if not mailed:
        assert mail == ""
    else:
        assert mail.splitlines()[0] == mailed[0]
        for line in mailed[1:]:
            assert line in mail.splitlines()
        if code == 1 and "REGRESSION" in stdout:
            assert "paired comparisons over folds:" not in mail  # the verdict, not the report
    assert (checkout / "reports" / "cron.log").read_text() == stdout + stderr


def test_the_cron_job_mails_when_the_checkout_is_missing(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    _, command = cron_job()
    done = run_like_cron(command.replace(CHECKOUT, str(tmp_path / "gone")), home)
    assert "benchmark exit" in done.stdout
    assert done.stderr  # the shell's word on the failed cd


# --- systemd ------------------------------------------------------------------------------


def unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A unit file's sections as (key, value) lists, in order (keys may repeat)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
        else:
            key, _, value = line.partition("=")
            assert current is not None, f"{path.name}: {line} outside a section"
            current.append((key.strip(), value.strip()))
    return sections


def values(path: Path, section: str, key: str) -> list[str]:
    return [v for k, v in unit(path).get(section, []) if k == key]


def systemd_analyze(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["systemd-analyze", *args], cwd=cwd, capture_output=True, text=True,
        timeout=TIMEOUT_S, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture
def analyze(tmp_path) -> Path:
    """A folder to run systemd-analyze in, once it is known to work in this container."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "probe.service").write_text("[Service]\nType=oneshot\nExecStart=/bin/true\n")
    try:
        done = systemd_analyze("verify", "probe.service", cwd=probe)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"systemd-analyze cannot run here: {exc}")
    if done.returncode != 0:
        pytest.skip(f"systemd-analyze verify cannot run here: {done.stderr.strip()}")
    return probe


def installed_units(tmp_path: Path, checkout: Path | None) -> Path:
    """The three units in one folder; the placeholders replaced unless `checkout` is None."""
    units = tmp_path / "units"
    units.mkdir()
    for path in (SERVICE, TIMER, FAILED):
        text = path.read_text()
        if checkout is not None:
            text = text.replace(CHECKOUT, str(checkout)).replace(DATA, str(tmp_path))
        (units / path.name).write_text(text)
    return units


def test_systemd_analyze_verify_accepts_the_units(tmp_path, analyze):
    checkout = copy_checkout(tmp_path)
    stand_in_job(checkout, PASSED, "", 0)
    units = installed_units(tmp_path, checkout)
    names = [SERVICE.name, TIMER.name, FAILED.name]
    done = systemd_analyze("verify", *names, cwd=units)
    ours = [line for line in done.stderr.splitlines() if "recsys-benchmark" in line]
    assert done.returncode == 0 and not ours, done.stderr  # no unknown key, bad value...


def test_systemd_analyze_verify_would_catch_a_missing_job(tmp_path, analyze):
    """The check above can fail: with the placeholder path, ExecStart names no executable."""
    units = installed_units(tmp_path, None)
    assert not Path(CHECKOUT).exists()
    done = systemd_analyze("verify", SERVICE.name, cwd=units)
    assert done.returncode != 0
    assert "is not executable" in done.stderr


def test_the_service_runs_the_job_hardened_and_reports_failures():
    assert values(SERVICE, "Service", "Type") == ["oneshot"]
    assert values(SERVICE, "Service", "UMask") == ["0077"]
    assert values(SERVICE, "Service", "WorkingDirectory") == [CHECKOUT]
    environment = " ".join(values(SERVICE, "Service", "Environment"))
    assert f"BENCH_DATA_DIR={DATA}" in environment.split()
    [start] = values(SERVICE, "Service", "ExecStart")
    assert start == f"{CHECKOUT}/.venv/bin/python {' '.join(JOB_ARGS)}"
    [on_failure] = values(SERVICE, "Unit", "OnFailure")
    assert on_failure == "recsys-benchmark-failed@%n.service"
    assert (SYSTEMD / on_failure.replace("%n", "")).is_file()  # the template is shipped
    [timeout] = values(SERVICE, "Service", "TimeoutStartSec")
    assert timeout not in ("infinity", "0")  # a hung job fails, and is reported
    # a read-only file system must leave the stores in the working directory writable
    if values(SERVICE, "Service", "ProtectSystem") == ["strict"]:
        writable = " ".join(values(SERVICE, "Service", "ReadWritePaths")).split()
        assert CHECKOUT in writable
    # the GPU must stay visible: the gate compares runs of the same device only
    for key in ("PrivateDevices", "ProtectClock", "DevicePolicy", "DeviceAllow"):
        assert values(SERVICE, "Service", key) in ([], ["no"]), key


def test_the_timer_fires_at_3_and_catches_up_a_missed_night(tmp_path, analyze):
    [calendar] = values(TIMER, "Timer", "OnCalendar")
    done = systemd_analyze("calendar", calendar, cwd=analyze)
    assert done.returncode == 0, done.stderr
    assert "Normalized form: *-*-* 03:00:00" in done.stdout
    assert values(TIMER, "Timer", "Persistent") == ["true"]
    assert values(TIMER, "Timer", "Unit") in ([], [SERVICE.name])
    assert TIMER.stem == SERVICE.stem  # the timer starts the service of its own name
    assert values(TIMER, "Install", "WantedBy") == ["timers.target"]


def test_the_failure_unit_mails_the_failed_units_journal(tmp_path):
    """Its ExecStart after systemd's specifier (%i, %H, %%) and variable expansion, under /bin/sh
    with stand-ins for journalctl and mail that record what they were given."""
    [start] = values(FAILED, "Service", "ExecStart")
    failed = "recsys-benchmark.service"
    expanded = re.sub(
        r"%[iH%]", lambda m: {"%i": failed, "%H": "bench-host", "%%": "%"}[m.group()], start
    )
    # systemd replaces $NAME and ${NAME} by the unit's environment (it sets none), $$ by $
    variables = r"\$\$|\$\{[A-Za-z_]\w*\}|\$[A-Za-z_]\w*"
    argv = shlex.split(re.sub(variables, lambda m: "$" if m.group() == "$$" else "", expanded))
    assert argv[0].startswith("/")  # systemd wants an absolute path
    bin_dir = tmp_path / "bin"
    executable(
        bin_dir / "journalctl",
        f'#!/bin/sh\nprintf "%s\\n" "$@" > "{tmp_path}/journalctl-args"\n'
        "echo 'REGRESSION against the reference run r1:'\n",
    )
    executable(
        bin_dir / "mail",
        f'#!/bin/sh\nprintf "%s\\n" "$@" > "{tmp_path}/mail-args"\ncat > "{tmp_path}/mail-body"\n',
    )
    done = subprocess.run(
        argv, env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, cwd=tmp_path, capture_output=True,
        text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    journal_args = (tmp_path / "journalctl-args").read_text().splitlines()
    assert journal_args[journal_args.index("-u") + 1] == failed
    assert "REGRESSION against the reference run r1:" in (tmp_path / "mail-body").read_text()
    mail_args = (tmp_path / "mail-args").read_text().splitlines()
    subject = mail_args[mail_args.index("-s") + 1]
    assert failed in subject and "bench-host" in subject
    assert "needs" in FAILED.read_text() and "MTA" in FAILED.read_text()


# --- GitHub Actions -----------------------------------------------------------------------


def render(expression: str, context: dict[str, str]) -> str:
    """`${{ name }}` replaced from `context`; an unknown expression fails the test."""
    return re.sub(r"\$\{\{\s*([\w.]+)\s*\}\}", lambda m: context[m.group(1)], expression)


@pytest.fixture
def workflow() -> dict:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")
    return yaml.safe_load(WORKFLOW.read_text())


def test_the_workflow_keeps_the_store_between_runs_and_uploads_the_report(workflow):
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads `on` as true
    assert {"cron": "0 3 * * *"} in triggers["schedule"]
    steps = workflow["jobs"]["benchmark"]["steps"]

    def index(predicate) -> int:
        [i] = [i for i, step in enumerate(steps) if predicate(step)]
        return i

    cache = index(lambda s: s.get("uses", "").startswith("actions/cache@"))
    job = index(lambda s: f".venv/bin/python {' '.join(JOB_ARGS)}" in s.get("run", ""))
    upload = index(lambda s: s.get("uses", "").startswith("actions/upload-artifact@"))
    assert cache < job < upload  # restored before the job; its report uploaded after it

    settings = steps[cache]["with"]
    paths = settings["path"].split()
    assert {"mlflow.db", "mlartifacts", "optuna-journal.log"} <= set(paths)

    def key(runner: str, run_id: str, attempt: str) -> str:
        context = {"runner.name": runner, "github.run_id": run_id, "github.run_attempt": attempt}
        return render(settings["key"], context)

    tonight = key("bench-1", "1001", "1")
    assert len({tonight, key("bench-1", "1002", "1"), key("bench-1", "1001", "2")}) == 3
    context = {"runner.name": "bench-1", "github.run_id": "1002", "github.run_attempt": "1"}
    prefixes = [render(p, context) for p in str(settings["restore-keys"]).split("\n") if p]
    assert any(tonight.startswith(p) and tonight != p for p in prefixes)
    assert not any(key("bench-2", "1001", "1").startswith(p) for p in prefixes)  # per runner

    assert str(steps[upload].get("if", "")).replace("${{", "").replace("}}", "").strip() == (
        "always()"
    )
    assert steps[upload]["with"]["path"] == "reports/benchmark"


def evaluate(command: str, context: dict[str, str]) -> str:
    """`${{ name && 'a' || 'b' }}` and `${{ name }}` as Actions expands them (empty: false)."""
    choice = r"\$\{\{\s*([\w.]+)\s*&&\s*'([^']*)'\s*\|\|\s*'([^']*)'\s*\}\}"
    command = re.sub(choice, lambda m: m.group(2) if context[m.group(1)] else m.group(3), command)
    return render(command, context)


FORK_CONFIGS = '{"mf": {"k": 2, "epochs": 2}, "nnmf": {"k": 2, "epochs": 2}, "nn": {"epochs": 2}}'


def _night(workspace: Path, command: str, data: Path) -> subprocess.CompletedProcess:
    """One scheduled run of the job step in a fresh checkout of `workspace` (kept as is)."""
    checkout = copy_checkout(workspace.parent, workspace.name)
    (checkout / "studies" / "pinned_configs.json").write_text(FORK_CONFIGS)
    executable(checkout / ".venv" / "bin" / "python", f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    environment = {"PATH": "/usr/bin:/bin", "HOME": str(workspace.parent), "LANG": "C.UTF-8",
                   "BENCH_DATA_DIR": str(data), "GITHUB_ACTIONS": "true"}  # fmt: skip
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", command], cwd=checkout,
        env=environment, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_the_workflows_second_night_compares_with_the_first(workflow, tmp_path, real_data_dir):
    steps = workflow["jobs"]["benchmark"]["steps"]
    cache = next(s for s in steps if s.get("uses", "").startswith("actions/cache@"))["with"]
    [job] = [s["run"] for s in steps if "studies/benchmark.py" in s.get("run", "")]
    command = evaluate(job, {"inputs.promote": ""})  # a scheduled night has no inputs
    paths = cache["path"].split()
    workspace, saved, outputs = tmp_path / "_work" / "repo", {}, []
    for run_id in ("1001", "1002"):
        context = {"runner.name": "bench-1", "github.run_id": run_id, "github.run_attempt": "1"}
        shutil.rmtree(workspace, ignore_errors=True)  # actions/checkout: a clean tree
        prefix = render(str(cache["restore-keys"]).strip(), context)
        restorable = [key for key in saved if key.startswith(prefix)]
        if restorable:  # the newest entry with the prefix
            shutil.copytree(saved[restorable[-1]], workspace)
        done = _night(workspace, command, real_data_dir)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        outputs.append(done.stdout)
        assert (workspace / "reports" / "benchmark" / "report.md").is_file()  # uploaded
        entry = tmp_path / "cache" / render(cache["key"], context)
        assert {"mlflow.db", "mlartifacts"} <= {p for p in paths if (workspace / p).exists()}
        for path in (p for p in paths if (workspace / p).exists()):  # saved: the job passed
            copy = shutil.copytree if (workspace / path).is_dir() else shutil.copy
            (entry / path).parent.mkdir(parents=True, exist_ok=True)
            copy(workspace / path, entry / path)
        saved[entry.name] = entry
    assert "no earlier comparable benchmark run; nothing compared" in outputs[0]
    assert re.search(
        r"regression gate: no metric worse .* than the latest run benchmark-", outputs[1]
    )


# --- the docs -----------------------------------------------------------------------------


def test_the_docs_show_the_cron_line_and_point_at_every_recipe():
    docs = DOCS.read_text()
    _, [job] = crontab()
    assert job in docs.splitlines()  # the inline copy is the tested one
    for path in (CRON, SERVICE, TIMER, FAILED, WORKFLOW):
        assert str(path.relative_to(ROOT)) in docs, path
