"""The CPU time of a whole command: its worker processes and their fork server included.

    python benchmarks/cpu_cost.py [--label TEXT] -- COMMAND [ARG ...]

`/usr/bin/time` misses the CPU of processes its command leaves behind: multiprocessing's
fork server outlives a sweep by a moment and is re-parented to init, taking its workers'
CPU with it. This script becomes a child subreaper (Linux `prctl(PR_SET_CHILD_SUBREAPER)`),
so such orphans are re-parented to it; it reaps them (for at most --reap-timeout seconds)
and reads the CPU of everything it reaped from `getrusage(RUSAGE_CHILDREN)`. Prints one
line: the command's exit status, wall seconds, user + system CPU seconds. Not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Orphans of this process's descendants are re-parented to it, not to init."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def parents() -> dict[int, int]:
    """Every process's parent, from one scan of /proc."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended during the scan
        found[int(stat.parent.name)] = int(fields[1])
    return found


def children(parent: int | None = None, tree: dict[int, int] | None = None) -> set[int]:
    """The child processes of `parent` (default this process; orphans re-parented to it
    included), in `tree` (default a fresh scan of /proc)."""
    parent, tree = parent or os.getpid(), tree if tree is not None else parents()
    return {pid for pid, its_parent in tree.items() if its_parent == parent}


def reap_orphans(timeout: float, keep: set[int] = frozenset()) -> bool:
    """Wait for every child but those in `keep` (this process's own, still needed);
    False if some outlived `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = children() - set(keep)
        if not waiting:
            return True
        for pid in waiting:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    return False


@dataclass(frozen=True)
class Cost:
    """What one command cost: its exit status, wall and CPU seconds, its standard output
    (when captured), and whether every process it left was reaped in time."""

    status: int
    wall: float
    user: float
    system: float
    stdout: str
    complete: bool

    @property
    def cpu(self) -> float:
        return self.user + self.system


def measure(command: list[str], cwd=None, capture: bool = False, timeout: float = 60.0) -> Cost:
    """Run `command` (as a subreaper: call `become_subreaper` first), reap what it leaves
    behind, but not this process's own children from before, and charge it their CPU."""
    mine = children()  # this process's own, a fork server of its own, say: not the command's
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, check=False, capture_output=capture, text=True)
    complete = reap_orphans(timeout, keep=mine)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    return Cost(done.returncode, wall, user, system, done.stdout or "", complete)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="", help="a name printed with the figures")
    parser.add_argument("--reap-timeout", type=float, default=60.0)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    become_subreaper()
    cost = measure(command, timeout=args.reap_timeout)
    note = "" if cost.complete else " (some processes still running: CPU undercounted)"
    print(
        f"cpu_cost {args.label}: exit {cost.status}, wall {cost.wall:.1f} s, CPU {cost.cpu:.1f} s "
        f"(user {cost.user:.1f}, system {cost.system:.1f}){note}",
        flush=True,
    )
    sys.exit(cost.status)


if __name__ == "__main__":
    main()
