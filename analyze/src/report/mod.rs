//! `report TRACE -o report.html`: one HTML file that opens offline in any
//! browser, nothing fetched. What was recorded, NetIO per second per process,
//! connection churn, latency histograms and application calls; every chart
//! with its numbers in a table beside it. The tables are the same frames
//! `netio`, `churn`, `latency` and `calls` print.

mod charts;
mod html;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use polars::prelude::*;

use crate::cli::Selection;
use crate::metrics::by::By;
use crate::metrics::{calls, churn, info, latency, netio, Ctx};
use crate::output::cells::{buckets, texts};
use crate::output::{collect, TIME};
use crate::Outcome;

pub const HELP: &str = "\
The report holds: what was recorded (hosts, kernel, time window, filters, losses,
the capture's own cost), bytes sent and consumed per second for the busiest
processes with their totals, connections opened, closed, failed, reset and
short-lived per second with connection lifetimes, latency histograms and
percentiles per metric and comm, and application calls per second. Under every
chart, its numbers. Longer traces are shown per a coarser interval (at most
600 points), which the report names.

Examples:
  netrec-analyze report /var/tmp/netrec -o report.html
  netrec-analyze report ticket-4711.tar -o report.html --top 12";

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Segment files, directories, globs or a bundle
    #[arg(required = true, value_name = "PATH")]
    pub inputs: Vec<PathBuf>,
    /// The HTML file to write
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    #[command(flatten)]
    pub selection: Selection,
    /// Processes shown per chart (the busiest)
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub top: usize,
}

/// Points per chart at most: the interval grows with the trace.
const MAX_POINTS: i64 = 600;

fn interval_of(ctx: &Ctx) -> i64 {
    let start = ctx.filters.from_ns.unwrap_or_else(|| ctx.trace.start_ns());
    let end = ctx.filters.to_ns.unwrap_or_else(|| {
        ctx.trace.segments.iter().map(|s| s.end.timestamp_nanos_opt().unwrap_or(0)).max().unwrap_or(0)
    });
    let secs = ((end - start).max(0) / 1_000_000_000 / MAX_POINTS + 1).max(1);
    // 1, 2, 5, 10, 15, 30, 60 s … : intervals people read.
    let nice = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];
    nice.iter().copied().find(|&n| n >= secs).unwrap_or(secs) * 1_000_000_000
}

/// Per series name, (seconds from `t0`, value) points of `value` by `time`.
fn series(
    df: &DataFrame,
    name_of: &dyn Fn(usize) -> String,
    value: &str,
    t0: i64,
) -> PolarsResult<Vec<charts::Series>> {
    let times = df.column(TIME)?.cast(&DataType::Int64)?;
    let times = times.i64()?;
    let values = df.column(value)?.cast(&DataType::Float64)?;
    let values = values.f64()?;
    let mut by: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for i in 0..df.height() {
        if let (Some(t), Some(v)) = (times.get(i), values.get(i)) {
            by.entry(name_of(i)).or_default().push(((t - t0) as f64 / 1e9, v));
        }
    }
    Ok(by.into_iter().collect())
}

fn text_of(df: &DataFrame, cols: &[&str]) -> PolarsResult<impl Fn(usize) -> String> {
    let t: Vec<Vec<Option<String>>> = cols.iter().map(|c| texts(df.column(c)?, false)).collect::<PolarsResult<_>>()?;
    Ok(move |i: usize| t.iter().map(|c| c[i].clone().unwrap_or_else(|| "?".into())).collect::<Vec<_>>().join(" "))
}

fn render(ctx: &Ctx, top: usize) -> Result<String> {
    let interval = interval_of(ctx);
    let t0 = ctx.filters.from_ns.unwrap_or_else(|| ctx.trace.start_ns());
    let per = ctx.interval_label(interval);
    let mut body = String::new();

    // What was recorded.
    let (lost, _) = ctx.lost_events();
    if lost > 0 {
        body.push_str(&format!(
            "<p class=\"warn\">The capture lost {lost} events in this range: the numbers below may undercount.</p>"
        ));
    }
    body.push_str("<h2>What was recorded</h2>");
    let info = collect(info::run(ctx)?.frames.remove(0).data)?;
    for row in 0..info.height() {
        let one = info.slice(row as i64, 1);
        let fields: Vec<String> = one.get_column_names().iter().map(|c| c.to_string()).collect();
        let values: Vec<Option<String>> =
            one.columns().iter().map(|c| texts(c, false).map(|t| t[0].clone())).collect::<PolarsResult<_>>()?;
        let pairs = df!("field" => fields, "value" => values)?;
        body.push_str(&html::table("recorded", &pairs)?);
    }

    // NetIO per process.
    let keep = Some(top);
    let io = Ctx { by: By::Pid.for_hosts(ctx.hosts()), ..ctx.clone() };
    let mut net = netio::run(&io, &netio::NetioArgs { interval_ns: interval, top: keep })?;
    let totals = collect(net.frames.remove(1).data)?;
    let per_second = collect(net.frames.remove(0).data)?;
    body.push_str(&format!("<h2>NetIO per {per}, the {} busiest processes</h2>", top));
    let name = text_of(&per_second, &["pid", "comm", "protocol"])?;
    for (value, what) in [("sent_bytes", "Bytes sent"), ("recv_bytes", "Bytes consumed")] {
        let svg = charts::lines(&format!("{what} per {per}"), "bytes", &series(&per_second, &name, value, t0)?)?;
        body.push_str(&html::figure(
            &svg,
            &html::table("netio", &per_second)?,
            &format!("{what} per {per}, per pid, comm and protocol"),
        ));
    }
    body.push_str(&html::table("netio-totals", &totals)?);

    // Churn, all processes together.
    let cargs = churn::ChurnArgs { interval_ns: interval, short_ns: 100_000_000 };
    let mut ch = churn::run(ctx, &cargs)?;
    let lifetimes = collect(ch.frames.remove(1).data)?;
    let sums: Vec<Expr> = churn::COUNTERS.iter().map(|c| col(*c).sum()).collect();
    let churn_all =
        collect(ch.frames.remove(0).data.group_by([col(TIME)]).agg(sums).sort([TIME], SortMultipleOptions::default()))?;
    body.push_str(&format!("<h2>Connections per {per}</h2>"));
    let mut lines = Vec::new();
    for c in churn::COUNTERS {
        lines.extend(series(&churn_all, &|_| c.to_string(), c, t0)?);
    }
    let svg = charts::lines(&format!("Connections per {per} (short-lived: under 100ms)"), "connections", &lines)?;
    body.push_str(&html::figure(&svg, &html::table("churn", &churn_all)?, "every process together"));
    body.push_str(&html::table("lifetimes", &lifetimes)?);

    // Latency by comm.
    let lat_ctx = Ctx { by: By::Comm, ..ctx.clone() };
    let lat = collect(latency::run(&lat_ctx)?.frames.remove(0).data)?;
    body.push_str("<h2>Latency (microseconds)</h2>");
    body.push_str(&html::table("latency", &lat)?);
    if let Ok(b) = lat.column("buckets") {
        let name = text_of(&lat, &["metric", "comm"])?;
        for (i, b) in buckets(b)?.iter().enumerate().take(24) {
            body.push_str(&charts::histogram(&name(i), b)?);
        }
    }

    // Application calls.
    let calls_ctx = Ctx { by: By::Probe, ..ctx.clone() };
    let mut cl = calls::run(&calls_ctx, interval)?;
    let call_totals = collect(cl.frames.remove(1).data)?;
    let call_rows = collect(cl.frames.remove(0).data)?;
    body.push_str(&format!("<h2>Application calls per {per}</h2>"));
    if call_rows.height() == 0 {
        body.push_str("<p>No application probes in this trace (capture with --uprobe or --usdt).</p>");
    } else {
        let name = text_of(&call_rows, &["probe"])?;
        let svg = charts::lines(&format!("Calls per {per}"), "calls", &series(&call_rows, &name, "calls", t0)?)?;
        body.push_str(&html::figure(&svg, &html::table("calls", &call_rows)?, "per probe"));
        body.push_str(&html::table("calls-totals", &call_totals)?);
    }
    let hosts: Vec<&str> = {
        let mut h: Vec<&str> = ctx.trace.segments.iter().map(|s| s.host.as_str()).collect();
        h.sort();
        h.dedup();
        h
    };
    Ok(html::page(&format!("netrec report: {}", hosts.join(", ")), &body))
}

/// The report of an opened trace, written to `output`; its size in bytes.
pub fn write(ctx: &Ctx, top: usize, output: &Path) -> Result<usize> {
    let page = render(ctx, top)?;
    // Written beside and renamed: an existing report is replaced whole or not at all.
    let tmp = output.with_extension("html.partial");
    std::fs::write(&tmp, page.as_bytes()).with_context(|| format!("-o {}: cannot write", output.display()))?;
    std::fs::rename(&tmp, output).with_context(|| format!("-o {}: cannot write", output.display()))?;
    Ok(page.len())
}

pub fn run(args: &ReportArgs, out: &mut dyn Write) -> Result<Outcome> {
    let ctx = crate::open(&args.inputs, &args.selection, By::Pid)?;
    let bytes = write(&ctx, args.top, &args.output)?;
    writeln!(out, "netrec-analyze: wrote {} ({bytes} bytes)", args.output.display())?;
    Ok(Outcome::Ok)
}
