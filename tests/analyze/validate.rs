//! `validate` on hand-made traces: overlapping captures of one host, gaps
//! without a manifest, and losses under --strict.

use super::{dir, s};
use crate::frames::*;

fn problems(args: &[&str]) -> (i32, Vec<String>) {
    let mut full = vec!["validate"];
    full.extend(args);
    full.extend(["--format", "json"]);
    let r = analyze(&full);
    let kinds = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|v| v.get("problem").map(|p| p.as_str().unwrap().to_string()))
        .collect();
    (r.code, kinds)
}

#[test]
fn overlaps_gaps_and_losses() {
    let d = dir();
    let p = d.path();
    // Capture a: segments 0 and 2 of one host (1 is missing); capture b overlaps a.
    let a0 = SegmentSpec { capture_id: "aaaa", index: 0, start: T0, end: T0 + 10 * SEC, ..Default::default() };
    let a2 = SegmentSpec {
        capture_id: "aaaa",
        index: 2,
        start: T0 + 20 * SEC,
        end: T0 + 30 * SEC,
        lost: 3,
        ..Default::default()
    };
    let b0 =
        SegmentSpec { capture_id: "bbbb", index: 0, start: T0 + 25 * SEC, end: T0 + 40 * SEC, ..Default::default() };
    for spec in [&a0, &a2, &b0] {
        write_segment(p, spec, &[io("send", spec.start, 1, "a", 10)]);
    }
    let (code, kinds) = problems(&[s(p)]);
    assert_eq!(code, 1);
    assert_eq!(kinds, ["lost", "gap", "overlap"]);
    // Another host at the same time is no overlap; losses alone pass unless --strict.
    let q = d.path().join("q");
    std::fs::create_dir(&q).unwrap();
    write_segment(&q, &SegmentSpec { lost: 2, ..a0 }, &[io("send", T0, 1, "a", 10)]);
    write_segment(&q, &SegmentSpec { host: "db2", capture_id: "cccc", ..b0 }, &[io("send", T0 + 25 * SEC, 1, "a", 10)]);
    assert_eq!(problems(&[s(&q)]), (0, vec!["lost".to_string()]));
    assert_eq!(problems(&[s(&q), "--strict"]).0, 1);
}
