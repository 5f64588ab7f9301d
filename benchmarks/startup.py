"""Startup of ``mailscale plan 250k`` against the imports it cannot do without.

The reference is a bare interpreter that imports what the command needs to
plan and print (``mailscale.planning``, ``rich.console``, ``rich.table``); the
ratio says what the command costs beyond that. Both run as fresh processes,
interleaved round by round (alternating which goes first), and each side's
median is kept::

    PYTHONPATH=src python -m benchmarks.startup [--rounds 21]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")
COMMAND = [sys.executable, "-m", "mailscale", "plan", "250k"]
REFERENCE = [sys.executable, "-c", "import mailscale.planning, rich.console, rich.table"]
BARE = [sys.executable, "-c", "pass"]


def _once(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, env=env, check=True)
    return time.perf_counter() - start


def measure(rounds: int = 21, src: str = SRC) -> dict[str, float]:
    """Median wall seconds of the command, the reference and a bare interpreter."""
    env = {**os.environ, "PYTHONPATH": src}
    env.pop("MAILSCALE_DEBUG", None)
    runs: dict[str, list[float]] = {"command": [], "reference": [], "bare": []}
    sides = [("command", COMMAND), ("reference", REFERENCE), ("bare", BARE)]
    for argv in (COMMAND, REFERENCE):  # warm the file cache
        _once(argv, env)
    for i in range(rounds):
        order = sides if i % 2 == 0 else sides[::-1]
        for name, argv in order:
            runs[name].append(_once(argv, env))
    return {name: statistics.median(times) for name, times in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--src", default=SRC, help="the source tree to time (default: this one)")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    result = measure(args.rounds, args.src)
    print(f"load average {load:.2f} -> {os.getloadavg()[0]:.2f}, {args.rounds} rounds")
    for name in ("command", "reference", "bare"):
        print(f"{name:<10} median {result[name] * 1000:7.1f} ms")
    ratio = result["command"] / result["reference"]
    print(f"mailscale plan 250k / reference imports: {ratio:.2f}x")
    beyond = (result["command"] - result["bare"]) / (result["reference"] - result["bare"])
    print(f"same, interpreter start-up subtracted:  {beyond:.2f}x")


if __name__ == "__main__":
    main()
