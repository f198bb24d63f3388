"""Training-speed benchmark: measures side by side in one run and prints tables.

    python benchmarks/train_speed.py [--sections NAME,...]   (default: all, in this order)

Sections:
- post_mf: the post's MF (k=3, batch 32, 100 epochs) with a plain Keras `fit` and the
  project's compiled path, same batches and initial weights: s/epoch, speed-up, loss gap.
- nn: the post's NN (batch 32, 250 epochs) compiled with and without XLA, against a plain
  Keras `fit` of its first epochs (total extrapolated): s/epoch, speed-up, loss gap.
- user_fit: one MF trial (k=32, biases, 20 epochs, batch 256 and 1024) end to end against
  build + compile + `fit(validation_data=...)` as a user would write it.
- throughput: MF training ratings/s (steady-state epochs) for k x batch size.
- surprise: scikit-surprise's SVD (k=100, 20 epochs; `pip install -e '.[bench]'`) against
  MF at k=100, batch 1024, on the same split: ratings/s and test RMSE.
- overhead: a study of 20-epoch MF trials; time outside steady-state training per trial,
  with the compiled runner reused and with a new structure per trial.
- memory: RSS over 100 sequential trials of the default MF space in one process.
- parallel: one fixed list of MF trials run with 1, 2 and 4 worker processes, each started
  afresh (spawn) and forked from the fork server that imported the harness once.
- scale: MF (k=32, 128; batch 1024; 2 epochs) on generated data of the ML-100k, ML-1M,
  ML-10M and ML-25M shapes, dense Adam against row-sparse updates (benchmarks/scale.py).
- sweep: trials per hour of the default sweep (all architectures) with 1 and 2 workers
  (TPE draws different trials in each, so compare with `parallel` for the speed-up).
- reuse: 30-trial default-space MF and NN studies in this process: trials that reused a
  compiled runner.
- help: `bench --help`, each command's `--help` and a bad flag, each a fresh process:
  seconds, and whether TensorFlow, Keras, MLflow or Optuna loaded.
- headline: trials per CPU-hour of 30-trial default-space MF and NN studies and the
  CPU-minutes of the nested MF tuning, each a `bench` command whose worker processes and
  fork server are counted (this process is their subreaper; see benchmarks/cpu_cost.py).
Not part of the test suite; absolute seconds vary with the machine and its load.
"""

from __future__ import annotations

import quiet  # noqa: F401 - first: before TensorFlow loads

# isort: split
import argparse
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from unittest import mock

import keras
import numpy as np
import optuna
import pandas as pd
from cpu_cost import become_subreaper, children, measure, parents
from mlflow.tracking import MlflowClient
from scale import SHAPES, scale

from bench.archs import get_arch
from bench.archs.mf import MFConfig
from bench.archs.nn import NNConfig
from bench.data import Split, load_dataset, make_split
from bench.sweep.objective import Objective
from bench.sweep.pool import START_ENV
from bench.sweep.settings import SweepSettings
from bench.sweep.storage.backends import open_storage as make_storage
from bench.sweep.study import prepare
from bench.sweep.workers import run_study
from bench.training.compiled import RUNNERS, inputs
from bench.training.options import TrainOptions
from bench.training.train import predict_codes, train

ROOT = Path(__file__).resolve().parent.parent


def post_mf(data, args) -> pd.DataFrame:
    split = make_split(data, "seed", seed=0, valid_fraction=0.0)
    config = replace(MFConfig(), epochs=args.epochs)
    runs = {
        "plain Keras fit": train(config, split, TrainOptions(engine="fit")),
        "compiled loop, no XLA": train(config, split, TrainOptions(jit_compile=False)),
        "compiled loop + XLA (default)": train(config, split, TrainOptions(jit_compile=True)),
    }
    reference = np.array(runs["plain Keras fit"].history["train_loss"])
    rows = []
    for name, result in runs.items():
        loss = np.array(result.history["train_loss"])
        rows.append(
            {
                "path": name,
                "s/epoch": result.fit_seconds / args.epochs,
                "total s": result.fit_seconds,
                "speed-up": runs["plain Keras fit"].fit_seconds / result.fit_seconds,
                "max |loss diff|": float(np.max(np.abs(loss - reference))),
                "max rel diff": float(np.max(np.abs(loss - reference) / reference)),
                "test MAE rounded": result.test["test_mae_rounded"],
            }
        )
    return pd.DataFrame(rows)


def nn(data, args) -> pd.DataFrame:
    """The post's NN (batch 32, 250 epochs) compiled with and without XLA; a plain Keras
    `fit` runs the first --nn-fit-epochs epochs only (same batches, weights and dropout
    noise), for the loss gap and an s/epoch to extrapolate from."""
    split = make_split(data, "seed", seed=0, valid_fraction=0.0)
    config = replace(NNConfig(), epochs=args.nn_epochs)
    head = replace(config, epochs=min(args.nn_fit_epochs, config.epochs))
    plain = train(head, split, TrainOptions(engine="fit"))
    reference = np.array(plain.history["train_loss"])
    rows = [
        {
            "path": f"plain Keras fit ({head.epochs} epochs)",
            "s/epoch": plain.fit_seconds / head.epochs,
            "total s": plain.fit_seconds * config.epochs / head.epochs,
            "max rel loss diff": 0.0,
        }
    ]
    paths = {"no-xla": ("compiled loop, no XLA", False), "xla": ("compiled loop + XLA", True)}
    for name, jit in (paths[path] for path in args.nn_paths.split(",")):
        result = train(config, split, TrainOptions(jit_compile=jit))
        loss = np.array(result.history["train_loss"][: head.epochs])
        rows.append(
            {
                "path": name,
                "s/epoch": result.fit_seconds / config.epochs,
                "total s": result.fit_seconds,
                "max rel loss diff": float(np.max(np.abs(loss - reference) / reference)),
                "test MAE rounded": result.test["test_mae_rounded"],
            }
        )
    frame = pd.DataFrame(rows)
    frame["speed-up"] = frame["total s"].iloc[0] / frame["total s"]
    return frame


def user_fit(data, args) -> pd.DataFrame:
    """One trial against what a user would write instead (optuna-examples style: build,
    compile, `fit` with `validation_data`), MF k=32 with biases, 20 epochs, same split,
    each end to end; the harness's trial both as a new structure and as a reused one."""
    split = make_split(data, "seed", seed=0, valid_fraction=0.1)
    rows = []
    for batch_size in (256, 1024):
        config = replace(MFConfig(k=32, use_bias=True), batch_size=batch_size, epochs=20)
        plain = _plain_user_fit(config, split)
        RUNNERS.clear()
        timings = {}
        for case in ("new structure", "reused runner"):
            start = time.perf_counter()
            train(config, split)
            timings[case] = time.perf_counter() - start
        rows += [
            {"batch": batch_size, "path": "build, compile, fit(validation_data)", "s": plain},
            *({"batch": batch_size, "path": f"harness trial, {case}", "s": seconds}
              for case, seconds in timings.items()),
        ]  # fmt: skip
    frame = pd.DataFrame(rows)
    frame["speed-up"] = frame.groupby("batch")["s"].transform("first") / frame["s"]
    return frame


def _plain_user_fit(config: MFConfig, split: Split) -> float:
    """What a user writes: build the model, compile it, fit with validation data."""
    start = time.perf_counter()
    model = get_arch("mf").build(config, split.n_users, split.n_items)
    model.compile(keras.optimizers.Adam(config.learning_rate), loss=config.loss)
    users, items, ratings = inputs(split.train)
    valid_users, valid_items, valid_ratings = inputs(split.valid)
    model.fit(
        [users, items],
        ratings,
        batch_size=config.batch_size,
        epochs=config.epochs,
        validation_data=([valid_users, valid_items], valid_ratings),
        verbose=0,
    )
    return time.perf_counter() - start


def _steady_rate(result, n_train: int) -> float:
    """Ratings per second over the epochs after the first (which includes compilation)."""
    return n_train / float(np.median(result.epoch_seconds[1:]))


def throughput(data, args) -> pd.DataFrame:
    split = make_split(data, "seed", seed=0, valid_fraction=0.0)
    rows = []
    for k in (3, 32, 128):
        for batch_size in (32, 256, 1024, 4096):
            epochs = 3 if batch_size == 32 else 6
            result = train(MFConfig(k=k, batch_size=batch_size, epochs=epochs), split)
            rows.append(
                {
                    "k": k,
                    "batch": batch_size,
                    "ratings/s": _steady_rate(result, len(split.train)),
                    "s/epoch": float(np.median(result.epoch_seconds[1:])),
                    "compile s": result.compile_seconds,
                }
            )
    return pd.DataFrame(rows)


# MF at k=100 with the bias terms and regularisation that SVD also has. lr and L2 were chosen
# on the validation part of the seed split (never on test) from lr {0.003, 0.005, 0.01, 0.02}
# x L2 {0, 1e-5, 1e-4, 2e-4, 3e-4, 1e-3}: validation RMSE 0.9153 after 20 epochs.
MF_VS_SVD = MFConfig(k=100, use_bias=True, l2=2e-4, learning_rate=0.005, batch_size=1024, epochs=20)


def surprise(data, args) -> pd.DataFrame:
    """End to end, as a user waits for it: build, compile, train and predict the test part."""
    split = make_split(data, "seed", seed=0, valid_fraction=0.0)
    test_users, test_items = split.test["user"].to_numpy(), split.test["item"].to_numpy()
    rows = []
    try:
        import surprise as sp
    except ImportError:
        print("scikit-surprise is not installed: pip install -e '.[bench]'", file=sys.stderr)
    else:
        start = time.perf_counter()
        reader = sp.Reader(rating_scale=(1, 5))
        trainset = sp.Dataset.load_from_df(split.train[["user", "item", "rating"]], reader)
        algo = sp.SVD(n_factors=100, n_epochs=20, random_state=0)
        algo.fit(trainset.build_full_trainset())
        fitted = time.perf_counter()
        predictions = [algo.predict(u, i).est for u, i in zip(test_users, test_items, strict=True)]
        end = time.perf_counter()
        error = np.asarray(predictions) - split.test["rating"].to_numpy()
        rows.append(
            {
                "model": "Surprise SVD k=100, 20 epochs (SGD, batch 1)",
                "fit s": fitted - start,
                "end to end s": end - start,
                "test RMSE": float(np.sqrt(np.mean(error**2))),
            }
        )
    for sparse in (False, True):
        start = time.perf_counter()
        result = train(MF_VS_SVD, split, TrainOptions(sparse_updates=sparse))
        predict_codes(result.model, test_users, test_items)  # as a user would, once more
        end = time.perf_counter()
        rows.append(
            {
                "model": f"bench MF k=100, bias, L2, batch 1024, 20 epochs, "
                f"{'sparse' if sparse else 'dense'} Adam",
                "fit s": result.fit_seconds,
                "end to end s": end - start,
                "test RMSE": result.test["test_rmse"],
            }
        )
    frame = pd.DataFrame(rows)
    frame["end to end vs SVD"] = frame["end to end s"] / frame["end to end s"].iloc[0]
    return frame


def _study(split: Split, tmp: Path, name: str, n_trials: int, **settings) -> tuple:
    settings = SweepSettings(
        arch="mf",
        n_trials=n_trials,
        timeout=None,
        pruner="none",
        storage=str(tmp / f"{name}.log"),
        tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}",
        study_name=name,
        **settings,
    )
    prepared = prepare(settings, split)
    study = optuna.load_study(
        study_name=name,
        storage=make_storage(prepared.storage_url),
        pruner=optuna.pruners.NopPruner(),  # as the settings say; load_study defaults to median
    )
    return prepared, study


def overhead(data, args) -> pd.DataFrame:
    """20-epoch MF trials in a real study, tracked in MLflow, where a trial's structure
    (k, batch, ...) was seen before in this process (its compiled runner is reused) and
    where each trial has a structure of its own (traced and compiled anew)."""
    split = make_split(data, "seed", seed=0, valid_fraction=0.1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for batch_size in (32, 1024):
            for case, ks in (("reused runner", [3] * 6), ("new structure", [4, 5, 6, 7, 8, 9])):
                name = f"overhead-{batch_size}-{case.split()[0]}"
                prepared, study = _study(split, Path(tmp), name, 7, max_epochs=20)
                trials = [_fixed_mf(k, batch_size) for k in ks]
                for params in trials:
                    study.enqueue_trial(params)
                RUNNERS.clear()
                study.optimize(Objective(prepared, split), n_trials=7)  # 0: post settings
                client = MlflowClient(prepared.tracking_uri)
                # the first enqueued trial also pays one-off warm-up; keep the other five
                for trial in [t for t in study.trials if t.params in trials][1:]:
                    rows.append(_trial_costs(client, trial, batch_size, case))
    frame = pd.DataFrame(rows).groupby(["batch", "runner"], sort=False).mean().reset_index()
    frame["overhead s"] = frame["trial s"] - frame["training s"]
    frame["overhead share"] = frame["overhead s"] / frame["trial s"]
    return frame


def _fixed_mf(k: int, batch_size: int) -> dict:
    """The space's parameters of the post's MF with this k and batch size (lr 0.001, MSE)."""
    config = replace(MFConfig(), k=k, batch_size=batch_size, learning_rate=0.001)
    params = get_arch("mf").to_params(config)
    del params["epochs"]  # no parameter of the space: the study's cap (20 here) sets it
    return params


def _trial_costs(client: MlflowClient, trial, batch_size: int, case: str) -> dict:
    """Where a finished trial's time went, from its own MLflow metrics."""
    metrics = client.get_run(trial.user_attrs["mlflow_run_id"]).data.metrics
    duration = (trial.datetime_complete - trial.datetime_start).total_seconds()
    fit, training = metrics["fit_seconds"], metrics["train_seconds"]
    return {
        "batch": batch_size,
        "runner": case,
        "trial s": duration,
        "training s": training,
        "trace+compile s": metrics["compile_seconds"],
        "validation+pruner s": fit - training - metrics["compile_seconds"],
        "build+MLflow+Optuna s": duration - fit,
    }


def rss_mb(pid: int | str = "self") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class ChildPeakRss:
    """Polls /proc for this process's children and grandchildren (workers forked by a fork
    server) and records each one's peak RSS."""

    def __init__(self) -> None:
        self.peaks: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.wait(0.5):
            tree = parents()
            mine = children(tree=tree)
            for pid in mine.union(*(children(child, tree) for child in mine)):
                self.peaks[pid] = max(self.peaks.get(pid, 0.0), rss_mb(pid))

    def __enter__(self) -> ChildPeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def memory(data, args) -> pd.DataFrame:
    """RSS over 100 trials of the default MF space (at most 5 epochs each): first all in
    this one process, then through `run_study`, whose worker processes are recycled every
    `trials_per_process` trials (peak RSS of any worker process, polled from /proc)."""
    split = make_split(data, "seed", seed=0, valid_fraction=0.1)
    rss = []
    RUNNERS.clear()
    with tempfile.TemporaryDirectory() as tmp:
        prepared, study = _study(split, Path(tmp), "memory", args.memory_trials, max_epochs=5)
        study.sampler = optuna.samplers.TPESampler(seed=0)
        study.optimize(
            Objective(prepared, split),
            n_trials=args.memory_trials,
            callbacks=[lambda study, trial: rss.append(rss_mb())],
        )
        settings = replace(prepared.settings, study_name="memory-recycled")
        with ChildPeakRss() as workers:
            run_study(settings, split)
    ten = rss[min(9, len(rss) - 1)]
    recycled_peak = max(workers.peaks.values(), default=float("nan"))
    return pd.DataFrame(
        [
            {
                "mode": "one process",
                "trials": len(rss),
                "RSS after 10 MB": ten,
                "RSS after last MB": rss[-1],
                "growth 10->last MB": rss[-1] - ten,
                "peak MB": max(rss),
                "runners reused": RUNNERS.hits,
                "runners compiled": RUNNERS.misses,
            },
            {
                "mode": f"worker processes of {settings.trials_per_process} trials",
                "trials": len(rss),
                "peak MB": recycled_peak,
            },
        ]
    )


def sweep(data, args) -> pd.DataFrame:
    rows = []
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            journal = str(Path(tmp) / "optuna-journal.log")
            start = time.perf_counter()
            # explicit store and journal: this process's MLflow calls set $MLFLOW_TRACKING_URI
            command = [
                sys.executable,
                str(ROOT / "studies" / "sweep.py"),
                "--timeout",
                str(args.sweep_timeout),
                "--workers",
                str(workers),
                "--tracking-uri",
                f"sqlite:///{Path(tmp) / 'mlflow.db'}",
                "--storage",
                journal,
            ]
            if args.data_dir:
                command += ["--data-dir", args.data_dir]
            subprocess.run(command, cwd=tmp, check=True, capture_output=True)
            wall = time.perf_counter() - start
            counts = {}
            for arch in ("mf", "nnmf", "nn"):
                study = optuna.load_study(
                    study_name=f"{arch}-seed",
                    storage=make_storage(str(Path(tmp) / "optuna-journal.log")),
                )
                counts[arch] = len(study.trials)
        rows.append(
            {
                "workers": workers,
                "wall s": wall,
                **{f"{a} trials": n for a, n in counts.items()},
                "trials/hour": sum(counts.values()) * 3600 / wall,
            }
        )
    return pd.DataFrame(rows)


def parallel(data, args) -> pd.DataFrame:
    """The same list of MF trials (drawn at random from the space, at most 20 epochs) run
    with 1, 2 and 4 worker processes (--parallel-workers): a like-for-like comparison."""
    split = make_split(data, "seed", seed=0, valid_fraction=0.1)
    draw = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial_list = []
    for _ in range(args.parallel_trials):
        trial = draw.ask()
        get_arch("mf").suggest(trial, 20)
        trial_list.append(trial.params)
        draw.tell(trial, 0.0)
    rows = []
    methods = args.start_methods.split(",")
    runs = [(w, m) for w in map(int, args.parallel_workers.split(",")) for m in methods]
    with tempfile.TemporaryDirectory() as tmp:
        for workers, method in runs:
            if workers == 1 and method != methods[0]:
                continue  # one worker runs its trials in this process: no start method
            name = f"parallel-{workers}-{method}"
            settings = SweepSettings(
                arch="mf",
                n_trials=len(trial_list),
                timeout=None,
                pruner="none",
                workers=workers,
                max_epochs=20,
                storage=str(Path(tmp) / f"{name}.log"),
                tracking_uri=f"sqlite:///{Path(tmp) / 'mlflow.db'}",
                study_name=name,
            )
            study = optuna.create_study(study_name=name, storage=make_storage(settings.storage))
            for params in trial_list:
                study.enqueue_trial(params)
            start = time.perf_counter()
            with mock.patch.dict(os.environ, {START_ENV: method}):
                run_study(settings, split)
            wall = time.perf_counter() - start
            rows.append(
                {
                    "workers": workers,
                    "start": method if workers > 1 else "in process",
                    "trials": len(trial_list),
                    "wall s": wall,
                    "trials/hour": len(trial_list) * 3600 / wall,
                }
            )
    frame = pd.DataFrame(rows)
    frame["speed-up"] = frame["wall s"].iloc[0] / frame["wall s"]
    return frame


def reuse(data, args) -> pd.DataFrame:
    """Default-space studies as `bench sweep` runs them (TPE, median pruner, patience;
    epochs capped at --reuse-epochs), in this process: how many trials reused a runner."""
    split = make_split(data, "seed", seed=0, valid_fraction=0.1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.reuse_archs.split(","):
            settings = SweepSettings(
                arch=arch, n_trials=args.reuse_trials, timeout=None,
                max_epochs=args.reuse_epochs, storage=str(Path(tmp) / f"{arch}.log"),
                tracking_uri=f"sqlite:///{Path(tmp) / 'mlflow.db'}",
                trials_per_process=None,  # in this process, so RUNNERS sees every trial
            )  # fmt: skip
            RUNNERS.clear()
            start = time.perf_counter()
            run_study(settings, split)
            built, reused = RUNNERS.misses, RUNNERS.hits
            rows.append(
                {
                    "arch": arch,
                    "trials": args.reuse_trials,
                    "wall s": time.perf_counter() - start,
                    "runners compiled": built,
                    "runners reused": reused,
                    "reuse share": reused / max(built + reused, 1),
                }
            )
    return pd.DataFrame(rows)


HELP_ARGVS = (
    ["--help"],
    ["sweep", "--help"],
    ["benchmark", "--help"],
    ["study", "repair", "--help"],
    ["sweep", "--trials", "many"],
)
HEAVY = ("tensorflow", "keras", "mlflow", "optuna")


def help_(data, args) -> pd.DataFrame:
    """Each `--help` and a bad flag in a fresh interpreter, as a shell runs `bench ...`:
    the best of three wall times, the exit status and which heavy libraries were loaded."""
    code = (
        "import sys; from bench.cli import main\n"
        "try:\n    code = main(sys.argv[1:])\nexcept SystemExit as exc:\n    code = exc.code\n"
        f"print(code, ','.join(m for m in {HEAVY!r} if m in sys.modules) or 'none', "
        "file=sys.stderr)"
    )
    rows = []
    for argv in HELP_ARGVS:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=ROOT
            )
            times.append(time.perf_counter() - start)
        status, loaded = done.stderr.strip().splitlines()[-1].split()
        rows.append({"bench": " ".join(argv), "s": min(times), "exit": status, "loaded": loaded})
    return pd.DataFrame(rows)


def headline(data, args) -> pd.DataFrame:
    """Trials per CPU-hour of default-space studies (`bench sweep --trials N --timeout 0`)
    and the CPU-minutes of the nested MF tuning (`benchmarks/nested_space.py mf`), each a
    command of its own, its worker processes and fork server counted (`cpu_cost.py`)."""
    become_subreaper()
    bench = [sys.executable, "-c", "import sys; from bench.cli import main; sys.exit(main())"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.headline_archs.split(","):
            sweep = [*bench, "sweep", "--arch", arch, "--trials", str(args.headline_trials)]
            store = ["--timeout", "0", "--tracking-uri", f"sqlite:///{tmp}/{arch}.db"]
            wall, cpu, _ = _cpu_cost([*sweep, *store], tmp)
            rows.append(_rate(f"{arch} study", args.headline_trials, wall, cpu))
        if args.headline_nested:
            nested = [sys.executable, str(ROOT / "benchmarks" / "nested_space.py"), "mf"]
            wall, cpu, output = _cpu_cost(nested, tmp)
            row = _rate("nested MF, 5 folds x 20 trials", 100, wall, cpu)
            row["mean best val RMSE"] = float(output.split()[-1])
            rows.append(row)
    return pd.DataFrame(rows)


def _cpu_cost(command: list[str], cwd: str) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (every process it left, reaped here) and stdout's last line."""
    cost = measure(command, cwd, capture=True)
    if cost.status or not cost.complete:
        raise RuntimeError(f"{command}: exit {cost.status}, all reaped: {cost.complete}")
    return cost.wall, cost.cpu, cost.stdout.strip().splitlines()[-1]


def _rate(what: str, trials: int, wall: float, cpu: float) -> dict:
    return {
        "run": what,
        "trials": trials,
        "wall s": wall,
        "CPU s": cpu,
        "trials/CPU-hour": trials * 3600 / cpu,
        "CPU-minutes": cpu / 60,
    }


SECTIONS = {
    "post_mf": post_mf,
    "nn": nn,
    "user_fit": user_fit,
    "throughput": throughput,
    "surprise": surprise,
    "overhead": overhead,
    "memory": memory,
    "parallel": parallel,
    "sweep": sweep,
    "scale": scale,
    "reuse": reuse,
    "help": help_,
    "headline": headline,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--epochs", type=int, default=100, help="post_mf epochs")
    parser.add_argument("--nn-epochs", type=int, default=250, help="nn: compiled epochs")
    parser.add_argument("--nn-fit-epochs", type=int, default=5, help="nn: plain-fit epochs")
    parser.add_argument("--nn-paths", default="no-xla,xla", help="nn: compiled paths to time")
    parser.add_argument("--memory-trials", type=int, default=100)
    parser.add_argument("--parallel-trials", type=int, default=24)
    parser.add_argument("--parallel-workers", default="1,2,4")
    parser.add_argument(
        "--start-methods",
        default="spawn,forkserver",
        help="how worker processes start, compared side by side (the fork server's first "
        "run includes its one import of the harness)",
    )
    parser.add_argument("--sweep-timeout", type=int, default=60, help="seconds per architecture")
    parser.add_argument("--scale-shapes", default=",".join(SHAPES))
    parser.add_argument("--scale-ks", default="32,128")
    parser.add_argument("--scale-updates", default="dense,sparse")
    parser.add_argument(
        "--scale-ratings-cap",
        type=int,
        default=3_000_000,
        help="train at most this many generated ratings per shape (0: all)",
    )
    parser.add_argument("--reuse-archs", default="mf,nn")
    parser.add_argument("--reuse-trials", type=int, default=30)
    parser.add_argument("--reuse-epochs", type=int, default=20)
    parser.add_argument("--headline-archs", default="mf,nn")
    parser.add_argument("--headline-trials", type=int, default=30)
    parser.add_argument(
        "--headline-nested",
        type=int,
        default=1,
        help="1: also time the nested MF tuning (about 5 minutes); 0: skip it",
    )
    parser.add_argument("--data-dir")
    parser.add_argument("-v", "--verbose", action="store_true", help="the libraries' chatter")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = load_dataset("ml-100k", args.data_dir)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    for name in args.sections.split(","):
        start = time.perf_counter()
        table = SECTIONS[name](data, args)
        print(f"\n## {name} ({time.perf_counter() - start:.0f} s)")
        print(table.to_string(index=False, float_format="{:.4g}".format), flush=True)


if __name__ == "__main__":
    main()
