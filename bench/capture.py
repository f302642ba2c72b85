#!/usr/bin/env python3
"""The measurements behind bench/run (stdlib only). Prints a Markdown report.

Every comparison alternates its variants run by run (baseline, capture, peer,
baseline, …) and reports medians, because absolute times on shared machines drift.
"""
import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from machine import header

BPF_STATS = "/proc/sys/kernel/bpf_stats_enabled"

# How netrec records sends and receives (README, --data): a row per call (the
# rate budget off, so it stays per call), per-socket aggregates, and the
# default (per call, switching to aggregates past 100,000 events/s).
MODES = [("netrec per call", ["--data-budget", "0"]), ("netrec aggregates", ["--data", "1s"]), ("netrec default", [])]


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


class Capture:
    """netrec-capture as a child: started, ready, stopped with its rusage."""

    def __init__(self, binary, out, *flags):
        self.out = out
        self.started = time.perf_counter()
        self.proc = subprocess.Popen([binary, "--output", out, *flags], stderr=subprocess.PIPE, text=True)
        self.lines = []
        for line in self.proc.stderr:
            self.lines.append(line)
            if "recording to" in line:
                return
        raise SystemExit(f"netrec-capture did not start: {''.join(self.lines)}")

    def stop(self):
        time.sleep(0.5)  # let the reader drain what is queued
        self.proc.send_signal(signal.SIGINT)
        self.lines += self.proc.stderr.readlines()
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        if self.proc.returncode != 0:
            raise SystemExit(f"netrec-capture failed: {''.join(self.lines)}")
        done = re.search(r"done: (\d+) events in \d+ segments \(\d+ kept\), (\d+) lost", "".join(self.lines))
        # Bytes on disk of the segments (not the capture's manifest beside them).
        size = sum(os.path.getsize(os.path.join(self.out, f)) for f in os.listdir(self.out) if f.endswith(".parquet"))
        recorded = footer_counts(self.out, "netrec.events_recorded_by_kind") or footer_counts(self.out, "netrec.events_by_kind")
        return {
            # Events the rows stand for: an aggregate row stands for its calls.
            "recorded": sum(recorded.values()),
            "switches": sum(len(json.loads(m)) for m in footer_values(self.out, "netrec.data_switches", "[]")),
            "wall_s": time.perf_counter() - self.started,
            "events": int(done.group(1)),
            "lost": int(done.group(2)),
            "cpu_s": usage.ru_utime + usage.ru_stime,
            # The capture's own VmHWM, from its segments: wait4's ru_maxrss
            # also counts this Python process, which the child was forked from.
            "max_rss_kib": max(int(v) for v in footer_values(self.out, "netrec.capture_peak_rss_bytes")) / 1024,
            "bytes": size,
        }


class Bpftrace:
    """bpftrace running one program, its output to a file."""

    def __init__(self, program, out):
        # bpftrace finds tracepoints through tracefs, which netrec mounts only while it runs.
        if not os.path.ismount("/sys/kernel/tracing"):
            sh("mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing")
        self.proc = subprocess.Popen(["bpftrace", "-e", program], stdout=open(out, "w"), stderr=subprocess.PIPE, text=True)
        # It says "Attaching N probes..." on stdout once attached (os.devnull: trust a running process).
        deadline = time.time() + 30
        while time.time() < deadline and self.proc.poll() is None:
            if out == os.devnull and time.time() > deadline - 25 or "Attaching" in open(out).read(4096):
                time.sleep(0.5)
                return
            time.sleep(0.1)
        raise SystemExit(f"bpftrace did not attach: {self.proc.stderr.read() if self.proc.poll() is not None else 'timeout'}")

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait()


def stream(binary, messages, size):
    # Both ends on CPU 0, the recorder's reader free to run on the others:
    # unpinned, this 2-vCPU machine's stream is bound by idle wake-ups, and any
    # recorder that keeps a CPU busy makes it faster (measured +53% with
    # netrec, +124% with bpftrace), which says nothing about overhead.
    return json.loads(sh("taskset", "-c", "0", binary, str(messages), str(size)))


def short_connections(port, n):
    """n loopback connections opened and closed at once, no data: state and RTT rows."""
    srv = socket.create_server(("127.0.0.1", port), backlog=128)
    for _ in range(n):
        c = socket.create_connection(("127.0.0.1", port))
        conn, _ = srv.accept()
        c.close()
        conn.close()
    srv.close()


def footer_values(out, key, default=None):
    """One metadata value per segment of a capture (`default` where a segment,
    of an older schema, lacks the key), so older builds compare too."""
    import pyarrow.parquet as pq

    segments = sorted(f for f in os.listdir(out) if f.endswith(".parquet"))
    metas = [pq.read_metadata(os.path.join(out, f)).metadata for f in segments]
    return [m[key.encode()].decode() if key.encode() in m else default for m in metas]


def footer_counts(out, key):
    """A per-kind count summed over a capture's segments, kinds with none left out."""
    total = {}
    for value in footer_values(out, key, "{}"):
        for k, v in json.loads(value).items():
            total[k] = total.get(k, 0) + v
    return {k: v for k, v in total.items() if v}


def events_by_kind(out):
    """Rows per kind over a capture's segments, from their footers."""
    return footer_counts(out, "netrec.events_by_kind")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_rps(port, requests):
    out = sh("redis-benchmark", "-p", str(port), "-n", str(requests), "-c", "20", "-t", "set,get", "--csv")
    rps = {}
    for line in out.splitlines():
        cells = [c.strip('"') for c in line.split(",")]
        if cells[0] in ("SET", "GET"):
            rps[cells[0]] = float(cells[1])
    return rps


def bpf_progs():
    """id -> (name, run_time_ns, run_cnt) of every loaded BPF program."""
    return {
        p["id"]: (p.get("name", "?"), p.get("run_time_ns", 0), p.get("run_cnt", 0))
        for p in json.loads(sh("bpftool", "prog", "show", "--json"))
    }


def median(xs):
    return statistics.median(xs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--capture", required=True)
    ap.add_argument("--stream", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--stream-messages", type=int, default=400000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--redis-requests", type=int, default=200000)
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args()
    n, size = a.stream_messages, a.size
    outdir = lambda: tempfile.mkdtemp(dir=a.work)  # noqa: E731
    report = []
    say = report.append

    say(header("Capture", f"bash bench/run capture{' --smoke' if a.smoke else ''}") +
        f"\n{a.runs} alternating runs, medians.")
    say("")

    # 1. Kernel cost per event, from the kernel's own BPF statistics.
    def kernel_cost(start, stop):
        """ns per run of each program that `start` loaded, over one stream."""
        existing = bpf_progs()
        handle = start()
        # The recorder's programs are the ones that appeared with it.
        before = {i: p for i, p in bpf_progs().items() if i not in existing}
        stream(a.stream, n, size)
        after = {i: p for i, p in bpf_progs().items() if i in before}
        stop(handle)
        return [(name, c1 - before[i][2], (t1 - before[i][1]) / max(1, c1 - before[i][2]))
                for i, (name, t1, c1) in sorted(after.items(), key=lambda kv: kv[1][0]) if c1 > before[i][2]]

    # What any program costs on this machine, for scale: bpftrace on the same
    # tracepoint doing nothing, counting, and one hash-map update with a clock read.
    floors = [("empty program", "{ }"), ("one per-CPU count", "{ @n = count(); }"),
              ("one hash-map update + clock read", "{ @t[tid] = nsecs; }")]
    old_stats = open(BPF_STATS).read().strip()
    with open(BPF_STATS, "w") as f:
        f.write("1")
    try:
        per_mode = [kernel_cost(lambda flags=flags: Capture(a.capture, outdir(), "--attach", "tracepoint", *flags),
                                lambda c: c.stop()) for _, flags in MODES[:2]]
        reference = []
        for label, body in ([] if a.smoke else floors):
            cost = kernel_cost(lambda body=body: Bpftrace(f"tracepoint:sock:sock_send_length {body}", os.devnull),
                               lambda bt: bt.stop())
            reference += [(f"bpftrace `{body}`: {label}", c, ns) for _, c, ns in cost]
    finally:
        with open(BPF_STATS, "w") as f:
            f.write(old_stats)
    say(f"### Kernel cost per event (tracepoints, stream of {n:,} × {size} B)")
    say("")
    say("| program | runs | ns per run, per call | ns per run, aggregates |")
    say("|---|---:|---:|---:|")
    aggregated = {name: ns for name, _, ns in per_mode[1]}
    for name, c, ns in per_mode[0]:
        agg = aggregated.get(name)
        say(f"| {name} | {c:,} | {ns:.0f} | {'' if agg is None else f'{agg:.0f}'} |")
    for name, c, ns in reference:
        say(f"| {name} | {c:,} | {ns:.0f} | |")
    say("")

    # 2. Slowdown of the stream and of redis-benchmark, alternating.
    modes = dict(MODES)
    variants = ["none", *modes] + ([] if a.smoke else ["bpftrace"])
    rates = {v: [] for v in variants}
    caps = {m: [] for m in modes}
    for _ in range(a.runs):
        for v in variants:
            if v == "none":
                rates[v].append(stream(a.stream, n, size)["sends_per_s"])
            elif v in modes:
                cap = Capture(a.capture, outdir(), *modes[v])
                s = stream(a.stream, n, size)
                rates[v].append(s["sends_per_s"])
                caps[v].append({**cap.stop(), "stream_s": s["seconds"]})
            else:
                bt = Bpftrace('tracepoint:sock:sock_send_length { printf("%d %d send %d\\n", nsecs, pid, args->ret); } '
                              'tracepoint:sock:sock_recv_length { printf("%d %d recv %d\\n", nsecs, pid, args->ret); }',
                              os.path.join(a.work, "bpftrace.out"))
                rates[v].append(stream(a.stream, n, size)["sends_per_s"])
                bt.stop()
    base = median(rates["none"])
    say(f"### Loopback stream: {n:,} sends and {n:,} receives of {size} B, both ends on CPU 0")
    say("")
    say("| recorder | sends/s (median) | vs none |")
    say("|---|---:|---:|")
    for v in variants:
        say(f"| {v} | {median(rates[v]):,.0f} | {median(rates[v]) / base - 1:+.1%} |")
    say("")
    for m in modes:
        lost = [c["lost"] for c in caps[m]]
        rows, events = median([c["events"] for c in caps[m]]), median([c["recorded"] for c in caps[m]])
        say(f"{m}: a median {rows:,.0f} rows for {events:,.0f} events per run, lost {lost}, "
            f"data switches {[c['switches'] for c in caps[m]]} (per run).")
    say("")

    port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        rr = {v: [] for v in ("none", *modes)}
        for _ in range(a.runs):
            rr["none"].append(redis_rps(port, a.redis_requests))
            for m, flags in modes.items():
                cap = Capture(a.capture, outdir(), *flags)
                rr[m].append(redis_rps(port, a.redis_requests))
                cap.stop()
    finally:
        redis.terminate()
        redis.wait()
    say(f"### redis-benchmark -n {a.redis_requests:,} -c 20 -t set,get")
    say("")
    say("| recorder | SET rps | GET rps | vs none (SET, GET) |")
    say("|---|---:|---:|---:|")
    for v in rr:
        s, g = median([r["SET"] for r in rr[v]]), median([r["GET"] for r in rr[v]])
        s0, g0 = median([r["SET"] for r in rr["none"]]), median([r["GET"] for r in rr["none"]])
        say(f"| {v} | {s:,.0f} | {g:,.0f} | {s / s0 - 1:+.1%}, {g / g0 - 1:+.1%} |")
    say("")

    # 3. User-space cost, memory and bytes on disk, from the stream captures.
    say("### User space and disk (stream captures)")
    say("")
    say("| measure | " + " | ".join(modes) + " |")
    say("|---|" + "---:|" * len(modes))
    # The same capture with no traffic for as long: start-up (BPF load,
    # verifier), polling and shutdown, which a longer capture amortizes.
    idle = []
    for _ in range(a.runs):
        cap = Capture(a.capture, outdir())
        time.sleep(max(0.0, median([c["wall_s"] for c in caps[MODES[0][0]]]) - 0.5))
        idle.append(cap.stop())
    idle_cpu = median([c["cpu_s"] for c in idle])

    def row(label, f):
        say(f"| {label} | " + " | ".join(f(caps[m]) for m in modes) + " |")

    row("capture CPU (user+sys) per event, ring buffer to closed Parquet, start-up included",
        lambda cs: f"{median([c['cpu_s'] / c['recorded'] * 1e9 for c in cs]):.0f} ns")
    row(f"the same without the CPU of an idle capture as long ({idle_cpu * 1e3:.0f} ms: BPF load, polling, shutdown)",
        lambda cs: f"{median([(c['cpu_s'] - idle_cpu) / c['recorded'] * 1e9 for c in cs]):.0f} ns")
    row("capture CPU beyond an idle capture, per second of stream (% of one CPU)",
        lambda cs: f"{median([(c['cpu_s'] - idle_cpu) / c['stream_s'] * 100 for c in cs]):.1f} %")
    row("peak RSS", lambda cs: f"{median([c['max_rss_kib'] for c in cs]) / 1024:.1f} MiB")
    row("bytes on disk per send/recv event", lambda cs: f"{median([c['bytes'] / c['recorded'] for c in cs]):.2f} B")
    say(f"| peak RSS of the idle capture | {median([c['max_rss_kib'] for c in idle]) / 1024:.1f} MiB |" + " |" * (len(modes) - 1))
    say("")

    # 4. Bytes on disk for the other kinds of rows, from workloads made of them.
    say("### Bytes on disk per event, by workload")
    say("")
    say("| workload | events by kind | bytes | bytes per event |")
    say("|---|---|---:|---:|")
    conns, procs = (200, 100) if a.smoke else (5000, 2000)
    port = free_port()
    workloads = [
        (f"stream: {n:,} × {size} B messages, a row per call", MODES[0][1], lambda: stream(a.stream, n, size)),
        (f"{conns:,} short loopback connections, no data (`--port`)", ["--port", str(port)],
         lambda: short_connections(port, conns)),
        (f"{procs:,} runs of /bin/true (`--comm true`)", ["--comm", "true"],
         lambda: [subprocess.run(["/bin/true"]) for _ in range(procs)]),
    ]
    for name, flags, work in workloads:
        out = outdir()
        cap = Capture(a.capture, out, *flags)
        work()
        c = cap.stop()
        mix = ", ".join(f"{k} {v:,}" for k, v in sorted(events_by_kind(out).items(), key=lambda kv: -kv[1]))
        say(f"| {name} | {mix} | {c['bytes']:,} | {c['bytes'] / max(1, c['events']):.2f} |")
    say("")

    # 5. Loss against ring-buffer and batch size at the stream's full rate.
    say("### Lost events at the stream's full rate, a row per call, by ring buffer and batch size")
    say("")
    say("A ring buffer too small for the rate switches data to aggregates (data switches) instead of losing it.")
    say("")
    say("| --ringbuf-size | --batch-rows | rows | data switches | lost |")
    say("|---|---:|---:|---:|---:|")
    sizes = ["256KiB", "16MiB"] if a.smoke else ["64KiB", "256KiB", "1MiB", "16MiB"]
    for rb in sizes:
        for br in ["4096", "65536"]:
            cap = Capture(a.capture, outdir(), "--ringbuf-size", rb, "--batch-rows", br, *MODES[0][1])
            stream(a.stream, n, size)
            c = cap.stop()
            say(f"| {rb} | {br} | {c['events']:,} | {c['switches']} | {c['lost']:,} |")
    say("")

    sys.stdout.write("\n".join(report) + "\n")


if __name__ == "__main__":
    main()
