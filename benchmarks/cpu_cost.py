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
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Orphans of this process's descendants are re-parented to it, not to init."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def children(parent: int | None = None) -> set[int]:
    """The child processes of `parent` (default this process; orphans re-parented to it
    included), from /proc."""
    me, found = str(parent or os.getpid()), set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:
            found.add(int(stat.parent.name))
    return found


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="", help="a name printed with the figures")
    parser.add_argument("--reap-timeout", type=float, default=60.0)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    become_subreaper()
    start = time.perf_counter()
    status = subprocess.run(command, check=False).returncode
    complete = reap_orphans(args.reap_timeout)
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime
    note = "" if complete else " (some processes still running: CPU undercounted)"
    print(
        f"cpu_cost {args.label}: exit {status}, wall {wall:.1f} s, CPU {cpu:.1f} s "
        f"(user {usage.ru_utime:.1f}, system {usage.ru_stime:.1f}){note}",
        flush=True,
    )
    sys.exit(status)


if __name__ == "__main__":
    main()
