//! Thresholds and verdicts, as expressions over the two sides joined.

use polars::prelude::*;

use super::stats;
use super::DiffArgs;
use crate::measures;
use crate::output::collect;

/// Every verdict, worst first: the order rows are listed in.
pub const VERDICTS: [&str; 7] =
    ["regressed", "improved", "within noise", "too few samples", "new", "gone", "unchanged"];

/// Relative change that counts, for every metric or those matching a pattern.
#[derive(Debug, Clone)]
pub struct Threshold {
    pub metric: Option<glob::Pattern>,
    pub share: f64,
}

impl Threshold {
    pub fn parse(s: &str) -> Result<Threshold, String> {
        let (metric, pct) = match s.rsplit_once('=') {
            Some((m, p)) => (Some(glob::Pattern::new(m).map_err(|e| format!("{m:?}: {e}"))?), p),
            None => (None, s),
        };
        let number = pct.trim().trim_end_matches('%');
        let share = number
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("{pct:?} is not a percentage (examples: 10%, call:*=25%)"))?;
        Ok(Threshold { metric, share: share / 100.0 })
    }
}

const DEFAULT_SHARE: f64 = 0.10;

/// The threshold of each metric: the last --threshold naming it, else the
/// last bare one, else 10%.
fn shares(metrics: &StringChunked, thresholds: &[Threshold]) -> Vec<f64> {
    let default = thresholds.iter().rev().find(|t| t.metric.is_none()).map_or(DEFAULT_SHARE, |t| t.share);
    metrics
        .iter()
        .map(|m| {
            let m = m.unwrap_or_default();
            thresholds
                .iter()
                .rev()
                .find(|t| t.metric.as_ref().is_some_and(|p| p.matches(m)))
                .map_or(default, |t| t.share)
        })
        .collect()
}

fn verdict_of(new: Expr, gone: Expr, too_few: Expr, unchanged: Expr, noise: Expr, worse: Expr) -> Expr {
    when(new)
        .then(lit("new"))
        .when(gone)
        .then(lit("gone"))
        .when(too_few)
        .then(lit("too few samples"))
        .when(unchanged)
        .then(lit("unchanged"))
        .when(noise)
        .then(lit("within noise"))
        .when(worse)
        .then(lit("regressed"))
        .otherwise(lit("improved"))
        .alias("verdict")
}

fn abs(e: Expr) -> Expr {
    when(e.clone().lt(lit(0.0))).then(lit(0.0) - e.clone()).otherwise(e)
}

/// The relative change in percent (+100: doubled); null from zero.
fn change(base: Expr, cand: Expr) -> Expr {
    when(base.clone().gt(lit(0.0)))
        .then(lit(100.0) * (cand - base.clone()) / base)
        .otherwise(lit(Null {}).cast(DataType::Float64))
        .alias("change_pct")
}

/// Totals compared: keys, metric, base, candidate, change (relative), verdict.
pub fn counts(base: &DataFrame, cand: &DataFrame, on: &[&str], args: &DiffArgs) -> PolarsResult<LazyFrame> {
    let side = |df: &DataFrame, name: &str| {
        let mut select: Vec<Expr> = on.iter().map(|c| col(*c)).collect();
        select.push(col("value").alias(name));
        select.push(col("per_calls").alias(format!("{name}_calls")));
        df.clone().lazy().select(select)
    };
    let joined = collect(crate::metrics::join(side(base, "base"), side(cand, "candidate"), on, JoinType::Full))?;
    let share = shares(joined.column("metric")?.str()?, &args.thresholds);
    let metrics: Vec<String> =
        joined.column("metric")?.str()?.iter().map(|m| m.unwrap_or_default().to_string()).collect();
    let floor: Vec<f64> = metrics
        .iter()
        .map(|m| if measures::counts_bytes(m) { args.min_bytes as f64 } else { args.min_samples as f64 })
        .collect();
    let events: Vec<bool> = metrics.iter().map(|m| measures::counts_events(m) && !m.contains(" per ")).collect();
    let mut df = joined;
    df.with_column(Column::new("threshold".into(), share))?;
    df.with_column(Column::new("floor".into(), floor))?;
    df.with_column(Column::new("events".into(), events))?;

    let (b, c) = (col("base"), col("candidate"));
    let diff = abs(c.clone() - b.clone());
    // A ratio's floor is its denominator's: fewer calls than --min-samples on a side.
    let min_calls = lit(args.min_samples as f64);
    let too_few = when(col("base_calls").is_not_null().or(col("candidate_calls").is_not_null()))
        .then(col("base_calls").lt(min_calls.clone()).or(col("candidate_calls").lt(min_calls)))
        .otherwise(b.clone().lt(col("floor")).and(c.clone().lt(col("floor"))));
    let unchanged = diff.clone().lt_eq(col("threshold") * b.clone());
    let noise = col("events").and(diff.lt_eq(lit(3.0) * (b.clone() + c.clone()).sqrt()));
    // Equal counts are unchanged however few (0 against 0 failed connects).
    let too_few = b.clone().neq(c.clone()).and(too_few);
    let verdict =
        verdict_of(b.clone().is_null(), c.clone().is_null(), too_few, unchanged, noise, c.clone().gt(b.clone()));
    let mut select: Vec<Expr> = on.iter().map(|c| col(*c)).collect();
    select.extend([verdict, b.clone(), c.clone(), change(b, c)]);
    Ok(df.lazy().select(select))
}

/// Each side's percentiles and sample lists for the U test.
fn summarized(counts: &DataFrame, keys: &[&str], prefix: &str) -> PolarsResult<LazyFrame> {
    let mut group: Vec<&str> = keys.to_vec();
    group.push("metric");
    let stats = measures::latency_summaries(counts.clone().lazy(), keys);
    let lists = counts.clone().lazy().group_by(group.iter().map(|c| col(*c)).collect::<Vec<_>>()).agg([
        col("us").sort_by([col("us")], SortMultipleOptions::default()).alias("values"),
        col("n").sort_by([col("us")], SortMultipleOptions::default()).alias("weights"),
    ]);
    let mut select: Vec<Expr> = group.iter().map(|c| col(*c)).collect();
    for (from, to) in [
        ("count", "n"),
        ("p50_us", "p50_us"),
        ("p90_us", "p90_us"),
        ("p99_us", "p99_us"),
        ("values", "values"),
        ("weights", "weights"),
    ] {
        select.push(col(from).alias(format!("{prefix}_{to}")));
    }
    Ok(crate::metrics::join(stats, lists, &group, JoinType::Inner).select(select))
}

/// Per row of `df`, the U test of its base and candidate samples: p-value and A.
fn tests(df: &DataFrame) -> PolarsResult<(Vec<Option<f64>>, Vec<Option<f64>>)> {
    let side = |name: &str| -> PolarsResult<Vec<Option<Vec<u64>>>> {
        let values = df.column(&format!("{name}_values"))?.list()?.clone();
        let weights = df.column(&format!("{name}_weights"))?.list()?.clone();
        (0..df.height())
            .map(|i| match (values.get_as_series(i), weights.get_as_series(i)) {
                (Some(v), Some(w)) => {
                    let v: Vec<u64> = v.cast(&DataType::UInt64)?.u64()?.into_no_null_iter().collect();
                    let w: Vec<u64> = w.cast(&DataType::UInt64)?.u64()?.into_no_null_iter().collect();
                    Ok(Some(stats::expand(&v, &w)))
                }
                _ => Ok(None),
            })
            .collect()
    };
    let (base, cand) = (side("base")?, side("candidate")?);
    Ok(base
        .iter()
        .zip(&cand)
        .map(|(b, c)| match (b, c) {
            (Some(b), Some(c)) => stats::test(b, c).map_or((None, None), |t| (Some(t.p_value), Some(t.a12))),
            _ => (None, None),
        })
        .unzip())
}

/// Latency compared: keys, metric, verdict, base and candidate p50, change,
/// p_value, a12, samples and p90/p99 of each side.
pub fn latency(base: &DataFrame, cand: &DataFrame, keys: &[&str], args: &DiffArgs) -> PolarsResult<LazyFrame> {
    let mut on: Vec<&str> = keys.to_vec();
    on.push("metric");
    let joined = crate::metrics::join(
        summarized(base, keys, "base")?,
        summarized(cand, keys, "candidate")?,
        &on,
        JoinType::Full,
    );
    let mut df = collect(joined)?;
    let (p, a12) = tests(&df)?;
    let share = shares(df.column("metric")?.str()?, &args.thresholds);
    df.with_column(Column::new("p_value".into(), p))?;
    df.with_column(Column::new("a12".into(), a12))?;
    df.with_column(Column::new("threshold".into(), share))?;

    let f = |c: &str| col(c).cast(DataType::Float64);
    let (b, c) = (f("base_p50_us"), f("candidate_p50_us"));
    let min_n = lit(args.min_samples);
    let too_few = col("base_n").lt(min_n.clone()).or(col("candidate_n").lt(min_n));
    let floor = lit(args.min_change.as_secs_f64() * 1e6);
    let allowed =
        when((col("threshold") * b.clone()).gt(floor.clone())).then(col("threshold") * b.clone()).otherwise(floor);
    let unchanged = abs(c.clone() - b.clone()).lt_eq(allowed);
    // Not significant, or significant but too small a shift of the whole
    // distribution to tell from two runs' difference (A within min_effect of 1/2).
    let small = abs(col("a12") - lit(0.5)).lt(lit(args.min_effect - 0.5));
    let noise = col("p_value").is_null().or(col("p_value").gt_eq(lit(args.alpha))).or(small);
    let verdict = verdict_of(
        col("base_n").is_null(),
        col("candidate_n").is_null(),
        too_few,
        unchanged,
        noise,
        c.clone().gt(b.clone()),
    );
    let mut select: Vec<Expr> = on.iter().map(|c| col(*c)).collect();
    select.extend([
        verdict,
        b.clone().alias("base"),
        c.clone().alias("candidate"),
        change(b, c),
        col("p_value"),
        col("a12"),
    ]);
    for name in ["n", "p90_us", "p99_us"] {
        select.extend([col(format!("base_{name}")), col(format!("candidate_{name}"))]);
    }
    Ok(df.lazy().select(select))
}

/// Worst verdicts first, then by key and metric.
pub fn ordered(rows: LazyFrame, keys: &[&str]) -> LazyFrame {
    let rank = VERDICTS
        .iter()
        .enumerate()
        .rev()
        .fold(lit(99u32), |acc, (i, v)| when(col("verdict").eq(lit(*v))).then(lit(i as u32)).otherwise(acc));
    let mut by = vec![rank];
    by.extend(keys.iter().map(|c| col(*c)));
    by.push(col("metric"));
    rows.sort_by_exprs(by, SortMultipleOptions::default().with_nulls_last(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_and_apply_last_match_first() {
        let t: Vec<Threshold> = ["5%", "call:*=25%", "rtt=0.5"].iter().map(|s| Threshold::parse(s).unwrap()).collect();
        let metrics = StringChunked::from_slice("m".into(), &["sent_bytes", "call:login", "rtt"]);
        assert_eq!(shares(&metrics, &t), vec![0.05, 0.25, 0.005]);
        assert_eq!(shares(&metrics, &[])[0], DEFAULT_SHARE);
        assert!(Threshold::parse("lots").is_err());
        assert!(Threshold::parse("rtt=-3%").is_err());
    }
}
