#!/usr/bin/env python3
"""Two or more netrec-capture builds (or flag sets) side by side on the pinned
loopback stream, alternating run by run; prints medians as a Markdown table.

    sudo python3 bench/compare.py --stream STREAM old=/path/netrec-capture \
        new=/path/netrec-capture 'small=/path/netrec-capture@--ringbuf-size 4MiB'

A variant is NAME=BINARY[@FLAGS]. STREAM is bench/stream.c built with cc -O2.
"""
import argparse
import shutil
import statistics
import tempfile

from capture import Capture, stream
from machine import header


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stream", required=True)
    ap.add_argument("--messages", type=int, default=400_000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("variants", nargs="+")
    a = ap.parse_args()
    variants = []
    for v in a.variants:
        name, _, rest = v.partition("=")
        binary, _, flags = rest.partition("@")
        variants.append((name, binary, flags.split()))
    print(header("Capture builds side by side", "python3 bench/compare.py " + " ".join(a.variants)))
    print(f"{a.runs} alternating runs of {a.messages:,} × {a.size} B messages, both stream ends on CPU 0; medians.\n")
    results = {name: [] for name, _, _ in variants}
    for _ in range(a.runs):
        for name, binary, flags in variants:
            out = tempfile.mkdtemp()
            cap = Capture(binary, out, *flags)
            s = stream(a.stream, a.messages, a.size)
            r = cap.stop()
            r["sends_per_s"] = s["sends_per_s"]
            results[name].append(r)
            shutil.rmtree(out)
    print("| variant | sends/s | capture CPU per event (start-up included) | peak RSS | bytes per event | lost |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, rs in results.items():
        med = lambda k: statistics.median(r[k] for r in rs)
        per_event = statistics.median(r["cpu_s"] * 1e9 / r["events"] for r in rs)
        print(f"| {name} | {med('sends_per_s'):,.0f} | {per_event:,.0f} ns | {med('max_rss_kib') / 1024:.1f} MiB "
              f"| {statistics.median(r['bytes'] / r['events'] for r in rs):.2f} | {sum(r['lost'] for r in rs)} |")


if __name__ == "__main__":
    main()
