//! One row per connection, from its state transitions: when it was opened,
//! established and closed, by whom. Shared by churn and latency.

use polars::prelude::*;

use super::Ctx;

pub fn scan_columns(ctx: &Ctx) -> Vec<&'static str> {
    ctx.columns(&ctx.by.scan_columns(&["ts", "kind", "sock_id", "pid", "comm", "old_state", "new_state"]))
}

/// Who owns a connection, as its rows say (those the scan has).
const OWNER: [&str; 6] = ["pid", "comm", "cgroup_id", "cgroup", "container", "pod"];

/// The columns that name a connection: (host, capture_id, sock_id), or
/// sock_id alone in one capture: grouping and joining by one integer
/// instead of two strings and it took a tenth off churn at 50 M events.
pub fn key(ctx: &Ctx) -> Vec<Expr> {
    if ctx.trace.one_capture() {
        vec![col("sock_id")]
    } else {
        vec![col("host"), col("capture_id"), col("sock_id")]
    }
}

/// State rows of the selected connections (time range not applied: a
/// connection's lifetime needs both of its ends).
///
/// A passive open belongs to the process that accepted it: the handshake's
/// rows, written before accept() while the connection sat in the listener's
/// queue, carry the listener's owner (a pre-fork server's master); here they
/// take the accepting process of the connection's `accept` row, before the
/// filters, so `--pid WORKER` selects what that worker accepted.
pub fn state_rows(events: LazyFrame, ctx: &Ctx) -> LazyFrame {
    let (rows, mut spent) = if ctx.trace.may_have("accept") {
        owned_by_acceptor(events, ctx)
    } else {
        // Nothing to hand over (a client's trace): the join with an empty
        // side still took 0.14–0.24 s at 50 M events (polars, measured alone).
        (events.filter(col("kind").eq(lit("state")).and(col("sock_id").is_not_null())), Vec::new())
    };
    // Churn holds these rows (churn::state): the kind, the same on every
    // row, and the join's columns are left behind.
    spent.push("kind".to_string());
    ctx.filters.without_time().apply(rows).drop(by_name(spent, true, false))
}

/// The state rows with the owner of each connection's `accept` row on the
/// rows up to it, and the join's helper columns, to drop once used.
fn owned_by_acceptor(events: LazyFrame, ctx: &Ctx) -> (LazyFrame, Vec<String>) {
    let kind = |k: &str| col("kind").eq(lit(k));
    let conn = key(ctx);
    let mut events = events;
    let owner: Vec<&str> = match events.collect_schema() {
        Ok(schema) => OWNER.into_iter().filter(|c| schema.contains(c)).collect(),
        Err(_) => OWNER[..2].to_vec(),
    };
    let rows = events.filter(kind("state").or(kind("accept")).and(col("sock_id").is_not_null()));
    let mut firsts = vec![col("ts_ns").min().alias("accept_ns")];
    firsts.extend(owner.iter().map(|c| col(*c).first().alias(format!("accept_{c}"))));
    let accepts = rows.clone().filter(kind("accept")).group_by(conn.clone()).agg(firsts);
    let before_accept = col("ts_ns").lt_eq(col("accept_ns"));
    // The rows stay in time order (a join may reorder them otherwise): a
    // connection's owner is its earliest row's.
    let in_order = JoinArgs { maintain_order: MaintainOrderJoin::Left, ..JoinArgs::new(JoinType::Left) };
    let owned = rows.filter(kind("state")).join(accepts, conn.clone(), conn, in_order).with_columns(
        owner
            .iter()
            .map(|c| when(before_accept.clone()).then(col(format!("accept_{c}"))).otherwise(col(*c)).alias(*c))
            .collect::<Vec<_>>(),
    );
    let mut helpers = vec!["accept_ns".to_string()];
    helpers.extend(owner.iter().map(|c| format!("accept_{c}")));
    (owned, helpers)
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
pub fn plan(state: LazyFrame, ctx: &Ctx) -> LazyFrame {
    let by = ctx.by;
    let key = key(ctx);
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
    if key.len() == 1 {
        // One capture: its host and id are the same on every row.
        aggs.extend([col("host").first(), col("capture_id").first()]);
    }
    let mut carried: Vec<&str> = Vec::new();
    for c in by.shown().into_iter().chain(["pid", "comm"]) {
        if !keys.contains(&c) && !carried.contains(&c) {
            carried.push(c);
            // The owner of its earliest row that names one: the rows are in time order (state_rows).
            aggs.push(col(c).first_non_null().alias(c));
        }
    }
    state.group_by(key).agg(aggs)
}
