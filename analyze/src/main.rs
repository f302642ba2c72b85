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

fn analyze(common: &Common, calls: bool, report_of: impl FnOnce(&Ctx) -> Result<Report>) -> Result<Outcome> {
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
    // Stdout alone flushes every line: one write(2) per row of a big report.
    let mut out = io::BufWriter::with_capacity(1 << 16, io::stdout().lock());
    output::write(&report, &style, &mut out)?;
    out.flush()?;
    Ok(if common.strict && lost > 0 { Outcome::LostEvents } else { Outcome::Ok })
}

fn run(cli: Cli) -> Result<Outcome> {
    match cli.command {
        Command::Info(common) => {
            let table = common.format == Format::Table;
            analyze(&common, false, |ctx| {
                let mut r = metrics::info::run(ctx);
                if table {
                    r.sections = r.sections.iter().flat_map(|s| s.transposed()).collect();
                }
                Ok(r)
            })
        }
        Command::Netio { common, top } => analyze(&common, false, |ctx| {
            metrics::netio::run(ctx, &metrics::netio::NetioArgs { interval_ns: common.interval_ns(), top })
        }),
        Command::Churn { common, short } => analyze(&common, false, |ctx| {
            metrics::churn::run(
                ctx,
                &metrics::churn::ChurnArgs { interval_ns: common.interval_ns(), short_ns: short.as_nanos() as i64 },
            )
        }),
        Command::Latency(common) => analyze(&common, false, metrics::latency::run),
        Command::Calls(common) => analyze(&common, true, |ctx| metrics::calls::run(ctx, common.interval_ns())),
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
    match run(cli) {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::LostEvents) => {
            eprintln!("netrec-analyze: --strict: the capture lost events in the analyzed range");
            ExitCode::from(1)
        }
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netrec-analyze: {}", format!("{e:#}").lines().next().unwrap_or("error"));
            ExitCode::from(2)
        }
    }
}
