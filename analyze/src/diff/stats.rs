//! The two-sample test on latency: Mann–Whitney U (statrs), as
//! scipy.stats.mannwhitneyu(method="asymptotic") computes it: mid-ranks,
//! tie-corrected variance, continuity correction. Not statrs' exact method:
//! in statrs 0.19.1 it returns p = 1 for two fully separated samples of 5
//! (scipy: 0.0079). Below --min-samples (20) no verdict uses the p-value.
//!
//! With the p-value, the effect size its U gives: Vargha and Delaney's A,
//! the chance that a candidate sample is slower than a base one (ties
//! half). Hundreds of samples make a shift of a few percent significant,
//! and two runs of one workload on one machine differ by that much: in CI
//! the gate workload's loopback rtt p50 moved 19 % (476 -> 565 us, p =
//! 0.003 over 330 samples a side, so A = 0.57); a handler 2 ms slower gave
//! A = 0.97 (tests/capture/gate.rs).

use statrs::stats_tests::mannwhitneyu::{mannwhitneyu, MannWhitneyUMethod};
use statrs::stats_tests::Alternative;

/// Samples kept per side: above it the sorted samples are thinned to this
/// many evenly spaced ranks (the distribution's shape kept, the test's
/// power that of this many samples; memory bounded).
pub const MAX_SAMPLES: usize = 1 << 20;

/// Sorted (value, count) pairs as the samples they stand for, thinned past
/// [`MAX_SAMPLES`].
pub fn expand(values: &[u64], counts: &[u64]) -> Vec<u64> {
    let total: u64 = counts.iter().sum();
    let keep = (total as usize).min(MAX_SAMPLES);
    let mut out = Vec::with_capacity(keep);
    if total as usize <= MAX_SAMPLES {
        for (&v, &n) in values.iter().zip(counts) {
            out.extend(std::iter::repeat_n(v, n as usize));
        }
        return out;
    }
    // The sample at rank (i + 1/2)·total/keep, for i in 0..keep.
    let (mut at, mut below) = (0usize, 0u64);
    for i in 0..keep as u64 {
        let rank = ((2 * i + 1) as u128 * total as u128 / (2 * keep as u128)) as u64;
        while below + counts[at] <= rank {
            below += counts[at];
            at += 1;
        }
        out.push(values[at]);
    }
    out
}

/// The U test of two samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Test {
    /// Two-sided p-value that both come from one distribution.
    pub p_value: f64,
    /// Vargha-Delaney A: P(candidate > base) + P(candidate = base) / 2.
    pub a12: f64,
}

/// The U test of `candidate` against `base`; None when either is empty.
pub fn test(base: &[u64], candidate: &[u64]) -> Option<Test> {
    if base.is_empty() || candidate.is_empty() {
        return None;
    }
    // statrs returns the U of its first sample: the candidate's.
    mannwhitneyu(candidate, base, MannWhitneyUMethod::AsymptoticInclContinuityCorrection, Alternative::TwoSided)
        .ok()
        .map(|(u, p_value)| Test { p_value, a12: u / (base.len() as f64 * candidate.len() as f64) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_keeps_counts_and_thins_evenly() {
        assert_eq!(expand(&[1, 5], &[2, 3]), vec![1, 1, 5, 5, 5]);
        let big = expand(&[10, 20], &[3 << 20, 1 << 20]);
        assert_eq!(big.len(), MAX_SAMPLES);
        assert_eq!(big.iter().filter(|&&v| v == 10).count(), 3 << 18);
    }

    #[test]
    fn identical_inputs_are_not_different() {
        let a: Vec<u64> = (0..200).map(|i| i % 37).collect();
        let same = test(&a, &a).unwrap();
        assert!(same.p_value > 0.99);
        assert_eq!(same.a12, 0.5);
        assert_eq!(test(&[], &a), None);
    }

    #[test]
    fn a12_is_the_share_of_pairs_the_candidate_is_slower_in() {
        // Pairs (base, candidate): 2 slower, 1 tied, 1 faster of 4.
        assert_eq!(test(&[10, 30], &[20, 30]).unwrap().a12, (2.0 + 0.5) / 4.0);
        assert_eq!(test(&[1, 2, 3], &[7, 8]).unwrap().a12, 1.0);
        assert_eq!(test(&[7, 8], &[1, 2, 3]).unwrap().a12, 0.0);
    }
}
