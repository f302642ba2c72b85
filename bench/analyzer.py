#!/usr/bin/env python3
"""netrec-analyze against DuckDB on the same synthetic traces (see BENCHMARKS.md).

For each trace size and each of netio, churn and latency, runs netrec-analyze and
the equivalent SQL (schemas/sql/duckdb.sql) in DuckDB's Python package as child
processes, alternating (netrec, duckdb, netrec, …), and reports the median wall
time and the peak RSS (wait4's ru_maxrss) of each, then checks that both computed
the same numbers. Prints a Markdown section.

    python3 bench/analyzer.py --analyzer target/release/netrec-analyze --sizes 10M,50M --runs 3
    python3 bench/analyzer.py --analyzer target/debug/netrec-analyze --check samples/nginx-keepalive

--check TRACE... only compares the numbers (no timing) on existing traces of any
number of hosts and captures (the tests run it on the samples).
"""
import argparse
import csv
import hashlib
import json
import os
import resource
import re
import shutil
import statistics
import subprocess
import sys
import time

from machine import header

HERE = os.path.dirname(os.path.abspath(__file__))
METRICS = ["netio", "churn", "latency"]
SHORT_NS = 100_000_000  # netrec-analyze churn's default --short 100ms


SCHEMA = json.load(open(os.path.join(HERE, "..", "schemas", "events.json")))
DUCKDB_TYPES = {"utf8": "VARCHAR", "uint16": "USMALLINT", "uint32": "UINTEGER", "uint64": "UBIGINT", "int32": "INTEGER", "int64": "BIGINT"}


def sql_blocks(dialect="duckdb"):
    """The `-- name:` blocks of schemas/sql/<dialect>.sql."""
    text = open(os.path.join(HERE, "..", "schemas", "sql", f"{dialect}.sql")).read()
    parts = re.split(r"^-- name: (\w+)\n", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


# What {by} in schemas/sql/duckdb.sql stands for, per netrec-analyze --by.
BY_SQL = {"pid": "host, pid, first(comm) FILTER (comm IS NOT NULL) AS comm", "host": "host", "comm": "comm"}


def duckdb_child(metric, segments, out, view="one", by="pid"):
    """Runs one metric's SQL (the child process whose time and memory are measured).

    view "one": a generated trace, one capture, whose host and capture id are
    constants; "any": segments of any hosts and captures, named from each
    file's footer (schemas/sql/duckdb.sql's header)."""
    import duckdb

    con = duckdb.connect()
    if view == "one":
        con.execute(f"CREATE VIEW events AS SELECT *, epoch_ns(ts) AS ts_ns, 'bench-host' AS host, '' AS capture_id "
                    f"FROM read_parquet('{segments}/*.parquet')")
    else:
        files = f"{segments}/**/*.parquet"
        con.execute(f"""CREATE VIEW seg AS SELECT file_name AS segment_file,
                            max(decode(value)) FILTER (decode(key) = 'netrec.hostname') AS host,
                            max(decode(value)) FILTER (decode(key) = 'netrec.capture_id') AS capture_id
                        FROM parquet_kv_metadata('{files}') GROUP BY ALL""")
        # Columns added after version 1 are missing from older segments: a union by
        # name with an empty relation of them reads them as nulls there.
        later = ", ".join(f"NULL::{DUCKDB_TYPES[c['type']]} AS {c['name']}" for c in SCHEMA["columns"] if c.get("since", 1) > 1)
        con.execute(f"""CREATE VIEW events AS SELECT e.*, epoch_ns(e.ts) AS ts_ns, seg.host, seg.capture_id
                        FROM (SELECT {later} WHERE false UNION ALL BY NAME
                              SELECT * FROM read_parquet('{files}', filename = 'segment_file', hive_partitioning = false,
                                                         union_by_name = true)) e
                        JOIN seg USING (segment_file)""")
    blocks = sql_blocks()
    if "state_rows" in blocks[metric] or "conns" in blocks[metric]:
        con.execute(blocks["connections"])
    con.execute(blocks[metric].format(out=out, short_ns=SHORT_NS, by=BY_SQL[by]))


def timed(cmd, stdout=subprocess.DEVNULL):
    """Wall seconds and peak RSS (MiB) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {err}")
    return wall, usage.ru_maxrss / 1024


def kept(traces, name, what, smoke, make):
    """A generated trace, made once by `make(path)` and kept, keyed by the generator's hash."""
    gen = os.path.join(HERE, "gen_trace.py")
    digest = hashlib.sha256(open(gen, "rb").read()).hexdigest()[:12]
    path = os.path.join(traces, f"{name}-{digest}")
    if not os.path.exists(os.path.join(path, ".complete")):
        shutil.rmtree(path, ignore_errors=True)
        t0 = time.perf_counter()
        make(gen, path)
        open(os.path.join(path, ".complete"), "w").close()
        if not smoke:
            print(f"<!-- generated {what} in {time.perf_counter() - t0:.0f} s: {path} -->")
    return path


def generate(traces, size, smoke):
    """The trace of `size` events."""
    def make(gen, path):
        subprocess.run([sys.executable, gen, "--events", size, "--out", path], check=True, stdout=subprocess.DEVNULL)

    return kept(traces, size, f"{size} events", smoke, make)


def generate_fleet(traces, spec, smoke):
    """`HOSTSxSIZE` (10x2M): that many hosts' traces of SIZE events each, in one
    tree (a directory per host), each host its own seed."""
    hosts, size = spec.split("x")

    def make(gen, path):
        for i in range(int(hosts)):
            subprocess.run([sys.executable, gen, "--events", size, "--seed", str(i + 1), "--host", f"host-{i:02d}",
                            "--out", os.path.join(path, f"host-{i:02d}")], check=True, stdout=subprocess.DEVNULL)

    return kept(traces, f"fleet-{spec}", f"{hosts} hosts x {size} events", smoke, make)


# --- the two sides' results, as comparable Python values -------------------------

def rfc3339_ns(text):
    """'2026-11-18T07:33:20Z' -> ns since the epoch (whole seconds, as netio prints them)."""
    import datetime

    t = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    return int(t.timestamp()) * 1_000_000_000


def netrec_rows(path, first):
    rows = [json.loads(line) for line in open(path)]
    return [r for r in rows if first in r]


def rows_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def num(v):
    return None if v in ("", None) else int(v)


def pcts(text):
    return [int(x) for x in text.strip("[]").split(",")]


def row_key(netrec_out, by):
    """A row's key in both sides' rows: for --by pid (host, pid) where
    netrec-analyze splits by host (a trace of several hosts), else (None, pid);
    the host or the comm for --by host and --by comm."""
    if by != "pid":
        return lambda r: r.get(by) or None
    multi = any("host" in r for r in netrec_rows(netrec_out, "pid"))
    return lambda r: (r["host"] if multi else None, num(r["pid"]) if isinstance(r["pid"], str) else r["pid"])


def check_netio(netrec_out, duck, by="pid"):
    p = row_key(netrec_out, by)
    comm = (lambda r: r.get("comm") or None) if by == "pid" else (lambda r: None)
    proto = lambda r: r.get("protocol") or None  # noqa: E731
    a = {(rfc3339_ns(r["time"]), p(r), proto(r)): (comm(r), r["sent_bytes"], r["recv_bytes"])
         for r in netrec_rows(netrec_out, "time")}
    b = {(int(r["second"]), p(r), proto(r)): (comm(r), int(r["sent_bytes"]), int(r["recv_bytes"]))
         for r in rows_csv(f"{duck}/netio.csv")}
    return compare(f"netio rows (second, {KEY_NAME[by]}, protocol)", a, b)


def check_churn(netrec_out, duck, by="pid"):
    cols = ["opened_active", "opened_passive", "closed", "failed", "resets"]
    p = row_key(netrec_out, by)
    a = {(rfc3339_ns(r["time"]), p(r)): tuple(r[c] for c in cols) + (r["short_lived"],) for r in netrec_rows(netrec_out, "time")}
    short = {(int(r["second"]), p(r)): int(r["short_lived"]) for r in rows_csv(f"{duck}/churn_short.csv")}
    b = {}
    for r in rows_csv(f"{duck}/churn.csv"):
        key = (int(r["second"]), p(r))
        b[key] = tuple(int(r[c]) for c in cols) + (short.pop(key, 0),)
    for key, n in short.items():  # short-lived closes in a second with no other transition
        b[key] = (0, 0, 0, 0, 0, n)
    ok, why = compare(f"churn rows (second, {KEY_NAME[by]})", a, b)
    life = [r for r in netrec_rows(netrec_out, "metric") if r["metric"] == "lifetime"][0]
    lt = rows_csv(f"{duck}/churn_lifetime.csv")[0]
    mine = (life["count"], life["still_open"], [life[k] for k in ("p50_us", "p90_us", "p99_us", "p999_us")], life["max_us"],
            {b["le_us"]: b["count"] for b in life["buckets"] if b["count"]})
    theirs = (int(lt["count"]), int(lt["still_open"]), pcts(lt["percentiles_us"]), int(lt["max_us"]),
              {(1 << int(r["bucket"])) - 1: int(r["count"]) for r in rows_csv(f"{duck}/churn_buckets.csv")})
    if mine != theirs:
        return False, f"{why}; lifetime differs: netrec {mine[:4]} duckdb {theirs[:4]}"
    return ok, f"{why}; lifetime of {mine[0]} connections: same percentiles and buckets"


def check_latency(netrec_out, duck, by="pid"):
    p = row_key(netrec_out, by)
    a = {}
    for r in netrec_rows(netrec_out, "metric"):
        a[(r["metric"], p(r))] = (r["count"], [r[k] for k in ("p50_us", "p90_us", "p99_us", "p999_us")], r["max_us"],
                                  {b["le_us"]: b["count"] for b in r["buckets"] if b["count"]})
    b = {}
    buckets = {}
    for r in rows_csv(f"{duck}/latency_buckets.csv"):
        buckets.setdefault((r["metric"], p(r)), {})[(1 << int(r["bucket"])) - 1] = int(r["count"])
    for r in rows_csv(f"{duck}/latency.csv"):
        key = (r["metric"], p(r))
        b[key] = (int(r["count"]), pcts(r["percentiles_us"]), int(r["max_us"]), buckets[key])
    samples = sum(v[0] for v in a.values())
    ok, why = compare(f"latency rows (metric, {KEY_NAME[by]})", a, b)
    return ok, f"{why}, {samples} samples"


KEY_NAME = {"pid": "process", "host": "host", "comm": "comm"}


def compare(what, a, b):
    if a == b:
        return True, f"{len(a)} {what} identical"
    only_a, only_b = a.keys() - b.keys(), b.keys() - a.keys()
    diff = [k for k in a.keys() & b.keys() if a[k] != b[k]]
    example = diff[0] if diff else None
    return False, (f"{what} differ: {len(only_a)} only in netrec, {len(only_b)} only in duckdb, {len(diff)} with other values"
                   + (f" (e.g. {example}: netrec {a[example]} duckdb {b[example]})" if example else ""))


def check_calls(netrec_out, duck, by="probe"):
    cols = ["calls", "unfinished", "tcp_opens"]
    a = {(rfc3339_ns(r["time"]), r["probe"]): tuple(r[c] for c in cols) for r in netrec_rows(netrec_out, "time")}
    b = {(int(r["second"]), r["probe"] or None): tuple(int(r[c]) for c in cols) for r in rows_csv(f"{duck}/calls.csv")}
    return compare("calls rows (second, probe)", a, b)


CHECKS = {"netio": check_netio, "churn": check_churn, "latency": check_latency, "calls": check_calls}


def check_only(analyzer, traces, metrics, work, engines):
    """netrec-analyze and the SQL (DuckDB's, Spark's) on existing traces: one line
    per trace, metric and engine; exit 1 on a difference."""
    jobs = []
    for trace in traces:
        for metric in metrics:
            base = os.path.join(work, f"{os.path.basename(os.path.normpath(trace))}-{metric}")
            os.makedirs(base, exist_ok=True)
            netrec_out = os.path.join(base, "netrec.jsonl")
            with open(netrec_out, "w") as f:
                subprocess.run([analyzer, metric, trace, "--format", "json"], stdout=f, check=True)
            for engine in engines:
                out = os.path.join(base, engine)
                os.makedirs(out, exist_ok=True)
                jobs.append((trace, metric, engine, netrec_out, out))
    for trace, metric, engine, _, out in jobs:
        if engine == "duckdb":
            duckdb_child(metric, trace, out, view="any")
    if "spark" in engines:
        import spark

        spark.run([(m, t, o) for t, m, e, _, o in jobs if e == "spark"], SHORT_NS)
    failures = 0
    for trace, metric, engine, netrec_out, out in jobs:
        ok, why = CHECKS[metric](netrec_out, out)
        failures += not ok
        print(f"{trace} {metric} {engine}: {'same' if ok else 'DIFFERENT'}: {why}")
    sys.exit(1 if failures else 0)


def main():
    if len(sys.argv) in (5, 6, 7) and sys.argv[1] == "--duckdb-child":
        return duckdb_child(*sys.argv[2:])
    if len(sys.argv) == 6 and sys.argv[1] == "--check-child":
        metric, netrec_out, out, by = sys.argv[2:]
        return print(json.dumps(CHECKS[metric](netrec_out, out, by)))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--analyzer", required=True, help="the netrec-analyze binary to measure")
    p.add_argument("--traces", default="/var/tmp/netrec-bench-traces", help="where generated traces are kept between runs")
    p.add_argument("--work", required=True, help="a scratch directory for outputs")
    p.add_argument("--sizes", default="10M,50M")
    p.add_argument("--fleet", default="", help="also a fleet of HOSTSxSIZE (10x2M): the SQL over every footer")
    p.add_argument("--fleet-by", default="pid,host,comm", help="the fleet's splits: pid (per process of each host), host, comm (across hosts)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--metrics", default=None, help="which of netio,churn,latency to measure (--check: and calls)")
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--check", nargs="+", metavar="TRACE", help="only compare the numbers on these traces")
    p.add_argument("--engines", default="duckdb", help="--check: duckdb, spark or duckdb,spark")
    a = p.parse_args()
    metrics = a.metrics.split(",") if a.metrics else list(CHECKS) if a.check else METRICS
    if unknown := [m for m in metrics if m not in CHECKS]:
        p.error(f"--metrics: unknown {', '.join(unknown)} (expected some of {', '.join(CHECKS)})")

    if a.check:
        return check_only(a.analyzer, a.check, metrics, a.work, a.engines.split(","))

    # This process stays small: a child started by vfork and exec (as
    # subprocess does) starts with its parent's peak RSS as its own (Linux
    # keeps the old address space's high-water mark across exec). The checks,
    # which load whole outputs, and DuckDB itself run in children.
    duckdb_version = subprocess.check_output([sys.executable, "-c", "import duckdb; print(duckdb.__version__)"], text=True).strip()

    command = f"bash bench/run analyzer{' --smoke' if a.smoke else ''}"
    if metrics != METRICS or (not a.smoke and (a.sizes, a.fleet, a.fleet_by) != ("10M,50M", "10x20M", "pid,host,comm")):
        command = (f"python3 bench/analyzer.py --sizes '{a.sizes}' --fleet '{a.fleet}' --fleet-by '{a.fleet_by}' "
                   f"--runs {a.runs} --metrics {','.join(metrics)}")  # a partial run by hand
    print(header("Analyzer against DuckDB", command))
    print(f"netrec-analyze `{a.analyzer}` against DuckDB {duckdb_version} (Python package) running "
          f"schemas/sql/duckdb.sql; {a.runs} alternating runs each, medians; peak RSS from wait4.\n")
    base_wall, base_rss = timed([sys.executable, "-c", "import duckdb; duckdb.connect().execute('select 1')"])
    print(f"Baseline of the DuckDB side (python3 + import duckdb, no query): {base_rss:.0f} MiB RSS, {base_wall:.2f} s; "
          f"this runner's own peak RSS, a floor under every child's: "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB.\n")
    print("| events | metric | netrec s | duckdb s | time netrec/duckdb | netrec MiB | duckdb MiB | memory netrec/duckdb | same numbers |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---|")
    failures = []
    cases = [(size, generate(a.traces, size, a.smoke), "one", ["pid"]) for size in a.sizes.split(",") if size]
    cases += [(spec, generate_fleet(a.traces, spec, a.smoke), "any", a.fleet_by.split(",")) for spec in a.fleet.split(",") if spec]
    for size, trace, view, bys in cases:
        for metric, by in [(m, b) for b in bys for m in metrics]:
            mine, theirs = [], []
            out = os.path.join(a.work, f"{size}-{metric}-{by}")
            os.makedirs(out, exist_ok=True)
            netrec_out = os.path.join(out, "netrec.jsonl")
            for _ in range(a.runs):
                with open(netrec_out, "w") as f:
                    mine.append(timed([a.analyzer, metric, trace, "--by", by, "--format", "json"], stdout=f))
                theirs.append(timed([sys.executable, os.path.abspath(__file__), "--duckdb-child", metric, trace, out, view, by]))
            ok, why = json.loads(subprocess.check_output(
                [sys.executable, os.path.abspath(__file__), "--check-child", metric, netrec_out, out, by]))
            if not ok:
                failures.append(f"{size} {metric} --by {by}: {why}")
            if by != "pid":
                metric = f"{metric} --by {by}"
            tm, td = statistics.median(w for w, _ in mine), statistics.median(w for w, _ in theirs)
            mm, md = statistics.median(r for _, r in mine), statistics.median(r for _, r in theirs)
            print(f"| {size} | {metric} | {tm:.2f} | {td:.2f} | {tm / td:.2f} | {mm:.0f} | {md:.0f} | {mm / md:.2f} | "
                  f"{'yes' if ok else '**NO**'}: {why} |")
            sys.stdout.flush()
    print()
    if failures:
        print("netrec-analyze and DuckDB disagree:\n" + "\n".join(f"- {f}" for f in failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
