//! netrec-analyze: offline analysis of netrec capture segments.

mod cli;
mod frame;
mod histogram;
mod input;
mod metrics;
mod output;
mod query;

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use cli::{Cli, Command, Common};
use input::damage;
use metrics::Ctx;
use output::{Format, Report, Style};

/// Exit codes: 0 ok, 1 --strict and events were lost, 2 error.
enum Outcome {
    Ok,
    LostEvents,
}

use metrics::by::By;

/// The --by a subcommand runs with: its default, or the user's if it applies.
fn split(common: &Common, calls: bool) -> Result<By> {
    match (common.by, calls) {
        (None, false) => Ok(By::Pid),
        (None, true) => Ok(By::Probe),
        (Some(By::Probe), false) => {
            anyhow::bail!("--by probe: only `calls` splits by probe (latency already shows one row per probe)")
        }
        (Some(b @ (By::Conn | By::Lport | By::Rport | By::Raddr)), true) => {
            anyhow::bail!("--by {}: calls are split by probe, pid, comm or host", format!("{b:?}").to_lowercase())
        }
        (Some(b), _) => Ok(b),
    }
}

fn analyze(
    common: &Common,
    calls: bool,
    report_of: impl FnOnce(&Ctx) -> Result<Report>,
    out: &mut dyn Write,
) -> Result<Outcome> {
    let by = split(common, calls)?;
    let trace = input::Trace::open(&common.inputs)?;
    for p in &trace.skipped_in_progress {
        eprintln!(
            "netrec-analyze: warning: {}: skipped, unfinished (still being written, or its capture was killed)",
            p.display()
        );
    }
    let filters = common.filters(trace.start_ns())?;
    let hosts: std::collections::BTreeSet<&str> = trace.segments.iter().map(|s| s.host.as_str()).collect();
    if let Some(h) = filters.hosts.iter().find(|h| !hosts.contains(h.as_str())) {
        anyhow::bail!(
            "--host {h}: no segment was recorded on that host (hosts in the trace: {})",
            hosts.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    let ctx = Ctx { trace, filters, by };
    let mut report = report_of(&ctx)?;
    let (lost, where_) = ctx.lost_events();
    report.lost_events = lost;
    if lost > 0 {
        report.warnings.push(format!(
            "the capture lost {lost} events in this range; results may undercount ({})",
            where_.join(", ")
        ));
    }
    if common.format != Format::Table {
        for w in &report.warnings {
            eprintln!("netrec-analyze: warning: {w}");
        }
    }
    let style = Style { format: common.format, local_time: common.local };
    output::write(&report, &style, out)?;
    out.flush()?;
    Ok(if common.strict && lost > 0 { Outcome::LostEvents } else { Outcome::Ok })
}

fn run(cli: Cli, out: &mut dyn Write) -> Result<Outcome> {
    match cli.command {
        Command::Info(common) => {
            let table = common.format == Format::Table;
            let info = |ctx: &Ctx| {
                let mut r = metrics::info::run(ctx);
                if table {
                    r.sections = r.sections.iter().flat_map(|s| s.transposed()).collect();
                }
                Ok(r)
            };
            analyze(&common, false, info, out)
        }
        Command::Netio { common, top } => {
            let args = metrics::netio::NetioArgs { interval_ns: common.interval_ns(), top };
            analyze(&common, false, |ctx| metrics::netio::run(ctx, &args), out)
        }
        Command::Churn { common, short } => {
            let args =
                metrics::churn::ChurnArgs { interval_ns: common.interval_ns(), short_ns: short.as_nanos() as i64 };
            analyze(&common, false, |ctx| metrics::churn::run(ctx, &args), out)
        }
        Command::Latency(common) => analyze(&common, false, metrics::latency::run, out),
        Command::Calls(common) => {
            let interval_ns = common.interval_ns();
            analyze(&common, true, |ctx| metrics::calls::run(ctx, interval_ns), out)
        }
    }
}

/// `run`, with a failure inside polars (an error, or a panic on one of its
/// threads) traced to the damaged segment it came from, in one line.
fn guarded(cli: Cli, out: &mut dyn Write) -> Result<Outcome> {
    let inputs = cli.command.common().inputs.clone();
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

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
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
    use std::time::{Duration, Instant};

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
        let seg = dir.path().join("seg.parquet");
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
                std::fs::write(&seg, &bytes).unwrap();
                let cmd = ["netio", "churn", "latency", "calls", "info"][i % 5];
                let cli =
                    Cli::try_parse_from(["netrec-analyze", cmd, seg.to_str().unwrap(), "--format", "json"]).unwrap();
                let started = Instant::now();
                let result = guarded(cli, &mut Vec::new());
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "{sample} #{i} ({cmd}) took {:?}",
                    started.elapsed()
                );
                if let Err(e) = result {
                    let line = format!("{e:#}");
                    assert!(!line.contains('\n') && line.contains("seg.parquet"), "{sample} #{i} ({cmd}): {line}");
                    failed += 1;
                    damaged += line.contains("damaged segment") as usize;
                }
            }
        }
        eprintln!("{failed} of {} runs failed, {damaged} of them naming a damaged segment", 2 * MUTATIONS);
        assert!(damaged > 0 && failed >= damaged, "{failed} failed, {damaged} as damaged segments");
    }
}
