#!/usr/bin/env python3
"""netrec-analyze replay's throughput and memory on synthetic traces (see BENCHMARKS.md).

For each format (json, text) and trace size, runs `netrec-analyze replay TRACE`
with its output to /dev/null as a child process, alternating sizes (small,
large, small, ...), and reports the median wall time, events per second and
the peak RSS (wait4's ru_maxrss). Memory should not grow with the trace: the
sizes differ by 5x. One extra run per size counts the lines written against
the trace's rows. Prints a Markdown section.

    python3 bench/replay.py --analyzer target/release/netrec-analyze --sizes 2M,10M --runs 3
"""
import argparse
import os
import statistics
import subprocess
import sys

from analyzer import generate, timed
from machine import header


def lines_of(cmd):
    """Lines a run writes (counted as they stream, nothing kept)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    n = sum(1 for _ in proc.stdout)
    if proc.wait() != 0:
        raise SystemExit(f"{' '.join(cmd)} failed")
    return n


def rows_in(trace):
    """Rows of a trace, from its footers (the generator's sizes are approximate)."""
    import glob

    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in glob.glob(os.path.join(trace, "*.parquet")))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--analyzer", required=True)
    p.add_argument("--traces", default="/var/tmp/netrec-bench-traces")
    p.add_argument("--sizes", default="2M,10M")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--smoke", action="store_true")
    a = p.parse_args()
    sizes = a.sizes.split(",")
    traces = {s: generate(a.traces, s, a.smoke) for s in sizes}
    devnull = open(os.devnull, "w")
    results = {}
    for fmt in ["json", "text"]:
        for _ in range(a.runs):
            for s in sizes:
                cmd = [a.analyzer, "replay", traces[s], "--format", fmt]
                results.setdefault((fmt, s), []).append(timed(cmd, stdout=devnull))
    print("## replay (smoke)\n" if a.smoke else header("replay", "bench/run replay"))
    print("| trace | format | median wall s | events/s | peak RSS MiB | lines = rows |")
    print("|---|---|---|---|---|---|")
    for (fmt, s), runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        rss = max(r[1] for r in runs)
        rows = rows_in(traces[s])
        lines = lines_of([a.analyzer, "replay", traces[s], "--format", fmt]) if fmt == "json" else None
        check = "-" if lines is None else ("yes" if lines == rows else f"NO: {lines}")
        print(f"| {s} | {fmt} | {wall:.2f} | {rows / wall / 1e6:.2f} M | {rss:.0f} | {check} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
