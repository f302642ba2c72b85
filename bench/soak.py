"""Soak: one capture for a long window under a steady mixed load (bench/soak_load.c).

Samples the capture's resident memory (VmRSS) and CPU time every --sample
seconds from /proc, reads each segment's own table sizes (netrec.capture_tables)
and losses from its footer, counts the kernel's socket table (bpftool) now and
then, and at the end checks the load's own per-process TCP (and UDP, once the
capture records it) byte counts against DuckDB's sums over the segments.
Prints a markdown report.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import duckdb

from capture import Capture, footer_counts, footer_values
from machine import header


def proc_status(pid):
    vals = {}
    for line in open(f"/proc/{pid}/status"):
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            vals[k] = int(v.split()[0])
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    vals["cpu_s"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return vals


def kernel_socks():
    """Entries in the capture's kernel socket table (an LRU hash: bounded by its size)."""
    maps = json.loads(subprocess.run(["bpftool", "-j", "map", "show"], capture_output=True, text=True).stdout or "[]")
    m = next((m for m in maps if m.get("name") == "socks"), None)
    if m is None:
        return None, None
    out = subprocess.run(["bpftool", "-j", "map", "dump", "id", str(m["id"])], capture_output=True, text=True).stdout
    try:
        return len(json.loads(out)), m.get("max_entries")
    except ValueError:
        return None, m.get("max_entries")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--capture", required=True)
    ap.add_argument("--load", required=True, help="the built bench/soak_load.c")
    ap.add_argument("--seconds", type=int, default=3600)
    ap.add_argument("--sample", type=int, default=10)
    ap.add_argument("--work", default=tempfile.gettempdir())
    args = ap.parse_args()

    # The commit and machine measured: the header, taken before the hour.
    head = header("Soak", f"bench/run soak ({args.seconds} s)")
    out = os.path.join(args.work, "soak-trace")
    cap = Capture(args.capture, out, "--rotate-seconds", "60")
    load = subprocess.Popen([args.load, str(args.seconds)], stdout=subprocess.PIPE, text=True)
    t0 = time.time()
    samples, socks = [], []
    next_socks = t0 + min(30, args.seconds / 2)
    while load.poll() is None:
        time.sleep(args.sample)
        s = proc_status(cap.proc.pid)
        s["t"] = time.time() - t0
        samples.append(s)
        if time.time() >= next_socks:
            socks.append((s["t"], *kernel_socks()))
            next_socks += max(args.seconds / 12, 30)
    counts = [json.loads(l) for l in load.stdout.read().splitlines() if l.strip()]
    if load.returncode != 0 or len(counts) != 2:
        sys.exit(f"soak_load failed ({load.returncode}): {counts}")
    result = cap.stop()

    tables = [json.loads(v) for v in footer_values(out, "netrec.capture_tables", "{}")]
    rss = [int(v) / 2**20 for v in footer_values(out, "netrec.capture_peak_rss_bytes")]
    lost = footer_counts(out, "netrec.lost_events_by_kind")
    untracked = sum(int(v) for v in footer_values(out, "netrec.untracked_socket_events", "0"))
    switches = sum(len(json.loads(v)) for v in footer_values(out, "netrec.data_switches", "[]"))
    db = duckdb.connect()
    got = {
        (pid, proto, kind): b
        for pid, proto, kind, b in db.execute(
            f"select pid, protocol, kind, sum(bytes) from read_parquet('{out}/*.parquet') "
            "where kind in ('send','recv') group by all"
        ).fetchall()
    }
    opens = dict(db.execute(
        f"select pid, count(*) from read_parquet('{out}/*.parquet') where kind = 'state' and new_state = 'SYN_SENT' group by pid"
    ).fetchall())
    udp_recorded = any(proto == "udp" for _, proto, _ in got)

    n = len(samples)
    quarter = [samples[i * n // 4: (i + 1) * n // 4] for i in range(4)]
    print(head)
    print(f"Load: `soak_load {args.seconds}` — 1,000 TCP requests/s on one connection (5–2004 bytes up, "
          "half back), 100 short connections/s, 250 UDP queries/s from an unconnected socket, "
          "one fork+exec a second. Capture: default flags, `--rotate-seconds 60`.\n")
    print("| window | VmRSS median (MiB) | VmRSS max (MiB) | capture CPU in window (s) |")
    print("|---|---|---|---|")
    prev_cpu = 0.0
    for i, q in enumerate(quarter):
        if not q:
            continue
        r = sorted(x["VmRSS"] / 1024 for x in q)
        print(f"| {q[0]['t'] / 60:.0f}–{q[-1]['t'] / 60:.0f} min | {r[len(r) // 2]:.1f} | {r[-1]:.1f} | "
              f"{q[-1]['cpu_s'] - prev_cpu:.1f} |")
        prev_cpu = q[-1]["cpu_s"]
    print(f"\nPeak RSS per segment (footers): first {rss[0]:.1f} MiB, last {rss[-1]:.1f} MiB, "
          f"max {max(rss):.1f} MiB over {len(rss)} segments.\n")
    print("| table | first segment | median | max | last segment |")
    print("|---|---|---|---|---|")
    for key in ("sockets", "cgroup_ids", "cgroup_pids"):
        v = [t.get(key, 0) for t in tables]
        print(f"| user space {key} | {v[0]} | {sorted(v)[len(v) // 2]} | {max(v)} | {v[-1]} |")
    ks = [k for _, k, _ in socks if k is not None]
    if ks:
        print(f"| kernel socks (LRU, {socks[0][2]} slots) | {ks[0]} | {sorted(ks)[len(ks) // 2]} | {max(ks)} | {ks[-1]} |")
    print(f"\nEvents: {result['events']:,} rows; lost {sum(lost.values())} ({lost or 'none'}); "
          f"untracked-socket events {untracked}; data switches {switches}; "
          f"{result['bytes'] / 2**20:.0f} MiB of segments.\n")
    print("| process | protocol | direction | the load's own count | capture (DuckDB sum) | equal |")
    print("|---|---|---|---|---|---|")
    ok = True
    for c in counts:
        protos = ["tcp", "udp"] if udp_recorded else ["tcp"]
        for proto in protos:
            for kind, key in (("send", f"{proto}_sent"), ("recv", f"{proto}_recv")):
                want, have = c[key], got.get((c["pid"], proto, kind), 0)
                ok &= want == have
                print(f"| {c['role']} {c['pid']} | {proto} | {kind} | {want:,} | {have:,} | {'yes' if want == have else 'NO'} |")
    conns = next(c["connections"] for c in counts if c["role"] == "client")
    have = opens.get(next(c["pid"] for c in counts if c["role"] == "client"), 0)
    ok &= conns == have
    print(f"| client | tcp | connections opened | {conns:,} | {have:,} | {'yes' if conns == have else 'NO'} |")
    if not udp_recorded:
        print("\nThis build records no UDP, so the load's UDP counts are not compared.")
    print(f"\nCapture wall time {result['wall_s']:.0f} s, CPU {result['cpu_s']:.1f} s "
          f"({100 * result['cpu_s'] / result['wall_s']:.1f} % of one CPU).")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
