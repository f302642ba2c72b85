//! netrec-capture: record TCP traffic and process events with eBPF into Parquet segments.

mod abi;
mod budget;
mod calls;
mod cgroup;
mod cli;
mod cost;
mod event;
mod host;
mod live;
mod privilege;
mod probe;
mod run;
mod segment;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let args = match cli::Args::try_parse_from(&argv) {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let outcome = cli::Config::from_args(args, argv).and_then(|cfg| {
        let quiet = cfg.quiet;
        run::run(cfg).map(|s| (s, quiet))
    });
    match outcome {
        Ok((s, quiet)) => {
            if s.lost > 0 {
                eprintln!(
                    "netrec-capture: {} events were lost in the kernel (ring buffer full): raise --ringbuf-size or narrow with --pid/--port",
                    s.lost
                );
            }
            if s.untracked > 0 {
                eprintln!(
                    "netrec-capture: {} socket events had no socket id (socket table full): raise --max-sockets",
                    s.untracked
                );
            }
            if s.bad_records > 0 {
                eprintln!("netrec-capture: {} malformed ring-buffer records were skipped", s.bad_records);
            }
            if !quiet {
                eprintln!(
                    "netrec-capture: done: {} events in {} segments ({} kept), {} lost",
                    s.events, s.segments_written, s.segments_kept, s.lost
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            // One line, whatever a cause (a libbpf message) spans.
            let chain = format!("{e:#}");
            eprintln!(
                "netrec-capture: {}",
                chain.split('\n').map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
            );
            ExitCode::from(2)
        }
    }
}
