//! `diff BASE CANDIDATE`: every quantity of two traces compared key by key,
//! with a verdict each. Exit 1 when anything regressed.

mod stats;
mod verdict;

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use polars::prelude::*;

use crate::cli::{by_parser, parse_duration, Selection, DIFF_KEYS};
use crate::measures;
use crate::metrics::by::By;
use crate::metrics::{distribution, Ctx};
use crate::output::{collect, Format, Frame, Report};
use crate::Outcome;
pub use verdict::{Threshold, VERDICTS};

pub const HELP: &str = "\
What is compared, per key (--by; comm by default, as pids differ from run to run):
  sent_bytes, recv_bytes                      bytes sent and consumed
  opened, opened_active, opened_passive, closed, failed, resets, short_lived
  calls:<probe>                               application calls
  <any of those> per <probe>                  with --per PROBE: per unit of work
  connect, handshake, rtt, call:<probe>       latency: p50 (base, candidate), p90,
                                              p99, a Mann-Whitney U test (p_value)
                                              and its effect size (a12: the chance
                                              a candidate sample is slower than a
                                              base one; 0.5 no shift, 1 all slower)

Verdicts:
  regressed / improved   changed by more than the threshold (latency: its p50, the
                         U test's p-value below --alpha and a12 at least
                         --min-effect, or at most 1 - it)
  unchanged              within the threshold
  within noise           past the threshold, but not significant: latency with
                         p >= --alpha or a12 nearer 0.5 than --min-effect (the
                         shift two runs on one machine show); counts of events
                         within 3 standard deviations of a Poisson count
                         (|cand - base| <= 3 sqrt(base + cand))
  too few samples        fewer than --min-samples events or latency samples on a
                         side, or fewer than --min-bytes bytes: never 'regressed'
  new / gone             the key or metric is in one trace only

Examples:
  netrec-analyze diff baseline/ candidate/
  netrec-analyze diff base.parquet cand.parquet --per dispatch_command --format markdown
  netrec-analyze diff base/ cand/ --threshold 5% --threshold 'call:*=20%' --comm mysqld
  netrec-analyze diff base/ cand/ --by lport --changed

Exit status: 0 nothing regressed, 1 something regressed, 2 error.";

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The baseline trace: segment files, a directory or a glob
    #[arg(value_name = "BASE")]
    pub base: PathBuf,
    /// The trace to judge against it
    #[arg(value_name = "CANDIDATE")]
    pub candidate: PathBuf,
    #[command(flatten)]
    pub selection: Selection,
    /// Match keys across the two traces by this
    #[arg(long, value_parser = by_parser(DIFF_KEYS), default_value = "comm")]
    pub by: By,
    /// Also compare every quantity per call of this probe, e.g. bytes per
    /// dispatch_command call: bytes per query (repeatable)
    #[arg(long, value_name = "PROBE")]
    pub per: Vec<String>,
    /// Relative change that counts: PCT for every metric (default 10%), or
    /// METRIC=PCT for one (METRIC may end in *: 'call:*=25%') (repeatable)
    #[arg(long = "threshold", value_name = "[METRIC=]PCT", value_parser = Threshold::parse)]
    pub thresholds: Vec<Threshold>,
    /// Fewest events or latency samples per side for a verdict
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub min_samples: u64,
    /// Fewest bytes per side for a verdict on a byte count
    #[arg(long, value_name = "BYTES", default_value_t = 65536)]
    pub min_bytes: u64,
    /// Latency changes of the p50 smaller than this are unchanged, whatever their share
    #[arg(long, value_name = "DURATION", default_value = "50us", value_parser = parse_duration)]
    pub min_change: std::time::Duration,
    /// Significance level of the Mann-Whitney U test
    #[arg(long, value_name = "P", default_value_t = 0.01)]
    pub alpha: f64,
    /// Smallest effect size a12 (0.5-1) a latency regression needs: the
    /// chance that a candidate sample is slower than a base one
    #[arg(long, value_name = "A", default_value_t = 0.64, value_parser = parse_effect)]
    pub min_effect: f64,
    /// A connection closed within this long of its open is short-lived
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = parse_duration)]
    pub short: std::time::Duration,
    /// Show only what did not stay unchanged
    #[arg(long)]
    pub changed: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

fn parse_effect(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|a| (0.5..=1.0).contains(a))
        .ok_or_else(|| format!("{s:?} is not an effect size between 0.5 and 1 (example: 0.64)"))
}

/// One trace's totals (with --per ratios) and latency value counts.
struct Side {
    ctx: Ctx,
    totals: DataFrame,
    latency: DataFrame,
}

fn measure(path: &PathBuf, args: &DiffArgs) -> Result<Side> {
    let ctx = crate::open(std::slice::from_ref(path), &args.selection, args.by)?;
    let keys = measures::keys(args.by);
    let per = measures::per_interval(&ctx, i64::MAX / 2, args.short.as_nanos() as i64)?;
    let totals = collect(measures::totals(per, &keys))?;
    // Ratios carry their denominator, per_calls: too few calls make any per-call figure noise.
    let mut all = vec![totals.clone().lazy().with_column(lit(Null {}).cast(DataType::Float64).alias("per_calls"))];
    for probe in &args.per {
        all.push(measures::per_call(totals.clone().lazy(), &keys, probe));
    }
    let totals = collect(concat_lf_diagonal(all, UnionArgs::default())?)?;
    let mut group = keys.clone();
    group.push("metric");
    let latency = collect(distribution::value_counts(measures::latency_samples(&ctx)?, &group))?;
    Ok(Side { ctx, totals, latency })
}

pub fn run(args: &DiffArgs, out: &mut dyn Write) -> Result<Outcome> {
    let base = measure(&args.base, args)?;
    let cand = measure(&args.candidate, args)?;
    let keys = measures::keys(args.by);
    let mut on = keys.clone();
    on.push("metric");

    let counts = verdict::counts(&base.totals, &cand.totals, &on, args)?;
    let latency = verdict::latency(&base.latency, &cand.latency, &keys, args)?;
    let mut rows = concat_lf_diagonal([counts, latency], UnionArgs::default())?;
    if args.changed {
        rows = rows.filter(col("verdict").neq(lit("unchanged")));
    }
    let rows = collect(verdict::ordered(rows, &keys))?;

    let regressed = rows.column("verdict")?.str()?.iter().filter(|v| *v == Some("regressed")).count();
    let summary =
        collect(rows.clone().lazy().group_by([col("verdict")]).agg([len().cast(DataType::UInt64).alias("rows")]))?;
    let order = DataFrame::new_infer_height(vec![Column::new("verdict".into(), VERDICTS.to_vec())])?;
    let summary = crate::metrics::join(order.lazy(), summary.lazy(), &["verdict"], JoinType::Left)
        .filter(col("rows").is_not_null());

    let mut report = Report {
        frames: vec![
            Frame::new(
                format!(
                    "netrec diff: {} vs {} by {}: {regressed} regressed",
                    args.base.display(),
                    args.candidate.display(),
                    base.ctx.by_label()
                ),
                summary,
            ),
            Frame::new("Compared", rows.lazy()),
        ],
        ..Default::default()
    };
    for (name, side) in [("base", &base), ("candidate", &cand)] {
        let (lost, _) = side.ctx.lost_events();
        if lost > 0 {
            report.warnings.push(format!("the {name} trace lost {lost} events; its counts may be low"));
        }
    }
    if matches!(args.format, Format::Json | Format::Csv) {
        for w in &report.warnings {
            eprintln!("netrec-analyze: warning: {w}");
        }
    }
    crate::output::write(report, &crate::output::Style { format: args.format, local_time: false }, out)?;
    out.flush()?;
    Ok(if regressed > 0 { Outcome::Regressed(regressed) } else { Outcome::Ok })
}
