//! `replay` on real captures: `--follow` on a capture while it runs sees
//! exactly what the finished trace holds, and `--view netio` prints what
//! `netrec-capture --live` printed during the capture.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::support::*;

fn analyze_bin() -> std::path::PathBuf {
    Path::new(env!("CARGO_BIN_EXE_netrec-capture")).with_file_name("netrec-analyze")
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text.lines().map(str::to_string).collect();
    v.sort();
    v
}

#[test]
fn follow_sees_every_event_of_the_finished_trace_and_views_repeat_live() {
    let _g = serial();
    let dir = tempdir();
    let out = dir.path().join("trace");
    // The follower starts first: it waits for the capture's first segment.
    let mut follower = Command::new(analyze_bin())
        .args(["replay", "--follow", out.to_str().unwrap(), "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut follower_out = follower.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        follower_out.read_to_string(&mut s).unwrap();
        s
    });
    let server = Server::start();
    let cap = Capture::start(&out, &["--rotate-seconds", "1", "--live"]);
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(server.run_client());
        std::thread::sleep(Duration::from_millis(1200));
    }
    let served = server.finish();
    let (status, live, stderr) = cap.stop();
    assert!(status.success(), "{stderr:?}");

    // The follower ends by itself once the capture's manifest says it finished.
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(s) = follower.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = follower.kill();
            panic!("replay --follow did not end within 30 s of the capture");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    follower.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(code.success(), "{err}");
    let followed = reader.join().unwrap();

    let segments = read_segments(&out);
    assert!(segments.len() >= 3, "{} segments: the follower saw several", segments.len());
    let replayed = analyze(&["replay", out.to_str().unwrap(), "--format", "json"]);
    assert!(replayed.status.success());
    let replayed = String::from_utf8(replayed.stdout).unwrap();
    let rows: usize = segments.iter().map(|s| s.rows.len()).sum();
    assert_eq!(replayed.lines().count(), rows, "replay writes every row of the trace");
    assert_eq!(sorted_lines(&followed), sorted_lines(&replayed), "no more and no less than the finished trace");

    // The workload's exact bytes, in the replayed lines.
    let sent_by = |pid: u64| -> u64 {
        replayed
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|r| r["kind"] == "send" && r["pid"] == pid)
            .map(|r| r["bytes"].as_u64().unwrap())
            .sum()
    };
    for c in clients.iter().chain([&served]) {
        assert_eq!(sent_by(c["pid"].as_u64().unwrap()), expected(c).0);
    }

    // --view netio: the --live printout, line for line.
    let view = analyze(&["replay", out.to_str().unwrap(), "--view", "netio"]);
    assert!(view.status.success());
    let view = String::from_utf8(view.stdout).unwrap();
    assert!(live.lines().count() > 3, "{live}");
    assert_eq!(view, live, "replay --view netio against --live");
}
