//! Exact percentiles and log2 buckets over a set of durations in microseconds.

use crate::output::Bucket;

#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub buckets: Vec<Bucket>,
}

/// Nearest-rank percentile of sorted values: the smallest value with at
/// least `per_mille`/1000 of the values at or below it. Integer arithmetic:
/// 99.9% of 1000 values must be rank 999, not a float's 1000.
fn percentile(sorted: &[u64], per_mille: u64) -> u64 {
    let n = sorted.len() as u64;
    let rank = (per_mille * n).div_ceil(1000).max(1);
    sorted[(rank.min(n) - 1) as usize]
}

/// Bucket k holds (2^(k-1), 2^k - 1]; 0 and 1 share the first, as in BCC.
fn bucket_of(v: u64) -> u32 {
    (64 - v.leading_zeros()).max(1)
}

pub fn summarize(mut values: Vec<u64>) -> Option<Summary> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let top = bucket_of(*values.last().expect("not empty"));
    let mut counts = vec![0u64; top as usize + 1];
    for &v in &values {
        counts[bucket_of(v) as usize] += 1;
    }
    let buckets = (1..=top)
        .map(|k| Bucket { le_us: if k >= 64 { u64::MAX } else { (1u64 << k) - 1 }, count: counts[k as usize] })
        .collect();
    Some(Summary {
        count: values.len() as u64,
        p50: percentile(&values, 500),
        p90: percentile(&values, 900),
        p99: percentile(&values, 990),
        p999: percentile(&values, 999),
        max: *values.last().expect("not empty"),
        buckets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_exact_nearest_rank() {
        let s = summarize((1..=1000).collect()).unwrap();
        assert_eq!((s.count, s.p50, s.p90, s.p99, s.p999, s.max), (1000, 500, 900, 990, 999, 1000));
        let one = summarize(vec![7]).unwrap();
        assert_eq!((one.p50, one.p999, one.max), (7, 7, 7));
    }

    #[test]
    fn buckets_follow_bcc_log2_ranges() {
        let s = summarize(vec![0, 1, 2, 3, 4, 7, 8, 100]).unwrap();
        let got: Vec<(u64, u64)> = s.buckets.iter().map(|b| (b.le_us, b.count)).collect();
        assert_eq!(got, vec![(1, 2), (3, 2), (7, 2), (15, 1), (31, 0), (63, 0), (127, 1)]);
        assert!(summarize(vec![]).is_none());
    }
}
