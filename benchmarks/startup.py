"""Benchmark: how long each command takes to start, against a bare interpreter and checkdmarc.

    .venv/bin/python -m benchmarks.startup [--runs 21]

What is timed: the wall time of a whole process, from spawn to exit, for
- `python -c pass` (this interpreter, this virtual environment: the floor every command pays);
- `dmarcbot --version`, `dmarcbot check --help` and `dmarcbot why --help` (the console script, as
  a user runs it: `--help` builds the command's parser and exits, so what is left is imports);
- `checkdmarc --help`, the peer tool's own start-up.
One untimed warm-up of each first (the page cache, compiled bytecode), then --runs rounds; each round
runs every command once, in turn, so a busy moment on the machine falls on all of them alike.

The table gives the wall time's median, min and max, the median's excess over `python -c pass`, the
ratios of medians against `python -c pass` and against `checkdmarc --help`, all from this one run,
and the median CPU time (user + system, from wait4) with its excess over `python -c pass`: on a
machine busy with other work the wall time swings widely, the CPU time much less.
Goals: `--version` under 100 ms over `python -c pass`; `check --help` and `why --help` within
300 ms of it. Exit status: 0 when every goal passes, 1 when one is missed, 2 when a command is
missing or fails, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent


@dataclass
class Command:
    label: str
    argv: list[str]
    goal_ms: float | None = None  # the most it may take over `python -c pass`, at the median
    times: list[float] = field(default_factory=list)  # wall time, seconds
    cpu_times: list[float] = field(default_factory=list)  # user + system CPU time, seconds

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu_times)


def commands() -> list[Command]:
    dmarcbot, checkdmarc = str(BIN / "dmarcbot"), str(BIN / "checkdmarc")
    return [
        Command("python -c pass", [sys.executable, "-c", "pass"]),
        Command("dmarcbot --version", [dmarcbot, "--version"], goal_ms=100),
        Command("dmarcbot check --help", [dmarcbot, "check", "--help"], goal_ms=300),
        Command("dmarcbot why --help", [dmarcbot, "why", "--help"], goal_ms=300),
        Command("checkdmarc --help", [checkdmarc, "--help"]),
    ]


def run_once(command: Command) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one run. The CPU time is what the process itself
    spent: on a machine shared with other work it varies far less than the wall time."""
    started = time.perf_counter()
    process = subprocess.Popen(command.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command.argv)} exited {process.returncode}")
    return elapsed, usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=21, help="timed rounds (default 21)")
    args = parser.parse_args()
    measured = commands()
    for command in measured:
        if not Path(command.argv[0]).exists():
            print(f"{command.argv[0]} is missing: run bin/bootstrap first", file=sys.stderr)
            return 2
    try:
        for command in measured:
            run_once(command)  # warm-up, untimed
        for _ in range(max(1, args.runs)):
            for command in measured:
                wall, cpu = run_once(command)
                command.times.append(wall)
                command.cpu_times.append(cpu)
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return report(measured, args.runs)


def report(measured: list[Command], runs: int) -> int:
    floor, peer, cpu_floor = measured[0].median, measured[-1].median, measured[0].cpu_median
    print(f"Start-up per process, {runs} rounds (ms; the ratios are of wall-time medians)\n")
    header = (
        f"{'command':<24}{'median':>8}{'min':>8}{'max':>8}{'over pass':>11}{'x pass':>8}{'x checkdmarc':>14}"
        f"{'CPU median':>12}{'CPU over pass':>15}"
    )
    print(header)
    print("-" * len(header))
    for command in measured:
        print(
            f"{command.label:<24}{command.median * 1000:>8.0f}{min(command.times) * 1000:>8.0f}"
            f"{max(command.times) * 1000:>8.0f}{(command.median - floor) * 1000:>11.0f}"
            f"{command.median / floor:>8.2f}{command.median / peer:>14.2f}"
            f"{command.cpu_median * 1000:>12.0f}{(command.cpu_median - cpu_floor) * 1000:>15.0f}"
        )
    print()
    missed = 0
    for command in measured:
        if command.goal_ms is None:
            continue
        over = (command.median - floor) * 1000
        ok = over < command.goal_ms
        missed += not ok
        print(
            f"{'PASS' if ok else 'MISS'} {command.label}: {over:.0f} ms over python -c pass "
            f"(goal under {command.goal_ms:.0f})"
        )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
