//! A capture run: ring buffer -> Arrow batches -> a writer thread -> segments.

use std::cell::RefCell;
use std::fs::DirBuilder;
use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use libbpf_rs::RingBufferBuilder;

use crate::budget::{Action, Budget, Switch};
use crate::cli::{Config, Data, Layout};
use crate::cost::{BpfStats, Meter};
use crate::event::{decode, Record};
use crate::live::Live;
use crate::probe::{self, Counters};
use crate::segment::batch::{BatchBuilder, Rows};
use crate::segment::manifest::ManifestWriter;
use crate::segment::retention::Retention;
use crate::segment::writer::{CaptureFacts, Encoding, SegmentWriter};

const POLL: Duration = Duration::from_millis(100);
/// Rows reach the writer at least this often, so rotation and losses stay timely.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Any negative value makes libbpf's consume() return early.
const BATCH_FULL: i32 = -libc::EAGAIN;

enum Msg {
    /// Rows (a batch per kind of row) and their counts, kernel counters
    /// since the last message, data recording switches.
    Batch(Box<Rows>, Counters, Vec<Switch>),
    Finish,
}

#[derive(Debug, Default)]
pub struct Summary {
    pub segments_written: usize,
    pub segments_kept: usize,
    pub events: u64,
    pub lost: u64,
    pub untracked: u64,
    pub bad_records: u64,
}

struct WriterState {
    cfg: Config,
    facts: CaptureFacts,
    stem: String,
    current: Option<SegmentWriter>,
    next_index: u32,
    opened: Instant,
    retention: Retention,
    manifest: ManifestWriter,
    summary: Summary,
    meter: Meter,
}

impl WriterState {
    /// The directory of a segment opened at `opened` (made if new): its
    /// date partition is the day the segment starts, by the same clock reading.
    fn segment_dir(&self, opened: chrono::DateTime<chrono::Utc>) -> Result<PathBuf> {
        let dir = match self.cfg.layout {
            Layout::Flat => return Ok(self.cfg.output.clone()),
            Layout::Hive => {
                let date = opened.format("%Y-%m-%d").to_string();
                self.cfg.output.join(netrec_schema::files::partition_dir(&self.facts.hostname, &date))
            }
        };
        private_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(dir)
    }

    fn open_next(&mut self) -> Result<()> {
        let opened = chrono::Utc::now();
        let dir = self.segment_dir(opened)?;
        self.current = Some(SegmentWriter::create(&dir, &self.stem, self.next_index, Encoding::default(), opened)?);
        self.next_index += 1;
        self.opened = Instant::now();
        Ok(())
    }

    fn finalize_current(&mut self) -> Result<()> {
        let Some(seg) = self.current.take() else {
            return Ok(());
        };
        let (rows, lost) = (seg.rows(), seg.lost_total());
        let cost = self.meter.segment_done();
        let closed = seg.finalize(&self.facts, &cost)?;
        let (path, size) = (closed.path.clone(), closed.size);
        self.manifest.add(netrec_schema::manifest::SegmentEntry {
            // Relative to the manifest, which sits at the top of --output.
            file: path.strip_prefix(&self.cfg.output).unwrap_or(&path).to_string_lossy().into_owned(),
            index: closed.index,
            bytes: closed.size,
            sha256: closed.sha256,
            start: closed.start,
            end: closed.end,
            events: closed.events,
            lost_events: closed.lost_events,
        })?;
        self.summary.segments_written += 1;
        self.summary.events += rows;
        if lost > 0 {
            eprintln!(
                "netrec-capture: {}: {lost} events lost (ring buffer full); raise --ringbuf-size (now {} bytes) or narrow the capture with --pid/--port",
                path.display(),
                self.cfg.ringbuf_size
            );
        } else if !self.cfg.quiet {
            eprintln!("netrec-capture: wrote {} ({rows} events, {size} bytes)", path.display());
        }
        for old in self.retention.add(path, size) {
            std::fs::remove_file(&old).with_context(|| format!("deleting old segment {}", old.display()))?;
            self.manifest.deleted(&old)?;
            if !self.cfg.quiet {
                eprintln!("netrec-capture: deleted {} (--max-disk/--max-segments)", old.display());
            }
        }
        Ok(())
    }

    fn handle(&mut self, rows: Rows, delta: Counters, switches: Vec<Switch>) -> Result<()> {
        let seg = self.current.as_mut().expect("a segment is open between messages");
        seg.write(&rows)?;
        seg.add_losses(&delta.lost, delta.untracked);
        seg.add_switches(switches);
        self.summary.lost += delta.lost.iter().sum::<u64>();
        self.summary.untracked += delta.untracked;
        if seg.size() >= self.cfg.rotate_size || self.opened.elapsed() >= self.cfg.rotate_every {
            self.finalize_current()?;
            self.open_next()?;
        }
        Ok(())
    }
}

fn writer_loop(mut st: WriterState, rx: Receiver<Msg>) -> Result<Summary> {
    for msg in rx {
        match msg {
            Msg::Batch(rows, delta, switches) => st.handle(*rows, delta, switches)?,
            Msg::Finish => break,
        }
    }
    st.finalize_current()?;
    // The sign a follower waits for: every segment of this capture is listed.
    st.manifest.finish(&chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))?;
    st.summary.segments_kept = st.retention.kept();
    Ok(st.summary)
}

/// Whether writing failed for want of space (ENOSPC, or a quota: EDQUOT).
fn disk_full(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .and_then(|io| io.raw_os_error())
            .is_some_and(|n| n == libc::ENOSPC || n == libc::EDQUOT)
    })
}

fn create_output_dir(cfg: &Config) -> Result<()> {
    let out = &cfg.output;
    if out.exists() {
        if !out.is_dir() {
            bail!("--output {}: exists and is not a directory", out.display());
        }
        return Ok(());
    }
    private_dir(out).with_context(|| format!("--output {}: cannot create directory", out.display()))
}

/// A directory only the capture's user reads (0700), with its parents.
fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Runs a capture until --duration, SIGINT or SIGTERM.
pub fn run(cfg: Config) -> Result<Summary> {
    create_output_dir(&cfg)?;
    let capture_id = uuid::Uuid::new_v4().simple().to_string();
    let started = chrono::Utc::now();
    let hostname = crate::host::hostname();
    let stem = netrec_schema::files::stem(&hostname, &started.format("%Y%m%dT%H%M%SZ").to_string(), &capture_id);
    let clock_offset_ns = crate::host::clock_offset_ns();

    let started_text = started.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let manifest = ManifestWriter::new(&cfg.output, &stem, &capture_id, &hostname, &started_text);
    let mut ws = WriterState {
        cfg: cfg.clone(),
        facts: CaptureFacts {
            capture_id,
            hostname,
            kernel_release: crate::host::kernel_release(),
            boot_id: crate::host::boot_id(),
            clock_offset_ns,
            mechanisms: serde_json::Value::Null,
            probes: crate::calls::metadata(&cfg.probes),
            filters: cfg.filters_json(),
            data: serde_json::json!({
                "mode": cfg.data.describe(),
                "interval_ns": cfg.data.interval().as_nanos() as u64,
                "budget_events_per_s": cfg.data_budget,
            }),
            command_line: cfg.command_line.clone(),
        },
        stem,
        current: None,
        next_index: 0,
        opened: Instant::now(),
        retention: Retention::new(cfg.max_disk, cfg.max_segments),
        manifest,
        summary: Summary::default(),
        meter: Meter::new(),
    };
    // Fail on an unwritable directory before touching the kernel.
    ws.open_next()?;

    let mut open_object = MaybeUninit::uninit();
    // Before loading, so every program run is counted.
    let _bpf_stats = cfg.bpf_stats.then(BpfStats::enable).transpose()?;
    let mut probes = probe::start(&mut open_object, &cfg, clock_offset_ns)?;
    // Attached: tracefs and every capability are no longer needed.
    probes.release_tracefs();
    let kept = crate::privilege::drop_all(&cfg.output, probes.skel.maps.counters.as_fd())?;
    if !kept.is_empty() && !cfg.quiet {
        eprintln!("netrec-capture: kept {kept:?} of every capability (this kernel's bpf() or --output needs them)");
    }
    ws.facts.mechanisms = probes.mechanisms.clone();
    ws.meter.watch(std::mem::take(&mut probes.programs));

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("installing signal handlers")?;
    }

    let (tx, rx) = sync_channel::<Msg>(8);
    let writer = thread::Builder::new()
        .name("segment-writer".into())
        .spawn(move || writer_loop(ws, rx))
        .context("starting the writer thread")?;

    struct Pending {
        batch: BatchBuilder,
        live: Option<Live>,
        bad_records: u64,
    }
    let pending = Rc::new(RefCell::new(Pending {
        batch: BatchBuilder::new(
            clock_offset_ns,
            cfg.data.interval().as_nanos() as u64,
            cfg.probes.iter().map(|p| p.name.clone()).collect(),
            cfg.max_sockets as usize,
        ),
        live: cfg.live.then(Live::default),
        bad_records: 0,
    }));
    let mut rb_builder = RingBufferBuilder::new();
    let sink = Rc::clone(&pending);
    let batch_rows = cfg.batch_rows;
    rb_builder
        .add(&probes.skel.maps.events, move |data: &[u8]| {
            let p = &mut *sink.borrow_mut();
            match decode(data) {
                Ok(record) => {
                    if let (Some(row), Some(live)) = (p.batch.push(&record), p.live.as_mut()) {
                        live.add(&row);
                    }
                }
                // Never abort the stream over one bad record: count it.
                Err(_) => p.bad_records += 1,
            }
            // A full batch stops this consume() once libbpf has taken the
            // record, so a burst never grows a batch past --batch-rows.
            if p.batch.len() >= batch_rows {
                BATCH_FULL
            } else {
                0
            }
        })
        .context("setting up the ring buffer")?;
    let ring = rb_builder.build().context("setting up the ring buffer")?;

    if !cfg.quiet {
        eprintln!(
            "netrec-capture: recording to {}{}; Ctrl-C to stop",
            cfg.output.display(),
            cfg.duration.map(|d| format!(" for {}", humantime::format_duration(d))).unwrap_or_default()
        );
    }
    let begin = Instant::now();
    let mut last_flush = Instant::now();
    let mut counted = Counters::default();
    let mut stdout = std::io::stdout().lock();
    let drained_second = std::cell::Cell::new(0u64);
    let interval_ns = cfg.data.interval().as_nanos() as u64;
    let drained_interval = std::cell::Cell::new(0u64);
    let always_aggregated = matches!(cfg.data, Data::Aggregates(_));
    let mut budget = Budget::new(if always_aggregated { 0 } else { cfg.data_budget }, Instant::now());
    // Wall-clock second before which --live has every aggregate.
    let settled = std::cell::Cell::new(i64::MIN);
    let quiet = cfg.quiet;
    let flush = |counted: &mut Counters, probes: &mut probe::Probes, budget: &mut Budget, last: bool| -> Result<()> {
        // RTT counts of seconds over (with one of grace) become rows: one
        // read of the kernel's table per second, however often batches fill.
        let second = crate::host::boottime_ns() / 1_000_000_000;
        if last || drained_second.replace(second) != second {
            for (k, c) in &probes.drain_rtt((!last).then(|| second.saturating_sub(1)))? {
                pending.borrow_mut().batch.push(&Record::RttCount(k, c));
            }
        }
        // Data aggregates the same way, per interval (wall-clock aligned).
        let interval = (crate::host::boottime_ns() as i64 + clock_offset_ns) as u64 / interval_ns;
        // The newest interval drained, and the calls it counted.
        let mut newest: Option<(u64, u64)> = None;
        if last || drained_interval.replace(interval) != interval {
            let before = interval.saturating_sub(1);
            let p = &mut *pending.borrow_mut();
            let mut calls = 0;
            for (k, c) in &probes.drain_data((!last).then_some(before))? {
                let live = &mut p.live;
                p.batch.push_data_count(k, c, &mut |row| {
                    if let Some(live) = live.as_mut() {
                        live.add(row);
                    }
                });
                if k.interval + 1 == before {
                    calls += c.send_calls + c.recv_calls;
                }
            }
            newest = Some((before.saturating_sub(1), calls));
            settled.set(((before * interval_ns) / 1_000_000_000) as i64);
        }
        let p = &mut *pending.borrow_mut();
        let rows = p.batch.finish();
        let mut switches = Vec::new();
        {
            // At the end only a switch the kernel made is left to record.
            let aggregated = newest.filter(|_| !last).map(|(i, calls)| {
                let start = chrono::DateTime::from_timestamp_nanos((i * interval_ns) as i64);
                (start, (calls as u128 * 1_000_000_000 / interval_ns as u128) as u64)
            });
            let calls = p.batch.take_per_call_data();
            let action = budget.step(
                Instant::now(),
                chrono::Utc::now(),
                probes.data_switch(),
                if last { 0 } else { calls },
                aggregated,
            );
            let switch = match action {
                Some(Action::Set(why, switch)) => {
                    probes.set_data_switch(why);
                    Some(switch)
                }
                Some(Action::Record(switch)) => Some(switch),
                None => None,
            };
            if let Some(s) = switch {
                if !quiet {
                    eprintln!(
                        "netrec-capture: {}: data recorded as {} ({})",
                        s.at.format("%H:%M:%S%.3f"),
                        if s.to == "calls" { "a row per call" } else { "1 s aggregates" },
                        s.reason
                    );
                }
                switches.push(s);
            }
        }
        probes.refill_sock_ids()?;
        let now = probes.counters()?;
        let delta = now.since(counted);
        *counted = now;
        tx.send(Msg::Batch(Box::new(rows), delta, switches)).map_err(|_| anyhow!("the segment writer stopped"))
    };

    let mut result: Result<()> = Ok(());
    loop {
        if stop.load(Ordering::Relaxed) || cfg.duration.is_some_and(|d| begin.elapsed() >= d) {
            break;
        }
        // Both report how many records were handled; errors here are EINTR from our signals.
        let _ = ring.poll(POLL);
        if pending.borrow().batch.len() < cfg.batch_rows {
            let _ = ring.consume();
        }
        if pending.borrow().batch.len() >= cfg.batch_rows || last_flush.elapsed() >= FLUSH_EVERY {
            if let Err(e) = flush(&mut counted, &mut probes, &mut budget, false) {
                result = Err(e);
                break;
            }
            last_flush = Instant::now();
        }
        if let Some(live) = pending.borrow_mut().live.as_mut() {
            // Aggregates of a second arrive once it is over, when they may exist.
            let now = chrono::Utc::now().timestamp();
            let waits = always_aggregated || budget.aggregating() || probes.data_switch() != probe::DataSwitch::None;
            let _ = live.tick(if waits { settled.get().min(now) } else { now }, &mut stdout);
        }
    }
    // Detach first so nothing arrives after the final drain.
    probes.detach();
    let mut result = result;
    while result.is_ok() {
        let _ = ring.consume();
        if pending.borrow().batch.len() < cfg.batch_rows {
            break;
        }
        result = flush(&mut counted, &mut probes, &mut budget, false);
    }
    // Calls still running: rows without a duration, then the final flush.
    let result = result.and_then(|()| {
        let mut p = pending.borrow_mut();
        for call in &probe::calls::unfinished(&probes.skel)? {
            p.batch.push(&Record::Call(crate::abi::Kind::Call, call));
        }
        drop(p);
        flush(&mut counted, &mut probes, &mut budget, true)
    });
    if let Some(live) = pending.borrow_mut().live.as_mut() {
        let _ = live.tick(i64::MAX, &mut stdout);
    }
    let _ = tx.send(Msg::Finish);
    drop(tx);
    let written = writer.join().map_err(|_| anyhow!("the segment writer panicked"))?;
    let mut summary = match (result, written) {
        (_, Err(e)) if disk_full(&e) => {
            return Err(anyhow!(
                "{}: the disk is full; the segments completed before are intact. Free space, or keep the capture under the free space with --max-disk SIZE",
                cfg.output.display()
            ))
        }
        (_, Err(e)) => return Err(e),
        (Err(e), Ok(_)) => return Err(e),
        (Ok(()), Ok(s)) => s,
    };
    summary.bad_records = pending.borrow().bad_records;
    Ok(summary)
}
