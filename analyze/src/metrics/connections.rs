//! One row per connection, from its state transitions: when it was opened,
//! established and closed, by whom. Shared by churn and latency.

use polars::prelude::*;

use super::by::By;
use super::Ctx;

pub fn scan_columns(by: By) -> Vec<&'static str> {
    by.scan_columns(&["ts", "kind", "sock_id", "pid", "comm", "old_state", "new_state", "lport", "rport"])
}

/// State rows of the selected connections (time range not applied: a
/// connection's lifetime needs both of its ends).
pub fn state_rows(events: LazyFrame, ctx: &Ctx) -> LazyFrame {
    ctx.filters.without_time().apply(events.filter(col("kind").eq(lit("state")).and(col("sock_id").is_not_null())))
}

/// The time of the rows where `cond` holds, others null: min/max of it are
/// streaming reductions (a filter inside the aggregation is not, and made
/// polars hold every state row of the trace in memory).
fn ts_where(cond: Expr) -> Expr {
    when(cond).then(col("ts_ns")).otherwise(lit(Null {}).cast(DataType::Int64))
}

fn first_ts_where(cond: Expr) -> Expr {
    ts_where(cond).min()
}

/// Columns: host, capture_id, sock_id, the --by columns, and
/// syn_sent_ns, syn_recv_ns, active_est_ns, passive_est_ns, close_ns,
/// failed (connect failed), established (ever established).
pub fn plan(state: LazyFrame, by: By) -> LazyFrame {
    let old = |s: &str| col("old_state").eq(lit(s));
    let new = |s: &str| col("new_state").eq(lit(s));
    let mut aggs = vec![
        first_ts_where(new("SYN_SENT")).alias("syn_sent_ns"),
        first_ts_where(new("SYN_RECV")).alias("syn_recv_ns"),
        first_ts_where(old("SYN_SENT").and(new("ESTABLISHED"))).alias("active_est_ns"),
        first_ts_where(old("SYN_RECV").and(new("ESTABLISHED"))).alias("passive_est_ns"),
        ts_where(new("CLOSE")).max().alias("close_ns"),
        old("SYN_SENT").and(new("CLOSE")).any(true).alias("failed"),
    ];
    let keys = ["host", "capture_id", "sock_id"];
    let mut carried: Vec<&str> = Vec::new();
    for c in by.shown().into_iter().chain(["pid", "comm"]) {
        if !keys.contains(&c) && !carried.contains(&c) {
            carried.push(c);
            aggs.push(col(c).first_non_null().alias(c));
        }
    }
    state.group_by([col("host"), col("capture_id"), col("sock_id")]).agg(aggs)
}
