-- What netrec-analyze computes, as Spark SQL over the same segments: the same
-- blocks and results as duckdb.sql beside it (tests/analyze/sql.rs runs both on
-- the samples and a trace of several hosts against netrec-analyze).
--
-- Each `-- name:` block reads a temporary view `events`: the segments, with
-- `ts_ns` (ns since the epoch), `host` and `capture_id` (the segment's
-- netrec.hostname and netrec.capture_id). Spark reads nanosecond timestamps only
-- as numbers: set spark.sql.legacy.parquet.nanosAsLong=true, then `ts` is ts_ns.
-- Spark does not read Parquet footer metadata: with `--layout hive` trees, `host`
-- is the partition column; otherwise join each file (input_file_name()) to its
-- footer's values, read with pyarrow (bench/spark.py does). uint64 columns read
-- as decimal(20,0), uint32 as bigint.
--
-- A process is (host, pid): pids are per host. Statements end with `;`. A statement after a `-- out: <name>` line is a
-- result, written to <name>.csv with duckdb.sql's columns.
-- Percentiles are nearest-rank (percentile_disc, a double in Spark: cast back), durations truncated to whole
-- microseconds, log2 buckets as BCC prints them (bucket k holds (2^(k-1), 2^k - 1],
-- k the bit length of the value).

-- name: netio
-- Bytes sent and consumed per second per process and transport protocol (tcp, udp).
-- out: netio
SELECT div(ts_ns, 1000000000) * 1000000000 AS second, host, pid, first(comm, true) AS comm, protocol,
       coalesce(sum(bytes) FILTER (WHERE kind = 'send'), 0) AS sent_bytes,
       coalesce(sum(bytes) FILTER (WHERE kind = 'recv'), 0) AS recv_bytes
FROM events WHERE kind IN ('send', 'recv')
GROUP BY div(ts_ns, 1000000000) * 1000000000, host, pid, protocol;

-- name: connections
-- The state rows of every connection, a passive open's rows before its accept
-- carrying the accepting process ...
CREATE OR REPLACE TEMP VIEW accepts AS
    SELECT host, capture_id, sock_id, min(ts_ns) AS accept_ns, min_by(pid, ts_ns) AS accept_pid,
           min_by(comm, ts_ns) AS accept_comm
    FROM events WHERE kind = 'accept' AND sock_id IS NOT NULL
    GROUP BY host, capture_id, sock_id;
CREATE OR REPLACE TEMP VIEW state_rows AS
    SELECT s.host, s.capture_id, s.sock_id, s.ts_ns, s.old_state, s.new_state,
           CASE WHEN s.ts_ns <= a.accept_ns THEN a.accept_pid ELSE s.pid END AS pid,
           CASE WHEN s.ts_ns <= a.accept_ns THEN a.accept_comm ELSE s.comm END AS comm
    FROM events s LEFT JOIN accepts a ON s.host = a.host AND s.capture_id = a.capture_id AND s.sock_id = a.sock_id
    WHERE s.kind = 'state' AND s.sock_id IS NOT NULL;
-- ... and one row per connection: its owner (of its earliest row that names one), its transitions' times.
CREATE OR REPLACE TEMP VIEW conns AS
    SELECT host, capture_id, sock_id,
           min_by(pid, ts_ns) FILTER (WHERE pid IS NOT NULL) AS pid,
           min_by(comm, ts_ns) FILTER (WHERE comm IS NOT NULL) AS comm,
           min(ts_ns) FILTER (WHERE new_state = 'SYN_SENT') AS syn_sent_ns,
           min(ts_ns) FILTER (WHERE new_state = 'SYN_RECV') AS syn_recv_ns,
           min(ts_ns) FILTER (WHERE old_state = 'SYN_SENT' AND new_state = 'ESTABLISHED') AS active_est_ns,
           min(ts_ns) FILTER (WHERE old_state = 'SYN_RECV' AND new_state = 'ESTABLISHED') AS passive_est_ns,
           max(ts_ns) FILTER (WHERE new_state = 'CLOSE') AS close_ns
    FROM state_rows
    GROUP BY host, capture_id, sock_id;

-- name: churn
-- (after connections) Opens, closes, failures and resets per second per process ...
-- out: churn
SELECT div(ts_ns, 1000000000) * 1000000000 AS second, host, pid, first(comm, true) AS comm,
       count(*) FILTER (WHERE old_state = 'SYN_SENT' AND new_state = 'ESTABLISHED') AS opened_active,
       count(*) FILTER (WHERE old_state = 'SYN_RECV' AND new_state = 'ESTABLISHED') AS opened_passive,
       count(*) FILTER (WHERE new_state = 'CLOSE' AND old_state IN ('ESTABLISHED', 'FIN_WAIT1', 'FIN_WAIT2', 'CLOSE_WAIT', 'LAST_ACK', 'CLOSING', 'TIME_WAIT')) AS closed,
       count(*) FILTER (WHERE old_state = 'SYN_SENT' AND new_state = 'CLOSE') AS failed,
       count(*) FILTER (WHERE new_state = 'CLOSE' AND old_state IN ('ESTABLISHED', 'CLOSE_WAIT', 'FIN_WAIT1', 'SYN_RECV')) AS resets
FROM state_rows
GROUP BY div(ts_ns, 1000000000) * 1000000000, host, pid;
-- ... lifetimes of the connections ever established ...
CREATE OR REPLACE TEMP VIEW lifetimes AS
    SELECT host, pid, comm, close_ns,
           close_ns - coalesce(syn_sent_ns, syn_recv_ns, active_est_ns, passive_est_ns) AS life_ns
    FROM conns WHERE coalesce(active_est_ns, passive_est_ns) IS NOT NULL;
-- ... short-lived connections (closed within {short_ns} ns of opening) per second of their close ...
-- out: churn_short
SELECT div(close_ns, 1000000000) * 1000000000 AS second, host, pid, comm, count(*) AS short_lived
FROM lifetimes WHERE life_ns < {short_ns}
GROUP BY div(close_ns, 1000000000) * 1000000000, host, pid, comm;
-- ... and the lifetime distribution of closed connections.
-- out: churn_lifetime
SELECT count(close_ns) AS count, count(*) - count(close_ns) AS still_open,
       array(CAST(percentile_disc(0.5) WITHIN GROUP (ORDER BY div(life_ns, 1000)) AS BIGINT),
             CAST(percentile_disc(0.9) WITHIN GROUP (ORDER BY div(life_ns, 1000)) AS BIGINT),
             CAST(percentile_disc(0.99) WITHIN GROUP (ORDER BY div(life_ns, 1000)) AS BIGINT),
             CAST(percentile_disc(0.999) WITHIN GROUP (ORDER BY div(life_ns, 1000)) AS BIGINT)) AS percentiles_us,
       max(div(life_ns, 1000)) AS max_us
FROM lifetimes;
-- out: churn_buckets
SELECT CASE WHEN div(life_ns, 1000) <= 1 THEN 1 ELSE length(bin(div(life_ns, 1000))) END AS bucket, count(*) AS count
FROM lifetimes WHERE close_ns IS NOT NULL
GROUP BY 1;

-- name: latency
-- (after connections) connect, handshake, rtt and call:<probe> samples per process, in microseconds ...
CREATE OR REPLACE TEMP VIEW samples AS
    SELECT 'connect' AS metric, host, pid, comm, div(active_est_ns - syn_sent_ns, 1000) AS us FROM conns WHERE active_est_ns >= syn_sent_ns
    UNION ALL
    SELECT 'handshake', host, pid, comm, div(passive_est_ns - syn_recv_ns, 1000) FROM conns WHERE passive_est_ns >= syn_recv_ns
    UNION ALL
    -- an rtt row stands for `samples` srtt changes of that value
    SELECT 'rtt', host, pid, comm, srtt_us FROM events
        LATERAL VIEW explode(sequence(1, CAST(coalesce(samples, 1) AS INT))) n AS i
        WHERE kind = 'rtt' AND srtt_us IS NOT NULL
    UNION ALL
    SELECT concat('call:', probe), host, pid, comm, div(duration_ns, 1000) FROM events WHERE kind = 'call' AND duration_ns IS NOT NULL;
-- ... their percentiles ...
-- out: latency
SELECT metric, host, pid, first(comm, true) AS comm, count(*) AS count,
       array(CAST(percentile_disc(0.5) WITHIN GROUP (ORDER BY us) AS BIGINT), CAST(percentile_disc(0.9) WITHIN GROUP (ORDER BY us) AS BIGINT),
             CAST(percentile_disc(0.99) WITHIN GROUP (ORDER BY us) AS BIGINT), CAST(percentile_disc(0.999) WITHIN GROUP (ORDER BY us) AS BIGINT)) AS percentiles_us,
       max(us) AS max_us
FROM samples GROUP BY metric, host, pid;
-- ... and log2 histograms.
-- out: latency_buckets
SELECT metric, host, pid, first(comm, true) AS comm, CASE WHEN us <= 1 THEN 1 ELSE length(bin(us)) END AS bucket, count(*) AS count
FROM samples GROUP BY metric, host, pid, 5;

-- name: calls
-- Application calls per second per probe, with the TCP connections opened in that
-- second by the processes that ever made calls of the probe ...
CREATE OR REPLACE TEMP VIEW call_rows AS
    SELECT div(ts_ns, 1000000000) * 1000000000 AS second, probe, host, pid, count(*) AS calls,
           count(*) FILTER (WHERE kind = 'call' AND duration_ns IS NULL) AS unfinished
    FROM events WHERE kind IN ('call', 'usdt')
    GROUP BY div(ts_ns, 1000000000) * 1000000000, probe, host, pid;
CREATE OR REPLACE TEMP VIEW call_opens AS
    SELECT o.second, p.probe, sum(o.opens) AS tcp_opens
    FROM (SELECT DISTINCT probe, host, pid FROM call_rows WHERE pid IS NOT NULL) p
    JOIN (SELECT div(ts_ns, 1000000000) * 1000000000 AS second, host, pid, count(*) AS opens
          FROM events
          WHERE kind = 'state' AND new_state = 'ESTABLISHED' AND old_state IN ('SYN_SENT', 'SYN_RECV') AND pid IS NOT NULL
          GROUP BY div(ts_ns, 1000000000) * 1000000000, host, pid) o
      ON p.host = o.host AND p.pid = o.pid
    GROUP BY o.second, p.probe;
-- out: calls
SELECT coalesce(c.second, t.second) AS second, coalesce(c.probe, t.probe) AS probe,
       coalesce(c.calls, 0) AS calls, coalesce(c.unfinished, 0) AS unfinished, coalesce(t.tcp_opens, 0) AS tcp_opens
FROM (SELECT second, probe, sum(calls) AS calls, sum(unfinished) AS unfinished FROM call_rows GROUP BY second, probe) c
FULL JOIN call_opens t ON c.second = t.second AND c.probe = t.probe;
