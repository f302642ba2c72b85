#!/usr/bin/env python3
"""Two or more netrec-analyze builds side by side on one command (see BENCHMARKS.md).

Runs `BIN ARGS...` for each build in turn (a, b, a, b, ...), output to
/dev/null, and prints the median wall time and peak RSS (wait4) of each, and
each build's ratio to the first. Absolute times drift on these machines;
the ratios of one run are what to compare.

    python3 bench/compare_analyzer.py --runs 5 old=/tmp/old new=target/release/netrec-analyze \\
        -- netio /var/tmp/netrec-bench-traces/50M-… --format json
"""
import argparse
import os
import statistics
import sys

from analyzer import timed


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("builds", nargs="+", metavar="NAME=BIN")
    argv = sys.argv[1:]
    if "--" not in argv:
        p.error("give the command's arguments after --")
    split = argv.index("--")
    a = p.parse_args(argv[:split])
    args = argv[split + 1:]
    builds = [b.split("=", 1) for b in a.builds]
    if any(len(b) != 2 for b in builds):
        p.error("builds are NAME=BIN")
    results = {name: [] for name, _ in builds}
    devnull = open(os.devnull, "w")
    for _ in range(a.runs):
        for name, binary in builds:
            results[name].append(timed([binary, *args], stdout=devnull))
    print(f"`netrec-analyze {' '.join(args)}`, {a.runs} alternating runs, medians\n")
    print("| build | wall s | ratio | peak RSS MiB | ratio |")
    print("|---|---:|---:|---:|---:|")
    base = None
    for name, runs in results.items():
        wall, rss = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
        base = base or (wall, rss)
        print(f"| {name} | {wall:.2f} | {wall / base[0]:.2f} | {rss:.0f} | {rss / base[1]:.2f} |")


if __name__ == "__main__":
    main()
