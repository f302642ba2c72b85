//! `netio`: bytes sent and consumed per interval, per key.

use polars::prelude::*;

use super::{as_time, Ctx};
use crate::output::{collect, Frame, Report, TIME};

pub struct NetioArgs {
    pub interval_ns: i64,
    pub top: Option<usize>,
}

/// Segments aggregated per pass. Polars' streaming group-by keeps every group
/// it evicts from its hot table, so over a whole large trace its memory grew
/// with the rows (560 MiB for 50 M events); partial sums of a few segments at
/// a time, merged at the end, keep it to what a few segments need. Two per
/// pass peaked at 182 MiB for 10 M events against 251–275 MiB with four, in
/// the same time (/usr/bin/time, two runs each). At 50 M events (2026-12-03)
/// three per pass were no faster in bench/run analyzer and took more memory.
const SEGMENTS_PER_PASS: usize = 2;

/// Events -> one row per (interval, key, protocol) with sent_bytes and
/// recv_bytes, grouped by `keys`; by one packed key where `packed` allows.
fn plan(events: LazyFrame, ctx: &Ctx, keys: &[&str], interval_ns: i64, packed: Option<Packed>) -> LazyFrame {
    let is = |k: &str| col("kind").eq(lit(k));
    let bytes_of = |k: &str| when(is(k)).then(col("bytes")).otherwise(lit(0u64)).sum();
    let aggs = [bytes_of("send").alias("sent_bytes"), bytes_of("recv").alias("recv_bytes")];
    // Only send and recv rows carry bytes (schemas/events.json): a null test
    // instead of two string comparisons per row; the sums still ask the kind.
    let filtered = ctx.filters.apply(events.filter(col("bytes").is_not_null()));
    match packed {
        Some(p) => p.aggregate(filtered, ctx, keys, interval_ns, aggs),
        None => aggregate(filtered.with_column(super::interval_start(interval_ns)), ctx, keys, aggs),
    }
}

/// (interval, pid, protocol) as one u64, for a pass whose intervals, from
/// its footers' `ts` statistics, span fewer than 2^29: bits 35-63 the
/// interval after the pass's first, bit 34 set for a null pid, bits 2-33
/// the pid (0 when pid is no key), bits 0-1 the protocol (null, tcp, udp:
/// the schema's values). Other keys (comm, ports) are grouped beside it.
/// One integer key is hashed as it is; three were row-encoded first. By
/// pid at 50 M events (7 alternating runs): the packed key alone 0.95 of
/// the time, with the null test on bytes 0.89; the build kept, 0.92 of
/// the one before it.
#[derive(Debug, Clone, Copy)]
struct Packed {
    first_interval: i64,
}

impl Packed {
    const INTERVAL_BITS: u32 = 29;

    /// Whether a pass over `segments` can pack its intervals: all have `ts` statistics.
    fn of(segments: &[crate::input::SegmentInfo], interval_ns: i64) -> anyhow::Result<Option<Packed>> {
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for s in segments {
            for (_, range) in crate::input::row_group_times(&s.path)? {
                let Some((min, max)) = range else { return Ok(None) };
                (lo, hi) = (lo.min(min), hi.max(max));
            }
        }
        let first_interval = lo.div_euclid(interval_ns);
        let fits = lo <= hi && hi.div_euclid(interval_ns) - first_interval < 1 << Self::INTERVAL_BITS;
        Ok(fits.then_some(Packed { first_interval }))
    }

    fn aggregate(self, rows: LazyFrame, ctx: &Ctx, keys: &[&str], interval_ns: i64, sums: [Expr; 2]) -> LazyFrame {
        let u = |e: Expr| e.cast(DataType::UInt64);
        let by_pid = keys.contains(&"pid");
        let interval = u(col("ts_ns") / lit(interval_ns) - lit(self.first_interval));
        let protocol = when(col("protocol").is_null())
            .then(lit(0u64))
            .when(col("protocol").eq(lit("tcp")))
            .then(lit(1u64))
            .otherwise(lit(2u64));
        let mut packed = interval * lit(1u64 << 35) + protocol;
        if by_pid {
            packed = packed + when(col("pid").is_null()).then(lit(1u64 << 34)).otherwise(u(col("pid")) * lit(4u64));
        }
        let mut group = vec![packed.alias("key")];
        group.extend(keys.iter().filter(|k| **k != "pid").map(|k| col(*k)));
        let mut aggs = sums.to_vec();
        aggs.extend(ctx.by.descriptions());

        let key = || col("key");
        let mut unpacked = vec![
            (((key() / lit(1u64 << 35)).cast(DataType::Int64) + lit(self.first_interval)) * lit(interval_ns))
                .alias(TIME),
            when((key() % lit(4u64)).eq(lit(0u64)))
                .then(lit(Null {}).cast(DataType::String))
                .when((key() % lit(4u64)).eq(lit(1u64)))
                .then(lit("tcp"))
                .otherwise(lit("udp"))
                .alias("protocol"),
        ];
        if by_pid {
            let pid = (key() / lit(4u64)) % lit(1u64 << 33);
            unpacked.push(
                when(pid.clone().gt_eq(lit(1u64 << 32)))
                    .then(lit(Null {}).cast(DataType::UInt32))
                    .otherwise(pid.cast(DataType::UInt32))
                    .alias("pid"),
            );
        }
        // The columns of the unpacked plan, in its order.
        let mut columns = vec![col(TIME)];
        columns.extend(keys.iter().map(|k| col(*k)));
        columns.extend(["protocol", "sent_bytes", "recv_bytes"].map(col));
        columns.extend(ctx.by.description_columns().into_iter().map(col));
        rows.group_by(group).agg(aggs).with_columns(unpacked).select(columns)
    }
}

/// Rows grouped by (second, `keys`, protocol), with `sums` and the key's descriptions.
fn aggregate(rows: LazyFrame, ctx: &Ctx, keys: &[&str], sums: [Expr; 2]) -> LazyFrame {
    let mut group: Vec<Expr> = vec![col(TIME)];
    group.extend(keys.iter().map(|k| col(*k)));
    // TCP and UDP bytes of one key stay apart.
    group.push(col("protocol"));
    let mut aggs = sums.to_vec();
    aggs.extend(ctx.by.descriptions());
    rows.group_by(group).agg(aggs)
}

/// Every (interval, key, protocol) with its bytes: host by host, the
/// partial sums of [`SEGMENTS_PER_PASS`] segments at a time, merged within
/// the host. Within a host its name is no group key (one string fewer to
/// hash per event: --by host over ten hosts took 1.57× DuckDB's time with
/// it), and hosts' sums are merged only where a key spans hosts (merging
/// the fleet's passes in one took 700 MiB, host by host 500 MiB).
pub fn per_interval(ctx: &Ctx, interval_ns: i64) -> anyhow::Result<DataFrame> {
    let cols = ctx.columns(&ctx.by.scan_columns(&["ts", "kind", "bytes", "protocol"]));
    let keys = ctx.by.keys();
    let within_host: Vec<&str> = keys.iter().copied().filter(|k| *k != "host").collect();
    let merge = || [col("sent_bytes").sum(), col("recv_bytes").sum()];
    let mut hosts = Vec::new();
    for host in ctx.host_by_host() {
        let name = host.trace.segments.first().map(|s| s.host.clone()).unwrap_or_default();
        let mut passes = Vec::new();
        for segments in host.trace.segments.chunks(SEGMENTS_PER_PASS) {
            let packed = Packed::of(segments, interval_ns)?;
            let sums = plan(crate::input::events_of(segments, &cols)?, ctx, &within_host, interval_ns, packed);
            passes.push(collect(sums)?.lazy());
        }
        // An interval that straddles two passes is in both: merge the partial sums.
        let sums = aggregate(super::union(passes)?, ctx, &within_host, merge());
        hosts.push(collect(sums.with_column(lit(name).alias("host")))?.lazy());
    }
    let one_each = hosts.len() == 1 || ctx.keyed_by_host();
    let all = super::union(hosts)?;
    Ok(collect(if one_each { all } else { aggregate(all, ctx, &keys, merge()) })?)
}

/// The columns that name a row's key: --by's, then the protocol.
pub fn key_columns(ctx: &Ctx) -> Vec<&'static str> {
    let mut shown = ctx.by.shown();
    shown.push("protocol");
    shown
}

/// Bytes per key over the whole range, busiest first (equal totals in key
/// order), with its `rank`; the first `top` only, if given.
pub fn totals(rows: LazyFrame, ctx: &Ctx, top: Option<usize>) -> LazyFrame {
    let shown = key_columns(ctx);
    let by: Vec<Expr> = shown.iter().map(|c| col(*c)).collect();
    let mut order = vec![col("busy")];
    order.extend(by.clone());
    let mut descending = vec![true];
    descending.extend(shown.iter().map(|_| false));
    let ranked = rows
        .group_by(by)
        .agg([col("sent_bytes").sum(), col("recv_bytes").sum()])
        .with_column((col("sent_bytes") + col("recv_bytes")).alias("busy"))
        .sort_by_exprs(order, SortMultipleOptions::default().with_order_descending_multi(descending))
        .with_row_index("rank", None);
    match top {
        Some(n) => ranked.limit(n as IdxSize),
        None => ranked,
    }
}

pub fn run(ctx: &Ctx, args: &NetioArgs) -> anyhow::Result<Report> {
    let rows = per_interval(ctx, args.interval_ns)?.lazy();
    let shown = key_columns(ctx);
    let ranked = totals(rows.clone(), ctx, args.top);

    // Rows of kept keys by interval, the busiest first within an interval
    // (equal ones in key order). Only --top needs the totals: a semi-join.
    let mut select = vec![as_time()];
    select.extend(shown.iter().map(|c| col(*c)));
    select.extend([col("sent_bytes"), col("recv_bytes")]);
    let kept = match args.top {
        Some(_) => super::join(rows, ranked.clone().select(by_name_exprs(&shown)), &shown, JoinType::Semi),
        None => rows,
    };
    // (time, keys, protocol) is unique per row: ties go by it, without
    // sorting by the descriptions (comm) too.
    let mut unique: Vec<&str> = ctx.by.keys();
    unique.push("protocol");
    let mut order = vec![col(TIME), col("sent_bytes") + col("recv_bytes")];
    order.extend(unique.iter().map(|c| col(*c)));
    let mut descending = vec![false, true];
    descending.extend(unique.iter().map(|_| false));
    let kept = kept
        .sort_by_exprs(order, SortMultipleOptions::default().with_order_descending_multi(descending))
        .select(select);

    let mut key_rows = vec![lit("key").alias("total")];
    key_rows.extend(shown.iter().map(|c| col(*c)));
    key_rows.extend([col("sent_bytes"), col("recv_bytes")]);
    let all = ranked.clone().select([lit("all").alias("total"), col("sent_bytes").sum(), col("recv_bytes").sum()]);
    let totals = concat_lf_diagonal([ranked.select(key_rows), all], UnionArgs::default())?;

    Ok(Report {
        frames: vec![
            Frame::new(
                format!("Bytes sent and consumed per {} by {}", ctx.interval_label(args.interval_ns), ctx.by_label()),
                kept,
            ),
            Frame::new("Totals", totals),
        ],
        warnings: coarser_aggregates(ctx, args.interval_ns),
        ..Default::default()
    })
}

fn by_name_exprs(names: &[&str]) -> Vec<Expr> {
    names.iter().copied().map(col).collect()
}

/// Segments whose aggregates are coarser than, or misaligned with, the
/// requested interval: their bytes land in the first interval of each.
fn coarser_aggregates(ctx: &Ctx, interval_ns: i64) -> Vec<String> {
    let every = |ns: u64| humantime::format_duration(std::time::Duration::from_nanos(ns)).to_string();
    // The first such segment says it for all.
    ctx.trace
        .segments
        .iter()
        .find_map(|s| {
            let d = s.data.as_ref().filter(|d| d.has_aggregates())?;
            (d.interval_ns > 0 && interval_ns as u64 % d.interval_ns != 0).then(|| {
                format!(
                    "{}: send/recv are aggregates per {}; per {} each one's bytes fall in the interval where it starts",
                    s.path.display(),
                    every(d.interval_ns),
                    every(interval_ns as u64)
                )
            })
        })
        .into_iter()
        .collect()
}
