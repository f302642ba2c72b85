//! `check TRACE --rules FILE`: absolute budgets from a TOML file, each
//! violation listed with its key and interval. Exit 1 on any violation.

use std::io::Write;
use std::ops::Range;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use polars::prelude::*;
use serde::Deserialize;
use toml::Spanned;

use crate::cli::{parse_duration, Selection, DIFF_KEYS};
use crate::measures;
use crate::metrics::by::By;
use crate::metrics::{distribution, Ctx};
use crate::output::{collect, Format, Frame, Report, TIME};
use crate::Outcome;

pub const HELP: &str = "\
A rules file holds [[rule]] tables. Each names a metric, what it is split
by (by = \"comm\" unless given; also probe, lport, rport, raddr, host), an
optional key it applies to, and one bound:

  # no failed connects, anywhere
  [[rule]]
  metric = \"failed\"
  max = 0

  # php-fpm: fewer than 50 short-lived connections in any second
  [[rule]]
  metric = \"short_lived\"
  comm = \"php-fpm\"
  max_per_second = 49

  # connect p99 below 2 ms, per comm
  [[rule]]
  metric = \"connect\"
  max_p99_us = 2000

  # at most 16 KiB sent per dispatch_command call (per query)
  [[rule]]
  metric = \"sent_bytes\"
  per = \"dispatch_command\"
  max = 16384

  # the capture lost nothing
  [[rule]]
  metric = \"lost_events\"
  max = 0

Metrics: sent_bytes, recv_bytes, opened, opened_active, opened_passive,
closed, failed, resets, short_lived, calls:<probe> (bounds: max over the
whole range, max_per_second in every interval of --interval, or max with
per = PROBE); connect, handshake, rtt, call:<probe> (bounds: max_p50_us,
max_p90_us, max_p99_us, max_p999_us, max_us); lost_events (max).

Examples:
  netrec-analyze check candidate/ --rules netrec-rules.toml
  netrec-analyze check trace.parquet --rules ci/rules.toml --format markdown >> \"$GITHUB_STEP_SUMMARY\"

Exit status: 0 every rule holds, 1 a rule is violated, 2 error (a rules file
error names its line).";

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Segment files, directories or globs
    #[arg(required = true, value_name = "PATH")]
    pub inputs: Vec<PathBuf>,
    /// The TOML rules file
    #[arg(long, value_name = "FILE")]
    pub rules: PathBuf,
    #[command(flatten)]
    pub selection: Selection,
    /// The interval of max_per_second bounds (1s: per second)
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub interval: std::time::Duration,
    /// A connection closed within this long of its open is short-lived
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = parse_duration)]
    pub short: std::time::Duration,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Show times in the local time zone instead of UTC
    #[arg(long)]
    pub local: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    rule: Vec<Spanned<RuleSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    metric: Spanned<String>,
    by: Option<Spanned<String>>,
    comm: Option<String>,
    per: Option<String>,
    max: Option<f64>,
    max_per_second: Option<f64>,
    max_p50_us: Option<f64>,
    max_p90_us: Option<f64>,
    max_p99_us: Option<f64>,
    max_p999_us: Option<f64>,
    max_us: Option<f64>,
}

/// What a rule bounds.
#[derive(Debug, Clone, PartialEq)]
enum Bound {
    Total,
    PerInterval,
    PerCall(String),
    /// A latency column: p50_us … max_us.
    Latency(&'static str),
    Lost,
}

#[derive(Debug)]
struct Rule {
    line: usize,
    metric: String,
    by: By,
    comm: Option<String>,
    bound: Bound,
    limit: f64,
}

impl Rule {
    fn text(&self) -> String {
        let what = match &self.bound {
            Bound::Total => format!("{} <= {}", self.metric, self.limit),
            Bound::PerInterval => format!("{} per interval <= {}", self.metric, self.limit),
            Bound::PerCall(p) => format!("{} per {p} call <= {}", self.metric, self.limit),
            Bound::Latency(c) => format!("{} {} <= {}", self.metric, c.replace("_us", ""), self.limit) + " us",
            Bound::Lost => format!("lost_events <= {}", self.limit),
        };
        match &self.comm {
            Some(c) => format!("{what} (comm {c})"),
            None => what,
        }
    }
}

fn line_of(text: &str, span: Range<usize>) -> usize {
    text[..span.start.min(text.len())].matches('\n').count() + 1
}

fn parse_rules(path: &PathBuf) -> Result<Vec<Rule>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("--rules {}: cannot read it", path.display()))?;
    let at = |span: Option<Range<usize>>| format!("{}:{}", path.display(), span.map_or(1, |s| line_of(&text, s)));
    let file: RulesFile = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {}", at(e.span()), e.message()))?;
    if file.rule.is_empty() {
        bail!("{}: no [[rule]] tables", path.display());
    }
    let mut rules = Vec::new();
    for spec in file.rule {
        let line = line_of(&text, spec.span());
        let spec = spec.into_inner();
        let metric_line = line_of(&text, spec.metric.span());
        let metric = spec.metric.into_inner();
        let by = match &spec.by {
            None => By::Comm,
            Some(b) => {
                let name = b.get_ref();
                DIFF_KEYS
                    .iter()
                    .copied()
                    .find(|k| clap::ValueEnum::to_possible_value(k).is_some_and(|v| v.matches(name, true)))
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "{}:{}: by = {name:?}: rules split by comm, probe, lport, rport, raddr or host",
                            path.display(),
                            line_of(&text, b.span())
                        )
                    })?
            }
        };
        let bounds = [
            spec.max.map(|v| (Bound::Total, v)),
            spec.max_per_second.map(|v| (Bound::PerInterval, v)),
            spec.max_p50_us.map(|v| (Bound::Latency("p50_us"), v)),
            spec.max_p90_us.map(|v| (Bound::Latency("p90_us"), v)),
            spec.max_p99_us.map(|v| (Bound::Latency("p99_us"), v)),
            spec.max_p999_us.map(|v| (Bound::Latency("p999_us"), v)),
            spec.max_us.map(|v| (Bound::Latency("max_us"), v)),
        ];
        let mut given = bounds.into_iter().flatten();
        let (mut bound, limit) = given.next().ok_or_else(|| {
            anyhow::anyhow!(
                "{}:{line}: rule for {metric:?} has no bound (max, max_per_second, max_p99_us, …)",
                path.display()
            )
        })?;
        if given.next().is_some() {
            bail!("{}:{line}: rule for {metric:?} has more than one bound; write one rule per bound", path.display());
        }
        let wrong = |what: &str| anyhow::anyhow!("{}:{metric_line}: {metric:?}: {what}", path.display());
        if metric == "lost_events" {
            if bound != Bound::Total {
                return Err(wrong("lost_events takes max only"));
            }
            bound = Bound::Lost;
        } else if measures::is_latency(&metric) {
            if !matches!(bound, Bound::Latency(_)) {
                return Err(wrong("a latency metric takes max_p50_us, max_p90_us, max_p99_us, max_p999_us or max_us"));
            }
        } else if is_count(&metric) {
            if matches!(bound, Bound::Latency(_)) {
                return Err(wrong("a count takes max, max_per_second, or max with per = PROBE"));
            }
            if let Some(p) = &spec.per {
                if bound != Bound::Total {
                    return Err(wrong("per = PROBE goes with max"));
                }
                bound = Bound::PerCall(p.clone());
            }
        } else {
            return Err(wrong(
                "unknown metric (sent_bytes, recv_bytes, opened, opened_active, opened_passive, closed, failed, \
                 resets, short_lived, calls:<probe>, connect, handshake, rtt, call:<probe>, lost_events)",
            ));
        }
        rules.push(Rule { line, metric, by, comm: spec.comm, bound, limit });
    }
    Ok(rules)
}

fn is_count(metric: &str) -> bool {
    measures::counts_bytes(metric) || measures::counts_events(metric)
}

/// The violations of one rule: line, rule, key, time (per interval only), value, limit.
fn violations(rule: &Rule, args: &CheckArgs, trace: &Ctx) -> Result<LazyFrame> {
    // The trace opened (and checked) once; each rule its own split and comm.
    let mut filters = trace.filters.clone();
    filters.comms.extend(rule.comm.clone());
    let ctx = Ctx { by: rule.by, filters, ..trace.clone() };
    let keys = measures::keys(rule.by);
    let key_text = keys
        .iter()
        .map(|k| lit(format!("{k}=")) + col(*k).cast(DataType::String).fill_null(lit("?")))
        .reduce(|a, b| a + lit(" ") + b)
        .expect("a key")
        .alias("key");
    let metric_is = col("metric").eq(lit(rule.metric.clone()));
    let interval_ns = args.interval.as_nanos().min(i64::MAX as u128) as i64;
    let short_ns = args.short.as_nanos() as i64;
    let null_time = || lit(Null {}).cast(DataType::Datetime(TimeUnit::Nanoseconds, None)).alias(TIME);
    let rows = match &rule.bound {
        Bound::Lost => {
            let (lost, _) = ctx.lost_events();
            let df = df!("value" => [lost as f64])?;
            df.lazy().select([lit("trace").alias("key"), null_time(), col("value")])
        }
        Bound::PerInterval => measures::per_interval(&ctx, interval_ns, short_ns)?.filter(metric_is).select([
            key_text,
            col(TIME),
            col("value").cast(DataType::Float64),
        ]),
        Bound::Total | Bound::PerCall(_) => {
            let per = measures::per_interval(&ctx, i64::MAX / 2, short_ns)?;
            let mut totals = measures::totals(per, &keys);
            if let Bound::PerCall(probe) = &rule.bound {
                totals = measures::per_call(totals, &keys, probe);
            }
            let name = match &rule.bound {
                Bound::PerCall(p) => format!("{} per {p}", rule.metric),
                _ => rule.metric.clone(),
            };
            totals.filter(col("metric").eq(lit(name))).select([key_text, null_time(), col("value")])
        }
        Bound::Latency(column) => {
            let mut group = keys.clone();
            group.push("metric");
            let counts = distribution::value_counts(measures::latency_samples(&ctx)?.filter(metric_is), &group);
            measures::latency_summaries(counts, &keys).select([
                key_text,
                null_time(),
                col(*column).cast(DataType::Float64).alias("value"),
            ])
        }
    };
    let broken = rows.filter(col("value").gt(lit(rule.limit))).select([
        lit(rule.line as u64).alias("line"),
        lit(rule.text()).alias("rule"),
        col("key"),
        col(TIME),
        col("value"),
        lit(rule.limit).alias("limit"),
    ]);
    Ok(broken)
}

pub fn run(args: &CheckArgs, out: &mut dyn Write) -> Result<Outcome> {
    let rules = parse_rules(&args.rules)?;
    let trace = crate::open(&args.inputs, &args.selection, By::Comm)?;
    let mut found = Vec::new();
    for rule in &rules {
        let v = violations(rule, args, &trace)?;
        found.push(collect(v.sort_by_exprs([col("key"), col(TIME)], SortMultipleOptions::default()))?);
    }
    let (lost, _) = trace.lost_events();
    let all = concat(found.iter().map(|d| d.clone().lazy()).collect::<Vec<_>>(), UnionArgs::default())?;
    let all = collect(all)?;
    let n = all.height();
    let per_rule: Vec<u64> = found.iter().map(|d| d.height() as u64).collect();
    let summary = df!(
        "line" => rules.iter().map(|r| r.line as u64).collect::<Vec<_>>(),
        "rule" => rules.iter().map(Rule::text).collect::<Vec<_>>(),
        "violations" => per_rule.clone(),
        "verdict" => per_rule.iter().map(|&v| if v == 0 { "holds" } else { "violated" }).collect::<Vec<_>>(),
    )?;
    let held = per_rule.iter().filter(|&&v| v == 0).count();
    let mut report = Report {
        frames: vec![
            Frame::new(format!("netrec check: {held} of {} rules hold", rules.len()), summary.lazy()),
            Frame::new("Violations", all.lazy()),
        ],
        ..Default::default()
    };
    report.lost_events = lost;
    if matches!(args.format, Format::Json | Format::Csv) {
        for w in &report.warnings {
            eprintln!("netrec-analyze: warning: {w}");
        }
    }
    crate::output::write(report, &crate::output::Style { format: args.format, local_time: args.local }, out)?;
    out.flush()?;
    Ok(if n > 0 { Outcome::Violations(n) } else { Outcome::Ok })
}
