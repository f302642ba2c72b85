//! Exact nearest-rank percentiles and log2 buckets of weighted samples, as a
//! polars plan: samples are reduced to (value, count) first, so memory is the
//! number of distinct values, not of samples.

use polars::prelude::*;

use super::join;

/// The percentiles every distribution reports, in per mille, and their columns.
pub const PERCENTILES: [(u64, &str); 4] = [(500, "p50_us"), (900, "p90_us"), (990, "p99_us"), (999, "p999_us")];

/// `samples` (the `group` columns, `us` and its weight `n`) reduced to one
/// row per group and distinct value.
pub fn value_counts(samples: LazyFrame, group: &[&str]) -> LazyFrame {
    let mut by: Vec<Expr> = group.iter().map(|c| col(*c)).collect();
    by.push(col("us"));
    samples.group_by(by).agg([col("n").cast(DataType::UInt64).sum().alias("n")])
}

/// Per group of `counts` (from [`value_counts`]): count, p50_us … p999_us,
/// max_us and `buckets`, a list of {le_us, count} from 1 µs to the bucket of
/// the maximum, empty buckets included (as BCC's tools print them).
///
/// Nearest rank: the smallest value with at least p of the samples at or
/// below it, i.e. the smallest value whose running count reaches ceil(p·N).
/// The running count comes from one sort of the distinct values; the
/// smallest such value is a `min`, so no aggregation depends on row order.
///
/// Groups of several columns are numbered first and the work done on
/// (number, us, n): sorting and grouping by the group's strings (metric,
/// host, comm) took half the time of a fleet's latency, most of it
/// comparing strings. A group of one column is its own key (numbering the
/// 2.4 M lifetimes of a fleet's one group cost memory and bought nothing).
pub fn summarize(counts: LazyFrame, group: &[&str]) -> LazyFrame {
    if let [key] = group {
        return summarize_by(counts, key);
    }
    let by: Vec<Expr> = group.iter().map(|c| col(*c)).collect();
    // Sorted: the plan reads `groups` twice, and its numbers must agree.
    let groups = counts
        .clone()
        .select(by.clone())
        .unique(None, UniqueKeepStrategy::Any)
        .sort_by_exprs(by.clone(), SortMultipleOptions::default())
        .with_row_index(GROUP, None);
    let numbered = join(counts, groups.clone(), group, JoinType::Inner).select([col(GROUP), col("us"), col("n")]);
    let summary = summarize_by(numbered, GROUP);
    let mut select = by;
    select.push(col("count"));
    select.extend(PERCENTILES.iter().map(|(_, c)| col(*c)));
    select.extend([col("max_us"), col("buckets")]);
    join(groups, summary, &[GROUP], JoinType::Left).select(select)
}

/// A group's number in [`summarize`].
const GROUP: &str = "group_id";

/// [`summarize`] of groups of one column, `key`.
fn summarize_by(counts: LazyFrame, key: &str) -> LazyFrame {
    let g = || col(key);
    let running = counts
        .clone()
        .sort_by_exprs([g(), col("us")], SortMultipleOptions::default().with_maintain_order(false))
        .with_columns([
            col("n").cum_sum(false).over([g()]).expect("partition columns given").alias("running"),
            col("n").sum().over([g()]).expect("partition columns given").alias("total"),
        ]);
    let mut aggs = vec![col("n").sum().alias("count")];
    for (per_mille, name) in PERCENTILES {
        let rank = (col("total") * lit(per_mille) + lit(999u64)) / lit(1000u64);
        aggs.push(col("us").filter(col("running").gt_eq(rank)).min().alias(name));
    }
    aggs.push(col("us").max().alias("max_us"));
    let stats = running.group_by([g()]).agg(aggs);

    // Bucket k holds (2^(k-1), 2^k - 1]; 0 and 1 share the first.
    let bits = (lit(64u32) - col("us").cast(DataType::UInt64).bitwise_leading_zeros().cast(DataType::UInt32))
        .cast(DataType::UInt32);
    let k = when(bits.clone().lt(lit(1u32))).then(lit(1u32)).otherwise(bits).alias("k");
    let filled = counts.with_column(k).group_by([g(), col("k")]).agg([col("n").sum().alias("count")]);
    let ks = filled
        .clone()
        .group_by([g()])
        .agg([col("k").max().alias("top")])
        .with_column(int_ranges(lit(1u32), col("top") + lit(1u32), lit(1u32), DataType::UInt32).alias("k"))
        .explode(by_name(["k"], true, false), ExplodeOptions { empty_as_null: false, keep_nulls: false })
        .select([g(), col("k").cast(DataType::UInt32)]);
    // Values are µs of u64 ns at most (< 2^55): k stays below 64, and 2^k is exact in f64.
    let le = (lit(2.0f64).pow(col("k").cast(DataType::Float64)).cast(DataType::UInt64) - lit(1u64)).alias("le_us");
    let buckets = join(ks, filled, &[key, "k"], JoinType::Left)
        .with_columns([le, col("count").fill_null(lit(0u64))])
        .group_by([g()])
        .agg([as_struct(vec![col("le_us"), col("count")])
            .sort_by([col("k")], SortMultipleOptions::default())
            .alias("buckets")]);
    join(stats, buckets, &[key], JoinType::Left)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(values: &[(u64, u32)]) -> DataFrame {
        let (us, n): (Vec<u64>, Vec<u32>) = values.iter().copied().unzip();
        let samples = df!("g" => vec!["a"; us.len()], "us" => us, "n" => n).unwrap().lazy();
        summarize(value_counts(samples, &["g"]), &["g"]).collect().unwrap()
    }

    fn get(df: &DataFrame, c: &str) -> u64 {
        df.column(c).unwrap().cast(&DataType::UInt64).unwrap().u64().unwrap().get(0).unwrap()
    }

    #[test]
    fn percentiles_are_exact_nearest_rank() {
        let df = summary(&(1..=1000).map(|v| (v, 1)).collect::<Vec<_>>());
        let got: Vec<u64> =
            ["count", "p50_us", "p90_us", "p99_us", "p999_us", "max_us"].iter().map(|c| get(&df, c)).collect();
        assert_eq!(got, [1000, 500, 900, 990, 999, 1000]);
        let one = summary(&[(7, 1)]);
        assert_eq!((get(&one, "p50_us"), get(&one, "p999_us"), get(&one, "max_us")), (7, 7, 7));
        // Weights count as that many samples: 9 × 10 µs and 1 × 500 µs.
        let w = summary(&[(500, 1), (10, 9)]);
        assert_eq!((get(&w, "count"), get(&w, "p90_us"), get(&w, "p99_us")), (10, 10, 500));
    }

    #[test]
    fn buckets_follow_bcc_log2_ranges() {
        let df = summary(&[0, 1, 2, 3, 4, 7, 8, 100].map(|v| (v, 1)));
        let got = crate::output::cells::buckets(df.column("buckets").unwrap()).unwrap();
        assert_eq!(got[0], vec![(1, 2), (3, 2), (7, 2), (15, 1), (31, 0), (63, 0), (127, 1)]);
    }
}
