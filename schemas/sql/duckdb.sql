-- What netrec-analyze computes, as DuckDB SQL over the same segments, defined
-- once: schemas/README.md documents it for DuckDB users, bench/analyzer.py times
-- netrec-analyze against it and checks its numbers with it, and the tests run it
-- on the shipped samples and a trace of several hosts (tests/analyze/sql.rs).
--
-- Each `-- name:` block reads a view `events`: the segments, with `ts_ns` (ns
-- since the epoch) and `host` and `capture_id` (the segment's netrec.hostname and
-- netrec.capture_id). For segments of any number of captures:
--
--   CREATE VIEW seg AS
--       SELECT file_name AS segment_file,
--              max(decode(value)) FILTER (decode(key) = 'netrec.hostname') AS host,
--              max(decode(value)) FILTER (decode(key) = 'netrec.capture_id') AS capture_id
--       FROM parquet_kv_metadata('<dir>/**/*.parquet') GROUP BY ALL;
--   CREATE VIEW events AS
--       SELECT e.*, epoch_ns(e.ts) AS ts_ns, seg.host, seg.capture_id
--       FROM read_parquet('<dir>/**/*.parquet', filename = 'segment_file', hive_partitioning = false) e JOIN seg USING (segment_file);
--
-- For one capture (bench/analyzer.py's generated traces) the two are constants.
-- Each COPY writes one result to {out}/<name>.csv. Rows are keyed by {by}: per process,
-- `host, pid, first(comm) FILTER (comm IS NOT NULL) AS comm` (pids are per host); per host, `host`; per command name
-- across the fleet, `comm`. A connection is
-- (host, capture_id, sock_id), as in netrec-analyze. Percentiles are nearest-rank
-- (quantile_disc), durations truncated to whole microseconds, log2 buckets as
-- BCC prints them: bucket k holds (2^(k-1), 2^k - 1].

-- name: netio
-- Bytes sent and consumed per second per process and transport protocol (tcp, udp).
COPY (
    SELECT ts_ns // 1000000000 * 1000000000 AS second, {by}, protocol,
           coalesce(sum(bytes) FILTER (kind = 'send'), 0) AS sent_bytes,
           coalesce(sum(bytes) FILTER (kind = 'recv'), 0) AS recv_bytes
    FROM events WHERE kind IN ('send', 'recv')
    GROUP BY ALL
) TO '{out}/netio.csv';

-- name: connections
-- The state rows of every connection, a passive open's rows before its accept
-- carrying the accepting process (a pre-fork server's worker, not its master) ...
CREATE TEMP TABLE state_rows AS
    WITH accepts AS (
        SELECT host, capture_id, sock_id, min(ts_ns) AS accept_ns, arg_min(pid, ts_ns) AS accept_pid,
               arg_min(comm, ts_ns) AS accept_comm
        FROM events WHERE kind = 'accept' AND sock_id IS NOT NULL
        GROUP BY ALL
    )
    SELECT s.host, s.capture_id, s.sock_id, s.ts_ns, s.old_state, s.new_state,
           CASE WHEN s.ts_ns <= a.accept_ns THEN a.accept_pid ELSE s.pid END AS pid,
           CASE WHEN s.ts_ns <= a.accept_ns THEN a.accept_comm ELSE s.comm END AS comm
    FROM events s LEFT JOIN accepts a USING (host, capture_id, sock_id)
    WHERE s.kind = 'state' AND s.sock_id IS NOT NULL;
-- ... and one row per connection: its owner (of its earliest row that names one), its transitions' times.
CREATE TEMP TABLE conns AS
    SELECT host, capture_id, sock_id,
           arg_min(pid, ts_ns) FILTER (pid IS NOT NULL) AS pid, arg_min(comm, ts_ns) FILTER (comm IS NOT NULL) AS comm,
           min(ts_ns) FILTER (new_state = 'SYN_SENT') AS syn_sent_ns,
           min(ts_ns) FILTER (new_state = 'SYN_RECV') AS syn_recv_ns,
           min(ts_ns) FILTER (old_state = 'SYN_SENT' AND new_state = 'ESTABLISHED') AS active_est_ns,
           min(ts_ns) FILTER (old_state = 'SYN_RECV' AND new_state = 'ESTABLISHED') AS passive_est_ns,
           max(ts_ns) FILTER (new_state = 'CLOSE') AS close_ns
    FROM state_rows
    GROUP BY host, capture_id, sock_id;

-- name: churn
-- (after connections) Opens, closes, failures and resets per second per process ...
COPY (
    SELECT ts_ns // 1000000000 * 1000000000 AS second, {by},
           count(*) FILTER (old_state = 'SYN_SENT' AND new_state = 'ESTABLISHED') AS opened_active,
           count(*) FILTER (old_state = 'SYN_RECV' AND new_state = 'ESTABLISHED') AS opened_passive,
           count(*) FILTER (new_state = 'CLOSE' AND old_state IN ('ESTABLISHED', 'FIN_WAIT1', 'FIN_WAIT2', 'CLOSE_WAIT', 'LAST_ACK', 'CLOSING', 'TIME_WAIT')) AS closed,
           count(*) FILTER (old_state = 'SYN_SENT' AND new_state = 'CLOSE') AS failed,
           count(*) FILTER (new_state = 'CLOSE' AND old_state IN ('ESTABLISHED', 'CLOSE_WAIT', 'FIN_WAIT1', 'SYN_RECV')) AS resets
    FROM state_rows
    GROUP BY ALL
) TO '{out}/churn.csv';
-- ... lifetimes of the connections ever established ...
CREATE TEMP TABLE lifetimes AS
    SELECT host, pid, comm, close_ns,
           close_ns - coalesce(syn_sent_ns, syn_recv_ns, active_est_ns, passive_est_ns) AS life_ns
    FROM conns WHERE coalesce(active_est_ns, passive_est_ns) IS NOT NULL;
-- ... short-lived connections (closed within {short_ns} ns of opening) per second of their close ...
COPY (
    SELECT close_ns // 1000000000 * 1000000000 AS second, {by}, count(*) AS short_lived
    FROM lifetimes WHERE life_ns < {short_ns}
    GROUP BY ALL
) TO '{out}/churn_short.csv';
-- ... and the lifetime distribution of closed connections.
COPY (
    SELECT count(*) FILTER (close_ns IS NOT NULL) AS count, count(*) FILTER (close_ns IS NULL) AS still_open,
           quantile_disc(life_ns // 1000, [0.5, 0.9, 0.99, 0.999]) AS percentiles_us, max(life_ns // 1000) AS max_us
    FROM lifetimes
) TO '{out}/churn_lifetime.csv';
COPY (
    SELECT CASE WHEN life_ns // 1000 <= 1 THEN 1 ELSE floor(log2(life_ns // 1000))::INT + 1 END AS bucket, count(*) AS count
    FROM lifetimes WHERE close_ns IS NOT NULL
    GROUP BY bucket
) TO '{out}/churn_buckets.csv';

-- name: latency
-- (after connections) connect, handshake, rtt and call:<probe> samples per process, in microseconds ...
CREATE TEMP TABLE samples AS
    SELECT 'connect' AS metric, host, pid, comm, (active_est_ns - syn_sent_ns) // 1000 AS us FROM conns WHERE active_est_ns >= syn_sent_ns
    UNION ALL
    SELECT 'handshake', host, pid, comm, (passive_est_ns - syn_recv_ns) // 1000 FROM conns WHERE passive_est_ns >= syn_recv_ns
    UNION ALL
    -- an rtt row stands for `samples` srtt changes of that value
    SELECT 'rtt', host, pid, comm, srtt_us FROM (
        SELECT host, pid, comm, srtt_us, unnest(range(coalesce(samples, 1))) FROM events WHERE kind = 'rtt' AND srtt_us IS NOT NULL)
    UNION ALL
    SELECT 'call:' || probe, host, pid, comm, duration_ns // 1000 FROM events WHERE kind = 'call' AND duration_ns IS NOT NULL;
-- ... their percentiles ...
COPY (
    SELECT metric, {by}, count(*) AS count, quantile_disc(us, [0.5, 0.9, 0.99, 0.999]) AS percentiles_us, max(us) AS max_us
    FROM samples GROUP BY ALL
) TO '{out}/latency.csv';
-- ... and log2 histograms.
COPY (
    SELECT metric, {by}, CASE WHEN us <= 1 THEN 1 ELSE floor(log2(us))::INT + 1 END AS bucket, count(*) AS count
    FROM samples GROUP BY ALL
) TO '{out}/latency_buckets.csv';

-- name: calls
-- Application calls per second per probe, with the TCP connections opened in that
-- second by the processes that ever made calls of the probe ...
CREATE TEMP TABLE call_rows AS
    SELECT ts_ns // 1000000000 * 1000000000 AS second, probe, host, pid, count(*) AS calls,
           count(*) FILTER (kind = 'call' AND duration_ns IS NULL) AS unfinished
    FROM events WHERE kind IN ('call', 'usdt')
    GROUP BY ALL;
COPY (
    WITH per_probe AS (
        SELECT second, probe, sum(calls) AS calls, sum(unfinished) AS unfinished FROM call_rows GROUP BY ALL
    ), procs AS (
        SELECT DISTINCT probe, host, pid FROM call_rows WHERE pid IS NOT NULL
    ), opens AS (
        SELECT ts_ns // 1000000000 * 1000000000 AS second, host, pid, count(*) AS opens
        FROM events
        WHERE kind = 'state' AND new_state = 'ESTABLISHED' AND old_state IN ('SYN_SENT', 'SYN_RECV') AND pid IS NOT NULL
        GROUP BY ALL
    ), tcp AS (
        SELECT o.second, p.probe, sum(o.opens) AS tcp_opens FROM procs p JOIN opens o USING (host, pid) GROUP BY ALL
    )
    SELECT second, probe, coalesce(calls, 0) AS calls, coalesce(unfinished, 0) AS unfinished,
           coalesce(tcp_opens, 0) AS tcp_opens
    FROM per_probe FULL JOIN tcp USING (second, probe)
) TO '{out}/calls.csv';
