-- What netrec-analyze computes, written as DuckDB SQL over the same segments:
-- the peer bench/analyzer.py times netrec-analyze against, and checks its numbers
-- with. Also a worked example for DuckDB users (schemas/README.md).
--
-- bench/analyzer.py first runs
--   CREATE VIEW events AS SELECT *, epoch_ns(ts) AS ts_ns FROM read_parquet('<dir>/*.parquet');
-- then the statements of one `-- name:` block; each COPY writes one result.
-- The trace is one capture (one host, one capture_id), so sock_id alone names a
-- connection; netrec-analyze keys connections by (host, capture_id, sock_id).
-- Percentiles are nearest-rank (quantile_disc), durations truncated to whole
-- microseconds, log2 buckets as BCC prints them: bucket k holds (2^(k-1), 2^k - 1].

-- name: netio
-- Bytes sent and consumed per second per process.
COPY (
    SELECT ts_ns // 1000000000 * 1000000000 AS second, pid, first(comm) FILTER (comm IS NOT NULL) AS comm,
           coalesce(sum(bytes) FILTER (kind = 'send'), 0) AS sent_bytes,
           coalesce(sum(bytes) FILTER (kind = 'recv'), 0) AS recv_bytes
    FROM events WHERE kind IN ('send', 'recv')
    GROUP BY ALL
) TO '{out}/netio.csv';

-- name: churn
-- Opens, closes, failures and resets per second per process ...
COPY (
    SELECT ts_ns // 1000000000 * 1000000000 AS second, pid, first(comm) FILTER (comm IS NOT NULL) AS comm,
           count(*) FILTER (old_state = 'SYN_SENT' AND new_state = 'ESTABLISHED') AS opened_active,
           count(*) FILTER (old_state = 'SYN_RECV' AND new_state = 'ESTABLISHED') AS opened_passive,
           count(*) FILTER (new_state = 'CLOSE' AND old_state IN ('ESTABLISHED', 'FIN_WAIT1', 'FIN_WAIT2', 'CLOSE_WAIT', 'LAST_ACK', 'CLOSING', 'TIME_WAIT')) AS closed,
           count(*) FILTER (old_state = 'SYN_SENT' AND new_state = 'CLOSE') AS failed,
           count(*) FILTER (new_state = 'CLOSE' AND old_state IN ('ESTABLISHED', 'CLOSE_WAIT', 'FIN_WAIT1', 'SYN_RECV')) AS resets
    FROM events WHERE kind = 'state' AND sock_id IS NOT NULL
    GROUP BY ALL
) TO '{out}/churn.csv';
-- ... one row per connection ...
CREATE TEMP TABLE conns AS
    SELECT sock_id, first(pid) FILTER (pid IS NOT NULL) AS pid, first(comm) FILTER (comm IS NOT NULL) AS comm,
           min(ts_ns) FILTER (new_state = 'SYN_SENT') AS syn_sent_ns,
           min(ts_ns) FILTER (new_state = 'SYN_RECV') AS syn_recv_ns,
           min(ts_ns) FILTER (old_state = 'SYN_SENT' AND new_state = 'ESTABLISHED') AS active_est_ns,
           min(ts_ns) FILTER (old_state = 'SYN_RECV' AND new_state = 'ESTABLISHED') AS passive_est_ns,
           max(ts_ns) FILTER (new_state = 'CLOSE') AS close_ns
    FROM events WHERE kind = 'state' AND sock_id IS NOT NULL
    GROUP BY sock_id;
CREATE TEMP TABLE lifetimes AS
    SELECT pid, comm, close_ns,
           close_ns - coalesce(syn_sent_ns, syn_recv_ns, active_est_ns, passive_est_ns) AS life_ns
    FROM conns WHERE coalesce(active_est_ns, passive_est_ns) IS NOT NULL;
-- ... short-lived connections (closed within {short_ns} ns of opening) per second of their close ...
COPY (
    SELECT close_ns // 1000000000 * 1000000000 AS second, pid, comm, count(*) AS short_lived
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
-- connect, handshake, rtt and call:<probe> samples per process, in microseconds ...
CREATE TEMP TABLE samples AS
    WITH conns AS (
        SELECT sock_id, first(pid) FILTER (pid IS NOT NULL) AS pid, first(comm) FILTER (comm IS NOT NULL) AS comm,
               min(ts_ns) FILTER (new_state = 'SYN_SENT') AS syn_sent_ns,
               min(ts_ns) FILTER (new_state = 'SYN_RECV') AS syn_recv_ns,
               min(ts_ns) FILTER (old_state = 'SYN_SENT' AND new_state = 'ESTABLISHED') AS active_est_ns,
               min(ts_ns) FILTER (old_state = 'SYN_RECV' AND new_state = 'ESTABLISHED') AS passive_est_ns
        FROM events WHERE kind = 'state' AND sock_id IS NOT NULL
        GROUP BY sock_id
    )
    SELECT 'connect' AS metric, pid, comm, (active_est_ns - syn_sent_ns) // 1000 AS us FROM conns WHERE active_est_ns >= syn_sent_ns
    UNION ALL
    SELECT 'handshake', pid, comm, (passive_est_ns - syn_recv_ns) // 1000 FROM conns WHERE passive_est_ns >= syn_recv_ns
    UNION ALL
    -- an rtt row stands for `samples` srtt changes of that value
    SELECT 'rtt', pid, comm, srtt_us FROM (
        SELECT pid, comm, srtt_us, unnest(range(coalesce(samples, 1))) FROM events WHERE kind = 'rtt' AND srtt_us IS NOT NULL)
    UNION ALL
    SELECT 'call:' || probe, pid, comm, duration_ns // 1000 FROM events WHERE kind = 'call' AND duration_ns IS NOT NULL;
-- ... their percentiles ...
COPY (
    SELECT metric, pid, comm, count(*) AS count, quantile_disc(us, [0.5, 0.9, 0.99, 0.999]) AS percentiles_us, max(us) AS max_us
    FROM samples GROUP BY ALL
) TO '{out}/latency.csv';
-- ... and log2 histograms.
COPY (
    SELECT metric, pid, comm, CASE WHEN us <= 1 THEN 1 ELSE floor(log2(us))::INT + 1 END AS bucket, count(*) AS count
    FROM samples GROUP BY ALL
) TO '{out}/latency_buckets.csv';
