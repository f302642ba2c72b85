//! netrec-analyze: offline analysis of netrec capture segments.

mod check;
mod cli;
mod diff;
mod input;
mod measures;
mod metrics;
mod output;
mod pack;
mod query;
mod redact;
mod replay;
mod report;
mod validate;

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use cli::{Cli, Command, Common, Selection};
use input::damage;
use metrics::by::By;
use metrics::Ctx;
use output::{Format, Report, Style};

/// Exit codes: 0 ok; 1 --strict and events were lost, diff found a
/// regression, check found a violation; 2 error.
pub enum Outcome {
    Ok,
    LostEvents,
    Regressed(usize),
    Violations(usize),
    Invalid(usize),
}

/// A trace opened for analysis: its segments' footers checked, the
/// selection resolved against its start, split by `by`.
pub fn open(inputs: &[std::path::PathBuf], selection: &Selection, by: By) -> Result<Ctx> {
    let trace = input::Trace::open(inputs)?;
    for p in &trace.skipped_in_progress {
        eprintln!(
            "netrec-analyze: warning: {}: skipped, unfinished (still being written, or its capture was killed)",
            p.display()
        );
    }
    let filters = selection.filters(trace.start_ns())?;
    let hosts: std::collections::BTreeSet<&str> = trace.segments.iter().map(|s| s.host.as_str()).collect();
    if let Some(h) = filters.hosts.iter().find(|h| !hosts.contains(h.as_str())) {
        anyhow::bail!(
            "--host {h}: no segment was recorded on that host (hosts in the trace: {})",
            hosts.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    let ctx = Ctx { trace: std::sync::Arc::new(trace), filters, by };
    // A pid names one process only on its host.
    Ok(Ctx { by: by.for_hosts(ctx.hosts()), ..ctx })
}

/// Losses in range as a warning, and the report written.
pub fn finish(ctx: &Ctx, mut report: Report, format: Format, local: bool, out: &mut dyn Write) -> Result<u64> {
    let (lost, where_) = ctx.lost_events();
    report.lost_events = lost;
    if lost > 0 {
        report.warnings.push(format!(
            "the capture lost {lost} events in this range; results may undercount ({})",
            where_.join(", ")
        ));
    }
    if matches!(format, Format::Json | Format::Csv) {
        for w in &report.warnings {
            eprintln!("netrec-analyze: warning: {w}");
        }
    }
    output::write(report, &Style { format, local_time: local }, out)?;
    out.flush()?;
    Ok(lost)
}

fn analyze(
    common: &Common,
    by: By,
    report_of: impl FnOnce(&Ctx) -> Result<Report>,
    out: &mut dyn Write,
) -> Result<Outcome> {
    let ctx = open(&common.inputs, &common.selection, by)?;
    let report = report_of(&ctx)?;
    let lost = finish(&ctx, report, common.format, common.local, out)?;
    Ok(if common.strict && lost > 0 { Outcome::LostEvents } else { Outcome::Ok })
}

fn run(cli: Cli, out: &mut dyn Write) -> Result<Outcome> {
    match cli.command {
        Command::Info(common) => analyze(&common, By::Pid, metrics::info::run, out),
        Command::Netio { common, by, top } => {
            let args = metrics::netio::NetioArgs { interval_ns: common.interval_ns(), top };
            analyze(&common, by, |ctx| metrics::netio::run(ctx, &args), out)
        }
        Command::Churn { common, by, short } => {
            let args =
                metrics::churn::ChurnArgs { interval_ns: common.interval_ns(), short_ns: short.as_nanos() as i64 };
            analyze(&common, by, |ctx| metrics::churn::run(ctx, &args), out)
        }
        Command::Latency { common, by } => analyze(&common, by, metrics::latency::run, out),
        Command::Calls { common, by } => {
            let interval_ns = common.interval_ns();
            analyze(&common, by, |ctx| metrics::calls::run(ctx, interval_ns), out)
        }
        Command::Diff(args) => diff::run(&args, out),
        Command::Check(args) => check::run(&args, out),
        Command::Validate(args) => validate::run(&args, out),
        Command::Redact(args) => redact::run(&args, out),
        Command::Report(args) => report::run(&args, out),
        Command::Pack(args) => pack::run(&args, out),
        Command::Replay(args) => replay::run(&args, out),
    }
}

/// `run`, with a failure inside polars (an error, or a panic on one of its
/// threads) traced to the damaged segment it came from, in one line.
fn guarded(cli: Cli, out: &mut dyn Write) -> Result<Outcome> {
    let inputs = cli.command.inputs();
    let failure = match damage::quietly(|| run(cli, out)) {
        Ok(Ok(outcome)) => return Ok(outcome),
        Ok(Err(e)) if !damage::from_polars(&e) => return Err(e),
        Ok(Err(e)) => e,
        Err(panic) => anyhow::anyhow!("polars failed: {panic}"),
    };
    let segments = input::discover::discover(&inputs).map(|f| f.segments).unwrap_or_default();
    match damage::first_damaged(&segments) {
        Some((path, why)) => anyhow::bail!(
            "{}: damaged segment, its data does not decode ({why}); move it aside to read the others",
            path.display()
        ),
        None => Err(failure),
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe))
}

/// Polars allocates and frees each morsel's column buffers (MiBs each).
/// glibc serves them with mmap and trims the heap on free, so every
/// morsel page-faults its buffers in again: netio --by host over the
/// bench fleet took 2.0 M faults and spent 3.3 of its 9.6 CPU seconds in
/// the kernel. Kept in the heap: 52 k faults, 0.73x the time (BENCHMARKS.md).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_malloc() {
    // SAFETY: mallopt only sets allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 20);
    }
}
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}

fn main() -> ExitCode {
    tune_malloc();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            let _ = e.print(); // --help, --version
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One line: what is wrong and what would be right, without the usage block.
            let text = e.render().to_string();
            let parts: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("For more information") && !l.starts_with("Usage:"))
                .collect();
            eprintln!("netrec-analyze: {}", parts.join(" ").trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    // Stdout alone flushes every line: one write(2) per row of a big report.
    let mut out = io::BufWriter::with_capacity(1 << 16, io::stdout().lock());
    match guarded(cli, &mut out) {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::LostEvents) => {
            eprintln!("netrec-analyze: --strict: the capture lost events in the analyzed range");
            ExitCode::from(1)
        }
        Ok(Outcome::Regressed(n)) => {
            eprintln!("netrec-analyze: diff: {n} regressed");
            ExitCode::from(1)
        }
        Ok(Outcome::Violations(n)) => {
            eprintln!("netrec-analyze: check: {n} violations");
            ExitCode::from(1)
        }
        Ok(Outcome::Invalid(n)) => {
            eprintln!("netrec-analyze: validate: {n} problems");
            ExitCode::from(1)
        }
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // The whole chain, on one line even where a cause spans several.
            let chain = format!("{e:#}");
            eprintln!(
                "netrec-analyze: {}",
                chain.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
            );
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;

    /// The shipped samples with bytes changed inside their data pages (the
    /// footer intact, so each still opens), under every subcommand: no run
    /// panics or hangs, and every one that fails says so in one line naming
    /// the file. Some of these make polars' decoder assert (about 1 in 150).
    #[test]
    fn damaged_segments_never_panic_and_are_named() {
        const MUTATIONS: usize = 1500;
        let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples");
        let dir = tempfile::tempdir().unwrap();
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: usize| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % n as u64) as usize
        };
        let (mut failed, mut damaged) = (0, 0);
        for sample in ["nginx-keepalive", "mariadb-logins"] {
            let file = std::fs::read_dir(samples.join(sample).join("segments")).unwrap().next().unwrap().unwrap();
            let data = std::fs::read(file.path()).unwrap();
            // Footer: its length in the 4 bytes before the trailing "PAR1".
            let footer = u32::from_le_bytes(data[data.len() - 8..data.len() - 4].try_into().unwrap()) as usize;
            let pages = 4..data.len() - 8 - footer;
            for i in 0..MUTATIONS {
                let mut bytes = data.clone();
                for _ in 0..1 + next(4) {
                    bytes[pages.start + next(pages.len())] = next(256) as u8;
                }
                // A new file each time, the last one unlinked: a file polars may
                // still have mapped is never truncated under it (SIGBUS).
                let name = format!("seg-{sample}-{i}.parquet");
                let seg = dir.path().join(&name);
                std::fs::write(&seg, &bytes).unwrap();
                let cmd = ["netio", "churn", "latency", "calls", "info", "diff", "replay"][i % 7];
                let path = seg.to_str().unwrap().to_string();
                let path = path.as_str();
                let args = match cmd {
                    "diff" => vec!["netrec-analyze", cmd, path, path, "--format", "json"],
                    _ => vec!["netrec-analyze", cmd, path, "--format", "json"],
                };
                let cli = Cli::try_parse_from(args).unwrap();
                // On a thread of its own: a run that hangs fails the test, not the CI job.
                let (tx, rx) = std::sync::mpsc::channel();
                std::thread::spawn(move || {
                    let _ = tx.send(guarded(cli, &mut Vec::new()).map(|_| ()));
                });
                let result = rx
                    .recv_timeout(Duration::from_secs(60))
                    .unwrap_or_else(|_| panic!("{sample} #{i} ({cmd}) did not finish in 60 s"));
                if let Err(e) = result {
                    let line = format!("{e:#}");
                    assert!(!line.contains('\n') && line.contains(&name), "{sample} #{i} ({cmd}): {line}");
                    failed += 1;
                    damaged += line.contains("damaged segment") as usize;
                }
                std::fs::remove_file(&seg).unwrap();
            }
        }
        eprintln!("{failed} of {} runs failed, {damaged} of them naming a damaged segment", 2 * MUTATIONS);
        assert!(damaged > 0 && failed >= damaged, "{failed} failed, {damaged} as damaged segments");
    }
}
