//! `replay`: every event of a trace in time order, one line each (or as
//! per-second views), as fast as possible or at the recorded pace; or a
//! capture still being written, followed segment by segment.

mod clock;
mod follow;
mod json;
mod line;
mod merge;
mod pace;
mod rows;
mod view;

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::builder::PossibleValuesParser;
use polars::prelude::*;

use crate::cli::{parse_duration, Selection};
use crate::input::SegmentInfo;
use crate::metrics::by::By;
use crate::query::Filters;
use rows::Rows;

pub const HELP: &str = "\
Examples:
  netrec-analyze replay samples/nginx-keepalive | less
  netrec-analyze replay trace/ --kind state --port 3306        # TCP states of MySQL's connections
  netrec-analyze replay trace/ --format json | jq 'select(.kind == \"call\")'
  netrec-analyze replay trace/ --view netio --speed 1          # the --live printout, as it ran
  netrec-analyze replay trace/ --view churn --from +30s --speed 10
  netrec-analyze replay --follow /var/tmp/netrec               # while netrec-capture writes there

Lines are time, [host,] kind, pid, comm, the connection (local end first,
'>' a send, '<' a receive), then what the kind carries. Times are UTC
(--local for local time). Events of every segment and host are merged in
time order; memory holds the row groups that overlap in time, not the trace.

--follow reads each segment once it has its final name and its capture's
manifest lists it (checksum verified), and exits when the capture has
finished (its manifest says so) and every segment has been read, or on
Ctrl-C. A follower sees a segment when it closes: run the capture with
--rotate-seconds 1 (default 60) to see events within about a second.";

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Segment files, directories, globs or bundles
    #[arg(value_name = "PATH", required_unless_present = "follow", conflicts_with = "follow")]
    pub inputs: Vec<PathBuf>,
    /// Follow a directory a capture is still writing, until the capture ends
    #[arg(long, value_name = "DIR")]
    pub follow: Option<PathBuf>,
    #[command(flatten)]
    pub selection: Selection,
    /// Only events of these kinds (repeatable, or comma-separated)
    #[arg(long = "kind", value_name = "KIND", value_delimiter = ',',
          value_parser = PossibleValuesParser::new(netrec_schema::Kind::ALL.map(|k| k.name())))]
    pub kinds: Vec<String>,
    /// Output: text lines, or one JSON object per event (schema field names)
    #[arg(long, value_enum, default_value_t = ReplayFormat::Text)]
    pub format: ReplayFormat,
    /// Play at the recorded pace times FACTOR (1: real time, 10: ten times faster); default: as fast as possible
    #[arg(long, value_name = "FACTOR", value_parser = parse_speed, conflicts_with = "follow")]
    pub speed: Option<f64>,
    /// Per-second printouts instead of events: netio (netrec-capture --live's), churn (connections)
    #[arg(long, value_enum, conflicts_with = "kinds")]
    pub view: Option<View>,
    /// --view churn: a connection closed within this long of its open is short-lived
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = parse_duration)]
    pub short: std::time::Duration,
    /// Show times in the local time zone instead of UTC
    #[arg(long)]
    pub local: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplayFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum View {
    Netio,
    Churn,
}

fn parse_speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a positive number (1: the recorded pace, 10: ten times faster)")),
    }
}

/// Where replayed rows go: a printer or a view.
pub trait Sink {
    fn row(&mut self, rows: &Rows, i: usize, out: &mut dyn Write) -> Result<()>;
    /// Trace time has reached `now_ns`: views print the seconds settled by then.
    fn advance(&mut self, _now_ns: i64, _out: &mut dyn Write) -> Result<()> {
        Ok(())
    }
    fn flush(&mut self, out: &mut dyn Write) -> Result<()>;
    /// The end of the trace.
    fn finish(&mut self, out: &mut dyn Write) -> Result<()> {
        self.flush(out)
    }
}

/// An integer's digits appended to `buf` (the printers' hot path: no formatter).
fn num(buf: &mut Vec<u8>, n: impl itoa::Integer) {
    buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Writes `buf` out once it holds 64 KiB, or everything (and flushes) when `all`.
fn spill(buf: &mut Vec<u8>, out: &mut dyn Write, all: bool) -> Result<()> {
    if all || buf.len() >= 1 << 16 {
        out.write_all(buf)?;
        buf.clear();
    }
    if all {
        out.flush()?;
    }
    Ok(())
}

/// Hands each chunk's rows to the sink, waiting for each at `--speed`.
pub struct Player {
    sink: Box<dyn Sink>,
    pacer: pace::Pacer,
    second: i64,
}

impl Player {
    fn play(&mut self, df: &DataFrame, out: &mut dyn Write) -> Result<()> {
        let rows = Rows::new(df)?;
        for i in 0..rows.len {
            let ts = rows.ts[i];
            if self.pacer.must_wait(ts) {
                self.sink.flush(out)?;
                let sink = &mut self.sink;
                self.pacer.wait(ts, &mut |t| sink.advance(t, out))?;
            }
            let second = ts.div_euclid(SECOND);
            if second != self.second {
                self.second = second;
                self.sink.advance(ts, out)?;
            }
            self.sink.row(&rows, i, out)?;
        }
        self.sink.flush(out)
    }
}

/// What a replay reads and how it prints, settled before the first segment.
pub struct Plan {
    columns: Vec<&'static str>,
    kinds: Vec<String>,
    /// Filters applied to rows as read (`--view churn` applies --pid and
    /// --comm to its printed owners instead: a worker's passive opens are
    /// written under its master until accept).
    scan_filters: Filters,
}

const SECOND: i64 = 1_000_000_000;

impl ReplayArgs {
    fn plan(&self, filters: &Filters) -> Plan {
        let base: Vec<&'static str> = match self.view {
            None => netrec_schema::definition().columns.iter().map(|c| c.name.as_str()).collect(),
            Some(View::Netio) => vec!["kind", "ts", "pid", "comm", "bytes"],
            Some(View::Churn) => vec!["kind", "ts", "pid", "comm", "sock_id", "old_state", "new_state"],
        };
        let columns = filters.with_columns(&base);
        let kinds = match self.view {
            None => self.kinds.clone(),
            Some(View::Netio) => vec!["send".into(), "recv".into()],
            Some(View::Churn) => vec!["state".into(), "accept".into()],
        };
        let scan_filters = match self.view {
            Some(View::Churn) => Filters { pids: Vec::new(), comms: Vec::new(), ..filters.clone() },
            _ => filters.clone(),
        };
        Plan { columns, kinds, scan_filters }
    }

    /// The printer or view, settled `settle_ns` behind trace time.
    fn player(&self, filters: &Filters, hosts: bool, settle_ns: i64) -> Player {
        let json = self.format == ReplayFormat::Json;
        let sink: Box<dyn Sink> = match self.view {
            None if json => Box::new(json::JsonLines::new()),
            None => Box::new(line::Lines::new(self.local, hosts)),
            Some(View::Netio) => {
                Box::new(view::Printed { view: view::NetioView::new(self.local, json, hosts), settle_ns })
            }
            Some(View::Churn) => Box::new(view::Printed {
                view: view::ChurnView::new(
                    self.local,
                    json,
                    hosts,
                    self.short.as_nanos().min(i64::MAX as u128) as i64,
                    filters.pids.clone(),
                    filters.comms.clone(),
                ),
                // Handshake rows wait this long for their accept.
                settle_ns: settle_ns.max(SECOND),
            }),
        };
        Player { sink, pacer: pace::Pacer::new(self.speed), second: i64::MIN }
    }
}

/// One unit's rows: read (only its row group) and filtered; the merge orders them.
fn load(seg: &SegmentInfo, unit: &merge::Unit, plan: &Plan) -> Result<DataFrame> {
    let lf = crate::input::events_of(std::slice::from_ref(seg), &plan.columns)?
        .slice(unit.offset as i64, unit.rows as IdxSize);
    let mut lf = plan.scan_filters.apply(lf);
    if let Some(kinds) = plan.kinds.iter().map(|k| col("kind").eq(lit(k.as_str()))).reduce(|a, b| a.or(b)) {
        lf = lf.filter(kinds);
    }
    let mut keep: Vec<Expr> = plan.columns.iter().filter(|c| **c != "ts").map(|c| col(*c)).collect();
    keep.extend([col("host"), col("capture_id"), col("ts_ns")]);
    Ok(lf.select(keep).collect()?)
}

/// The units of `segments` that can hold selected rows.
fn selected_units(segments: &[SegmentInfo], filters: &Filters) -> Result<Vec<merge::Unit>> {
    let mut units = merge::units(segments)?;
    units.retain(|u| {
        filters.host_selected(&segments[u.seg].host) && filters.overlaps(u.min_ts, u.max_ts.saturating_add(1))
    });
    Ok(units)
}

/// Plays `segments` through `player`, in time order. The merge (reading,
/// ordering, gathering) runs on a thread of its own, a couple of chunks
/// ahead of the printing.
fn play_segments(segments: &[SegmentInfo], plan: &Plan, player: &mut Player, out: &mut dyn Write) -> Result<()> {
    let units = selected_units(segments, &plan.scan_filters)?;
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<DataFrame>>(2);
        s.spawn(move || {
            let mut merge = merge::Merge::new(units, |u: &merge::Unit| load(&segments[u.seg], u, plan));
            while let Some(chunk) = merge.next_chunk().transpose() {
                let failed = chunk.is_err();
                // An error ends the merge; so does the printer gone (an error, a closed pipe).
                if tx.send(chunk).is_err() || failed {
                    break;
                }
            }
        });
        for chunk in rx {
            player.play(&chunk?, out)?;
        }
        Ok(())
    })
}

pub fn run(args: &ReplayArgs, out: &mut dyn Write) -> Result<crate::Outcome> {
    if let Some(dir) = &args.follow {
        return follow::run(args, dir, out);
    }
    let ctx = crate::open(&args.inputs, &args.selection, By::Pid)?;
    let (lost, where_) = ctx.lost_events();
    if lost > 0 {
        eprintln!(
            "netrec-analyze: warning: the capture lost {lost} events in this range; the replay lacks them ({})",
            where_.join(", ")
        );
    }
    let plan = args.plan(&ctx.filters);
    // Unpaced, a view can wait long for late rows at no cost; paced, a second is due when it ends.
    let settle = if args.speed.is_some() { 0 } else { 60 * SECOND };
    let mut player = args.player(&ctx.filters, ctx.hosts() > 1, settle);
    play_segments(&ctx.trace.segments, &plan, &mut player, out)?;
    player.sink.finish(out)?;
    Ok(crate::Outcome::Ok)
}
