//! `redact` on hand-made frames: Crypto-PAn's mapping equals the reference
//! implementation's (Python's yacryptopan) for IPv4 and IPv6, and bad keys
//! are refused in one line.

use super::{dir, s};
use crate::frames::*;

const ADDRESSES: [&str; 10] = [
    "127.0.0.1",
    "10.0.0.1",
    "10.0.0.2",
    "10.0.1.77",
    "192.168.100.200",
    "8.8.8.8",
    "255.255.255.255",
    "::1",
    "2001:db8::1",
    "fe80::1c2d:3e4f:5a6b:7c8d",
];

/// pid -> remote address, from `netio --by conn`.
fn remote_of(trace: &str) -> std::collections::BTreeMap<u64, String> {
    json_rows(&["netio", trace, "--by", "conn"])
        .iter()
        .filter(|r| r.get("time").is_some())
        .map(|r| (r["pid"].as_u64().unwrap(), r["raddr"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn crypto_pan_matches_the_reference_implementation() {
    let d = dir();
    let trace = d.path().join("trace");
    std::fs::create_dir(&trace).unwrap();
    let events: Vec<Ev> = ADDRESSES
        .iter()
        .enumerate()
        .map(|(i, a)| Ev {
            raddr: Some(a),
            laddr: Some("10.0.0.9"),
            ..io("send", T0 + i as i64, 100 + i as u32, "app", 10)
        })
        .collect();
    write_segment(&trace, &SegmentSpec::default(), &events);
    // The key of Crypto-PAn's own sample (its 32 ASCII bytes).
    let key_text = "boojahyoo3vaeToong0Eijee7Ahz3yee";
    let key = d.path().join("key");
    std::fs::write(&key, key_text).unwrap();
    let out = d.path().join("redacted");
    let r = analyze(&["redact", s(&trace), "-o", s(&out), "--key-file", s(&key)]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    let script = "import sys, ipaddress, yacryptopan\np = yacryptopan.CryptoPAn(sys.argv[1].encode())\nfor a in sys.argv[2:]:\n    print(ipaddress.ip_address(p.anonymize(a)))\n";
    let py = std::process::Command::new("python3").args(["-c", script, key_text]).args(ADDRESSES).output().unwrap();
    assert!(py.status.success(), "yacryptopan (tests/run installs it): {}", String::from_utf8_lossy(&py.stderr));
    let want: Vec<String> = String::from_utf8(py.stdout).unwrap().lines().map(String::from).collect();
    let got = remote_of(s(&out));
    for (i, a) in ADDRESSES.iter().enumerate() {
        let have = got[&(100 + i as u64)].parse::<std::net::IpAddr>().unwrap().to_string();
        assert_eq!(have, want[i], "{a}");
    }
    assert_eq!(remote_of(s(&trace))[&100], "127.0.0.1", "the input is untouched");

    // Keys: too short, not hex; and the key never in the output.
    for (text, needle) in [("short", "not a key"), (&"zz".repeat(32)[..], "not a key")] {
        std::fs::write(&key, text).unwrap();
        let r = analyze(&["redact", s(&trace), "-o", s(&d.path().join("x")), "--key-file", s(&key)]);
        assert_eq!(r.code, 2);
        assert!(
            r.stderr.contains(needle) && r.stderr.contains("--key-file") && r.stderr.trim().lines().count() == 1,
            "{}",
            r.stderr
        );
        assert!(!d.path().join("x").exists(), "nothing written");
    }
}
