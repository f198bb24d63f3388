"""What an invocation has done, polled from the study once a second.

This invocation's trials are those whose owner (the `host`/`pid` user attrs every trial
gets) is one of its processes. On a terminal: a bar of them against this invocation's
share, with the study's total beside it; otherwise (a log file, CI) one line per trial
of this invocation as it finishes: number, state, value, the study's best so far, seconds.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Callable

import optuna
from optuna.trial import FrozenTrial, TrialState
from tqdm import tqdm

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
POLL_S = 1.0


def say(line: str) -> None:
    """One line on stderr that does not tear a progress bar."""
    tqdm.write(line, file=sys.stderr)


def trial_line(trial: FrozenTrial, best: float | None) -> str:
    """Number, state, value, the study's best so far, seconds, and the sampled parameters."""
    value = "-" if trial.value is None else f"{trial.value:.4f}"
    seconds = trial.duration.total_seconds() if trial.duration else 0.0
    best_text = "-" if best is None else f"{best:.4f}"
    params = " ".join(f"{name}={_short(v)}" for name, v in trial.params.items())
    return (
        f"trial {trial.number} {trial.state.name} value {value} best {best_text} "
        f"{seconds:.1f} s  {params}"
    ).rstrip()


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


class Progress:
    """A thread that polls the study until stopped; `mine` counts this invocation's
    finished trials."""

    def __init__(
        self,
        load: Callable[[], optuna.Study],
        name: str,
        share: int,
        study_trials: int | None,
        deadline: float | None,
    ):
        self.load = load
        self.name = name
        self.share = share
        self.study_trials = study_trials
        self.deadline = deadline
        self.pids: set[int] = set()
        self.mine = 0
        self.study_finished = 0
        self._host = socket.gethostname()
        self._printed: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._bar: tqdm | None = None

    def __enter__(self) -> Progress:
        if sys.stderr.isatty():
            self._bar = tqdm(total=self.share, desc=self.name, unit="trial", file=sys.stderr)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        if self._bar is not None:
            self._bar.close()

    def _loop(self) -> None:
        study = self.load()
        while True:
            stopping = self._stop.wait(POLL_S)
            try:
                self._poll(study)
            except Exception as exc:  # a display must never stop the sweep
                say(f"{self.name}: progress not updated ({type(exc).__name__}: {exc})")
            if stopping:
                return

    def _is_mine(self, trial: FrozenTrial) -> bool:
        attrs = trial.user_attrs
        return attrs.get("host") == self._host and attrs.get("pid") in self.pids

    def _poll(self, study: optuna.Study) -> None:
        finished = study.get_trials(deepcopy=False, states=FINISHED)
        self.study_finished = len(finished)
        mine = sorted((t for t in finished if self._is_mine(t)), key=lambda t: t.number)
        self.mine = len(mine)
        complete = [t.value for t in finished if t.state == TrialState.COMPLETE]
        best = _best(study, complete)
        for trial in mine:  # in a log alone, on a terminal above the bar
            if trial.number not in self._printed:
                self._printed.add(trial.number)
                say(f"{self.name} {trial_line(trial, best)}")
        if self._bar is None:
            return
        self._bar.n = min(self.share, self.mine)
        self._bar.set_postfix(self._postfix(best), refresh=True)

    def _postfix(self, best: float | None) -> dict[str, str]:
        total = f"/{self.study_trials}" if self.study_trials else ""
        postfix = {"study": f"{self.study_finished}{total}", "best": "-"}
        if best is not None:
            postfix["best"] = f"{best:.4f}"
        if self.deadline is not None:
            postfix["left"] = f"{max(0.0, self.deadline - time.monotonic()):.0f}s"
        return postfix


def _best(study: optuna.Study, values: list[float]) -> float | None:
    """The best of `values` in the study's direction (None: no value)."""
    if not values:
        return None
    return max(values) if study.direction == optuna.study.StudyDirection.MAXIMIZE else min(values)
