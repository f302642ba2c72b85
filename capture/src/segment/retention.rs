//! Flight recorder: delete this capture's oldest segments to stay within limits.

use std::collections::VecDeque;
use std::path::PathBuf;

pub struct Retention {
    max_disk: Option<u64>,
    max_segments: Option<usize>,
    kept: VecDeque<(PathBuf, u64)>,
    total: u64,
}

impl Retention {
    pub fn new(max_disk: Option<u64>, max_segments: Option<usize>) -> Retention {
        Retention { max_disk, max_segments, kept: VecDeque::new(), total: 0 }
    }

    /// Records a finished segment and returns the segments to delete, oldest first.
    /// The newest segment is always kept.
    pub fn add(&mut self, path: PathBuf, size: u64) -> Vec<PathBuf> {
        self.kept.push_back((path, size));
        self.total += size;
        let mut evict = Vec::new();
        while self.kept.len() > 1 && self.over_limit() {
            let (p, s) = self.kept.pop_front().expect("len > 1");
            self.total -= s;
            evict.push(p);
        }
        evict
    }

    fn over_limit(&self) -> bool {
        self.max_segments.is_some_and(|n| self.kept.len() > n) || self.max_disk.is_some_and(|m| self.total > m)
    }

    pub fn kept(&self) -> usize {
        self.kept.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_within_limits() {
        let mut r = Retention::new(Some(250), Some(3));
        assert!(r.add("a".into(), 100).is_empty());
        assert!(r.add("b".into(), 100).is_empty());
        assert_eq!(r.add("c".into(), 100), vec![PathBuf::from("a")]);
        assert_eq!(r.add("d".into(), 10), Vec::<PathBuf>::new());
        assert_eq!(r.add("e".into(), 500), vec![PathBuf::from("b"), PathBuf::from("c"), PathBuf::from("d")]);
        assert_eq!(r.kept(), 1);
    }

    #[test]
    fn no_limits_keeps_everything() {
        let mut r = Retention::new(None, None);
        for i in 0..10 {
            assert!(r.add(format!("{i}").into(), 1 << 30).is_empty());
        }
    }
}
