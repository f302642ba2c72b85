#!/usr/bin/env python3
"""Synthetic netrec traces in the real schema, for benchmarking the analyzer.

    python3 bench/gen_trace.py --events 10M --out /var/tmp/trace-10m

Writes segments exactly as netrec-capture lays them out: the columns and types
of schemas/events.json, the netrec.* footer metadata, zstd level 3, row groups
of at most 2^20 rows, delta-encoded timestamps, dictionaries elsewhere, one
segment per 60 s of trace (the capture's default --rotate-seconds).

What the trace looks like (a busy server host seen by one capture):
  - processes: a few hundred, comm from a realistic mix; a Zipf-like few own
    most connections, as nginx workers or a database do;
  - connections: 60 % accepted (server side, well-known local port), 40 %
    opened (client side, ephemeral local port), opened uniformly over the
    window; lifetimes log-normal around 200 ms after the handshake with a long tail of keep-alive
    connections up to the whole window; 1 % of connects fail, 2 % end in a reset;
  - per connection, a log-normal number of send/recv calls (median 8) spread
    over its lifetime, bytes log-normal around 400 B (1 B to 1 MiB);
  - the kernel's state transitions per role, as a real capture shows them,
    and an accept row for each accepted connection;
  - an RTT row for every tenth data call (srtt log-normal around 250 us), each
    standing for 1 to 4 srtt changes (`samples`);
    a retransmit for 0.2 % of them;
  - application calls (login_connection, dispatch_command) on the database
    processes, durations log-normal around 300 us; exec/exit rows.
Send and receive calls are about 85 % of all rows, as in the samples.

The numbers are random but reproducible (--seed). numpy and pyarrow only.
"""
import argparse
import json
import os
import re
import uuid

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SCHEMA = json.load(open(os.path.join(ROOT, "schemas", "events.json")))
KINDS = list(SCHEMA["kinds"])
ARROW_TYPES = {
    "utf8": pa.string(),
    "timestamp_ns_utc": pa.timestamp("ns", tz="UTC"),
    "uint16": pa.uint16(),
    "uint32": pa.uint32(),
    "uint64": pa.uint64(),
    "int32": pa.int32(),
    "int64": pa.int64(),
}
COMMS = ["nginx", "mysqld", "redis-server", "java", "python3", "node", "envoy", "postgres", "curl", "haproxy"]
SERVER_PORTS = {"nginx": 443, "mysqld": 3306, "redis-server": 6379, "java": 8080, "python3": 8000,
                "node": 3000, "envoy": 10000, "postgres": 5432, "curl": 0, "haproxy": 80}
DB_COMMS = ("mysqld", "postgres")
# (old, new) transitions per connection ending; the first entry is the opening.
PASSIVE = [("LISTEN", "SYN_RECV"), ("SYN_RECV", "ESTABLISHED")]
ACTIVE = [("CLOSE", "SYN_SENT"), ("SYN_SENT", "ESTABLISHED")]
CLOSE_FIN_ACTIVE = [("ESTABLISHED", "FIN_WAIT1"), ("FIN_WAIT1", "FIN_WAIT2"), ("FIN_WAIT2", "CLOSE")]
CLOSE_FIN_PASSIVE = [("ESTABLISHED", "CLOSE_WAIT"), ("CLOSE_WAIT", "LAST_ACK"), ("LAST_ACK", "CLOSE")]
CLOSE_RESET = [("ESTABLISHED", "CLOSE")]
CONNECT_FAILED = [("CLOSE", "SYN_SENT"), ("SYN_SENT", "CLOSE")]
STATES = sorted({s for seq in (PASSIVE, ACTIVE, CLOSE_FIN_ACTIVE, CLOSE_FIN_PASSIVE) for t in seq for s in t})


def count(text):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmM]?)", text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r}: a count such as 500000, 10M or 2.5k")
    return int(float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6}[m.group(2).lower()])


def lognormal(rng, median, sigma, n, lo, hi):
    return np.clip(rng.lognormal(np.log(median), sigma, n), lo, hi)


class Trace:
    """All rows of the trace as parallel numpy columns (strings as codes)."""

    def __init__(self, events, rate, seed):
        rng = np.random.default_rng(seed)
        self.start_ns = 1_795_000_000_000_000_000  # 2026-11-18, a fixed origin keeps runs comparable
        window_ns = int(events / rate * 1e9)
        self.window_ns = window_ns

        # Processes.
        n_proc = max(20, min(400, events // 25_000))
        comm_of_proc = rng.choice(len(COMMS), n_proc, p=[.25, .1, .1, .12, .12, .1, .06, .05, .05, .05])
        pids = rng.choice(np.arange(1000, 4_000_000), n_proc, replace=False).astype(np.uint32)
        weight = 1.0 / np.arange(1, n_proc + 1) ** 1.1
        weight /= weight.sum()

        # Connections: ~ 80 rows each on average (data dominates).
        n_conn = max(10, events // 80)
        owner = rng.choice(n_proc, n_conn, p=weight)
        comm_idx = comm_of_proc[owner]
        server_port = np.array([SERVER_PORTS[c] for c in COMMS])[comm_idx]
        passive = (rng.random(n_conn) < 0.6) & (server_port > 0)
        fate = rng.random(n_conn)
        failed = ~passive & (fate < 0.01)
        reset = ~failed & (fate > 0.98)
        open_ns = rng.integers(0, window_ns, n_conn)
        life_ns = lognormal(rng, 200e6, 2.0, n_conn, 50e3, window_ns).astype(np.int64)
        handshake_ns = lognormal(rng, 150e3, 0.8, n_conn, 10e3, 50e6).astype(np.int64)
        close_ns = open_ns + handshake_ns + life_ns
        still_open = close_ns >= window_ns  # the capture ends before they close
        ephemeral = rng.integers(32768, 61000, n_conn).astype(np.uint16)
        remote_port = np.where(passive, ephemeral, rng.choice([3306, 6379, 5432, 443, 8080, 9092], n_conn))
        local_port = np.where(passive, server_port, ephemeral).astype(np.uint16)
        remote_addr = rng.integers(0, 2000, n_conn)

        rows = []  # (conn, kind, t, extra...) groups appended as dicts of arrays

        # State transitions.
        def transitions(mask, seq, t0, t1):
            idx = np.flatnonzero(mask)
            for k, (old, new) in enumerate(seq):
                frac = k / max(1, len(seq) - 1)
                t = t0[idx] + ((t1[idx] - t0[idx]) * frac).astype(np.int64)
                rows.append(dict(conn=idx, kind=KINDS.index("state"), t=t,
                                 old=np.full(len(idx), STATES.index(old)), new=np.full(len(idx), STATES.index(new))))

        est_ns = open_ns + handshake_ns
        transitions(passive & ~failed, PASSIVE, open_ns, est_ns)
        transitions(~passive & ~failed, ACTIVE, open_ns, est_ns)
        transitions(failed, CONNECT_FAILED, open_ns, est_ns)
        closing = ~failed & ~still_open
        fin_ns = np.maximum(close_ns - 40_000, est_ns + 1)
        transitions(closing & ~reset & passive, CLOSE_FIN_PASSIVE, fin_ns, close_ns)
        transitions(closing & ~reset & ~passive, CLOSE_FIN_ACTIVE, fin_ns, close_ns)
        transitions(closing & reset, CLOSE_RESET, close_ns, close_ns)
        # An accept row per accepted connection, just after its handshake, as
        # the capture writes one: the analyzers hand the handshake's rows to it.
        accepted = np.flatnonzero(passive & ~failed)
        rows.append(dict(conn=accepted, kind=KINDS.index("accept"), t=est_ns[accepted] + 20_000))

        # Data calls on established connections, inside their lifetime.
        used = sum(len(r["conn"]) for r in rows)
        n_proc_rows = max(2, events // 2000) * 2
        n_calls = events // 50
        budget = events - used - n_proc_rows - n_calls
        # Data calls, RTT rows (1 per 10 calls) and retransmits share the budget.
        n_data = int(budget / 1.102)
        alive = np.flatnonzero(~failed)
        share = lognormal(rng, 8, 1.5, len(alive), 1, 1e6)
        per_conn = np.floor(share / share.sum() * n_data).astype(np.int64)
        per_conn[: n_data - per_conn.sum()] += 1
        conn = np.repeat(alive, per_conn)
        end = np.minimum(close_ns, window_ns - 1)
        t = est_ns[conn] + (rng.random(len(conn)) * (end[conn] - est_ns[conn])).astype(np.int64)
        is_send = rng.random(len(conn)) < 0.5
        nbytes = lognormal(rng, 400, 1.8, len(conn), 1, 1 << 20).astype(np.uint64)
        rows.append(dict(conn=conn, kind=np.where(is_send, KINDS.index("send"), KINDS.index("recv")), t=t, bytes=nbytes))
        pick = rng.random(len(conn))
        rtt = pick < 0.1
        rows.append(dict(conn=conn[rtt], kind=KINDS.index("rtt"), t=t[rtt] + 5_000,
                         srtt=lognormal(rng, 250, 1.0, int(rtt.sum()), 5, 2e6).astype(np.uint32)))
        retr = pick > 0.998
        rows.append(dict(conn=conn[retr], kind=KINDS.index("retransmit"), t=t[retr] + 200_000))

        self.conn_cols = dict(pid=pids[owner], comm=comm_idx, lport=local_port, rport=remote_port.astype(np.uint16),
                              raddr=remote_addr, sock_id=np.arange(1, n_conn + 1, dtype=np.uint64))

        # Application calls on database processes (or any, if none).
        db = np.flatnonzero(np.isin(comm_of_proc, [COMMS.index(c) for c in DB_COMMS]))
        callers = db if len(db) else np.arange(n_proc)
        who = rng.choice(callers, n_calls)
        dur = lognormal(rng, 300e3, 1.2, n_calls, 1e3, 5e9).astype(np.uint64)
        unfinished = rng.random(n_calls) < 0.001
        self.call_rows = dict(t=rng.integers(0, window_ns, n_calls), pid=pids[who], comm=comm_of_proc[who],
                              probe=(rng.random(n_calls) < 0.3).astype(np.int8), dur=dur, unfinished=unfinished)

        # exec/exit of short helper processes.
        half = n_proc_rows // 2
        t_exec = rng.integers(0, window_ns - 1_000_000, half)
        self.proc_rows = dict(t=np.concatenate([t_exec, t_exec + lognormal(rng, 5e6, 1, half, 1e5, 1e9).astype(np.int64)]),
                              kind=np.repeat([KINDS.index("exec"), KINDS.index("exit")], half),
                              pid=np.tile(rng.integers(4_000_000, 4_100_000, half).astype(np.uint32), 2))

        # One table of socket rows, sorted by time as the capture writes them.
        def column(r, k):
            n = len(r["conn"])
            return np.broadcast_to(r[k], n) if k in r else np.full(n, -1)
        self.sock = {k: np.concatenate([column(r, k) for r in rows]) for k in ("conn", "kind", "t", "old", "new", "bytes", "srtt")}
        order = np.argsort(self.sock["t"], kind="stable")
        self.sock = {k: v[order] for k, v in self.sock.items()}

    def segments(self, every_ns):
        """(start, end, table) per segment window."""
        bounds = np.arange(0, self.window_ns + every_ns, every_ns)
        for a, b in zip(bounds[:-1], bounds[1:]):
            yield self.start_ns + a, self.start_ns + min(b, self.window_ns), self.table(a, b)

    def table(self, a, b):
        s = self.sock
        lo, hi = np.searchsorted(s["t"], [a, b])
        sl = slice(lo, hi)
        conn, kind, t = s["conn"][sl], s["kind"][sl], s["t"][sl]
        cc = {k: v[conn] for k, v in self.conn_cols.items()}
        n = hi - lo
        cm = (self.call_rows["t"] >= a) & (self.call_rows["t"] < b)
        pm = (self.proc_rows["t"] >= a) & (self.proc_rows["t"] < b)
        calls = {k: v[cm] for k, v in self.call_rows.items()}
        procs = {k: v[pm] for k, v in self.proc_rows.items()}
        nc, npr = int(cm.sum()), int(pm.sum())

        def codes(values, vocab, null_mask=None):
            arr = pa.DictionaryArray.from_arrays(pa.array(values, pa.int32(), mask=null_mask), pa.array(vocab))
            return arr.cast(pa.string())

        def opt(values, dtype, valid):
            return pa.array(values, dtype, mask=~valid)

        is_state = np.concatenate([kind == KINDS.index("state"), np.zeros(nc + npr, bool)])
        data = np.concatenate([(kind == KINDS.index("send")) | (kind == KINDS.index("recv")), np.zeros(nc + npr, bool)])
        is_rtt = np.concatenate([kind == KINDS.index("rtt"), np.zeros(nc + npr, bool)])
        sockrow = np.concatenate([np.ones(n, bool), np.zeros(nc + npr, bool)])
        callrow = np.concatenate([np.zeros(n, bool), np.ones(nc, bool), np.zeros(npr, bool)])
        procrow = np.concatenate([np.zeros(n + nc, bool), np.ones(npr, bool)])
        ts = np.concatenate([t, calls["t"], procs["t"]])
        pid = np.concatenate([cc["pid"], calls["pid"], procs["pid"]])
        comm = np.concatenate([cc["comm"], calls["comm"], np.full(npr, COMMS.index("curl"))])
        kinds = np.concatenate([kind, np.full(nc, KINDS.index("call")), procs["kind"]])
        pad = np.zeros(nc + npr, np.int64)
        state_old = np.concatenate([s["old"][sl], pad]).clip(0)
        state_new = np.concatenate([s["new"][sl], pad]).clip(0)
        order = np.argsort(ts, kind="stable")  # calls and processes interleave with socket rows

        raddr_vocab = [f"10.{i // 250}.{i % 250}.{(i * 7) % 250 + 1}" for i in range(2000)]
        cols = {
            "kind": codes(kinds, KINDS),
            "ts": pa.array(self.start_ns + ts, pa.timestamp("ns", tz="UTC")),
            "ts_kernel_ns": pa.array((ts + 86_400_000_000_000).astype(np.uint64), pa.uint64()),
            "pid": pa.array(pid, pa.uint32()),
            "tid": pa.array(pid, pa.uint32()),
            "comm": codes(comm, COMMS),
            # One systemd unit per command (its v2 id is the unit's directory inode; made up here).
            "cgroup_id": pa.array((1000 + comm).astype(np.uint64), pa.uint64()),
            "cgroup": codes(comm, [f"/system.slice/{c}.service" for c in COMMS]),
            "ppid": opt(np.ones(len(ts), np.uint32), pa.uint32(), procrow),
            "sock_id": opt(np.concatenate([cc["sock_id"], pad.astype(np.uint64)]), pa.uint64(), sockrow),
            "family": codes(np.zeros(len(ts), np.int32), ["ipv4"], ~sockrow),
            "protocol": codes(np.zeros(len(ts), np.int32), ["tcp"], ~sockrow),
            "laddr": codes(np.zeros(len(ts), np.int32), ["10.0.0.5"], ~sockrow),
            "lport": opt(np.concatenate([cc["lport"], pad.astype(np.uint16)]), pa.uint16(), sockrow),
            "raddr": codes(np.concatenate([cc["raddr"], pad]), raddr_vocab, ~sockrow),
            "rport": opt(np.concatenate([cc["rport"], pad.astype(np.uint16)]), pa.uint16(), sockrow),
            "bytes": opt(np.concatenate([s["bytes"][sl], pad]).clip(0).astype(np.uint64), pa.uint64(), data),
            "old_state": codes(state_old, STATES, ~is_state),
            "new_state": codes(state_new, STATES, ~is_state),
            "srtt_us": opt(np.concatenate([s["srtt"][sl], pad]).clip(0).astype(np.uint32), pa.uint32(), is_rtt),
            "filename": codes(np.zeros(len(ts), np.int32), ["/usr/bin/curl"], ~(procrow & (kinds == KINDS.index("exec")))),
            "exit_status": opt(np.zeros(len(ts), np.int32), pa.int32(), procrow & (kinds == KINDS.index("exit"))),
            "probe": codes(np.concatenate([np.zeros(n, np.int8), calls["probe"], np.zeros(npr, np.int8)]),
                           ["dispatch_command", "login_connection"], ~callrow),
            "duration_ns": opt(np.concatenate([np.zeros(n, np.uint64), calls["dur"], np.zeros(npr, np.uint64)]), pa.uint64(),
                               callrow & ~np.concatenate([np.zeros(n, bool), calls["unfinished"], np.zeros(npr, bool)])),
            "depth": opt(np.zeros(len(ts), np.uint32), pa.uint32(), callrow),
            "arg0": opt(np.zeros(len(ts), np.int64), pa.int64(), callrow),
            "arg1": opt(np.zeros(len(ts), np.int64), pa.int64(), callrow),
            "arg2": opt(np.zeros(len(ts), np.int64), pa.int64(), callrow),
            "retval": opt(np.zeros(len(ts), np.int64), pa.int64(), callrow),
            # Each rtt row stands for a run of 1 to 4 srtt changes (from its value: the seeded stream stays the same).
            "samples": opt((1 + np.concatenate([s["srtt"][sl], pad]).clip(0) % 4).astype(np.uint32), pa.uint32(), is_rtt),
        }
        schema = pa.schema([pa.field(c["name"], ARROW_TYPES[c["type"]], c["nullable"]) for c in SCHEMA["columns"]])
        idx = pa.array(order)
        return pa.Table.from_arrays([cols[f.name].take(idx) for f in schema], schema=schema)


def metadata(table, index, start_ns, end_ns, capture_id, argv, host="bench-host"):
    kinds = table.column("kind").value_counts().to_pylist()
    by_kind = {k: 0 for k in KINDS}
    by_kind.update({d["values"]: d["counts"] for d in kinds})
    iso = lambda ns: np.datetime_as_string(np.datetime64(int(ns), "ns"), unit="ns") + "Z"
    meta = {
        "netrec.schema_version": str(SCHEMA["version"]),
        "netrec.version": "synthetic",
        "netrec.capture_id": capture_id,
        "netrec.hostname": host,
        "netrec.kernel_release": "synthetic",
        "netrec.boot_id": "00000000-0000-0000-0000-000000000000",
        "netrec.clock_offset_ns": str(start_ns - 86_400_000_000_000),
        "netrec.command_line": json.dumps(argv),
        "netrec.segment_index": str(index),
        "netrec.segment_start": iso(start_ns),
        "netrec.segment_end": iso(end_ns),
        "netrec.events": str(table.num_rows),
        "netrec.events_by_kind": json.dumps(by_kind),
        "netrec.lost_events": "0",
        "netrec.lost_events_by_kind": json.dumps({k: 0 for k in KINDS}),
        "netrec.untracked_socket_events": "0",
        "netrec.mechanisms": json.dumps({"synthetic": "bench/gen_trace.py"}),
        "netrec.filters": json.dumps({"cgroup": None, "comm": None, "pid": [], "port": []}),
        "netrec.probes": json.dumps([{"probe": p, "type": "uprobe", "spec": f"mysqld:{p}"} for p in ("dispatch_command", "login_connection")]),
    }
    # The keys come from the one definition (schemas/events.json "metadata").
    unknown = set(meta) - set(SCHEMA["metadata"])
    assert not unknown, f"not in schemas/events.json: {unknown}"
    return meta


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="example: python3 bench/gen_trace.py --events 10M --out /var/tmp/trace-10m")
    p.add_argument("--events", type=count, required=True, help="rows in the trace (10M, 50M, 200k)")
    p.add_argument("--out", required=True, help="directory for the segments (created; must be empty)")
    p.add_argument("--rate", type=count, default=20_000, help="events per second of trace time [20k]")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--host", default="bench-host", help="netrec.hostname of the segments [bench-host]")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    if os.listdir(a.out):
        p.error(f"--out {a.out}: not empty")
    trace = Trace(a.events, a.rate, a.seed)
    capture_id = uuid.UUID(int=a.seed).hex
    dictionary = [c["name"] for c in SCHEMA["columns"] if c["name"] not in ("ts", "ts_kernel_ns")]
    total = 0
    for i, (start, end, table) in enumerate(trace.segments(60_000_000_000)):
        meta = metadata(table, i, start, end, capture_id, ["gen_trace.py", "--events", str(a.events), "--seed", str(a.seed)],
                        a.host)
        table = table.replace_schema_metadata(meta)
        path = os.path.join(a.out, f"netrec-{'bench' if a.host == 'bench-host' else a.host}-{i:05d}.parquet")
        pq.write_table(table, path, compression="zstd", compression_level=3, row_group_size=1 << 20,
                       use_dictionary=dictionary, column_encoding={"ts": "DELTA_BINARY_PACKED", "ts_kernel_ns": "DELTA_BINARY_PACKED"})
        total += table.num_rows
    print(f"{total} events in {i + 1} segments in {a.out}")


if __name__ == "__main__":
    main()
