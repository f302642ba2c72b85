//! A capture run: ring buffer -> Arrow batches -> a writer thread -> segments.

use std::cell::RefCell;
use std::fs::DirBuilder;
use std::mem::MaybeUninit;
use std::os::unix::fs::DirBuilderExt;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use arrow_array::RecordBatch;
use libbpf_rs::RingBufferBuilder;

use crate::abi::PerKind;
use crate::cli::Config;
use crate::cost::{BpfStats, Meter};
use crate::event::{decode, Record};
use crate::live::Live;
use crate::probe::{self, Counters};
use crate::segment::batch::BatchBuilder;
use crate::segment::retention::Retention;
use crate::segment::writer::{CaptureFacts, Encoding, SegmentWriter};

const POLL: Duration = Duration::from_millis(100);
/// Rows reach the writer at least this often, so rotation and losses stay timely.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Any negative value makes libbpf's consume() return early.
const BATCH_FULL: i32 = -libc::EAGAIN;

enum Msg {
    /// Rows (a batch per kind of row), their counts per kind, kernel
    /// counters since the last message, data rows whose socket was unknown.
    Batch(Vec<RecordBatch>, PerKind, Counters, u64),
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
    summary: Summary,
    meter: Meter,
}

impl WriterState {
    fn open_next(&mut self) -> Result<()> {
        self.current = Some(SegmentWriter::create(&self.cfg.output, &self.stem, self.next_index, Encoding::default())?);
        self.next_index += 1;
        self.opened = Instant::now();
        Ok(())
    }

    fn finalize_current(&mut self) -> Result<()> {
        let Some(seg) = self.current.take() else { return Ok(()) };
        let (rows, lost) = (seg.rows(), seg.lost_total());
        let cost = self.meter.segment_done();
        let (path, size) = seg.finalize(&self.facts, &cost)?;
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
            if !self.cfg.quiet {
                eprintln!("netrec-capture: deleted {} (--max-disk/--max-segments)", old.display());
            }
        }
        Ok(())
    }

    fn handle(&mut self, batches: Vec<RecordBatch>, counts: PerKind, delta: Counters, unknown: u64) -> Result<()> {
        let seg = self.current.as_mut().expect("a segment is open between messages");
        seg.write(&batches, &counts)?;
        seg.add_losses(&delta.lost, delta.untracked, unknown);
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
            Msg::Batch(batches, counts, delta, unknown) => st.handle(batches, counts, delta, unknown)?,
            Msg::Finish => break,
        }
    }
    st.finalize_current()?;
    st.summary.segments_kept = st.retention.kept();
    Ok(st.summary)
}

fn create_output_dir(cfg: &Config) -> Result<()> {
    let out = &cfg.output;
    if out.exists() {
        if !out.is_dir() {
            bail!("--output {}: exists and is not a directory", out.display());
        }
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(out)
        .with_context(|| format!("--output {}: cannot create directory", out.display()))
}

/// Runs a capture until --duration, SIGINT or SIGTERM.
pub fn run(cfg: Config) -> Result<Summary> {
    create_output_dir(&cfg)?;
    let capture_id = uuid::Uuid::new_v4().simple().to_string();
    let started = chrono::Utc::now();
    let hostname = crate::host::hostname();
    let stem = format!("netrec-{hostname}-{}-{}", started.format("%Y%m%dT%H%M%SZ"), &capture_id[..8]);
    let clock_offset_ns = crate::host::clock_offset_ns();

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
            command_line: cfg.command_line.clone(),
        },
        stem,
        current: None,
        next_index: 0,
        opened: Instant::now(),
        retention: Retention::new(cfg.max_disk, cfg.max_segments),
        summary: Summary::default(),
        meter: Meter::new(),
    };
    // Fail on an unwritable directory before touching the kernel.
    ws.open_next()?;

    let mut open_object = MaybeUninit::uninit();
    // Before loading, so every program run is counted.
    let _bpf_stats = cfg.bpf_stats.then(BpfStats::enable).transpose()?;
    let mut probes = probe::start(&mut open_object, &cfg)?;
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
    let flush = |counted: &mut Counters, probes: &probe::Probes| -> Result<()> {
        // RTT counts of seconds over (with one of grace) become rows: one
        // walk of the kernel's table per second, however often batches fill.
        let second = crate::host::boottime_ns() / 1_000_000_000;
        if drained_second.replace(second) != second {
            for (k, c) in &probes.drain_rtt(Some(second.saturating_sub(1)))? {
                pending.borrow_mut().batch.push(&Record::RttCount(k, c));
            }
        }
        let (batches, counts, unknown) = pending.borrow_mut().batch.finish();
        let now = probes.counters()?;
        let delta = now.since(counted);
        *counted = now;
        tx.send(Msg::Batch(batches, counts, delta, unknown)).map_err(|_| anyhow!("the segment writer stopped"))
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
        if let Some(live) = pending.borrow_mut().live.as_mut() {
            let _ = live.tick(chrono::Utc::now(), &mut stdout);
        }
        if pending.borrow().batch.len() >= cfg.batch_rows || last_flush.elapsed() >= FLUSH_EVERY {
            if let Err(e) = flush(&mut counted, &probes) {
                result = Err(e);
                break;
            }
            last_flush = Instant::now();
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
        result = flush(&mut counted, &probes);
    }
    // Calls still running: rows without a duration, then the final flush.
    let result = result.and_then(|()| {
        let mut p = pending.borrow_mut();
        for call in &probe::calls::unfinished(&probes.skel)? {
            p.batch.push(&Record::Call(crate::abi::Kind::Call, call));
        }
        for (k, c) in &probes.drain_rtt(None)? {
            p.batch.push(&Record::RttCount(k, c));
        }
        drop(p);
        flush(&mut counted, &probes)
    });
    let _ = tx.send(Msg::Finish);
    drop(tx);
    let written = writer.join().map_err(|_| anyhow!("the segment writer panicked"))?;
    let mut summary = match (result, written) {
        (_, Err(e)) => return Err(e),
        (Err(e), Ok(_)) => return Err(e),
        (Ok(()), Ok(s)) => s,
    };
    summary.bad_records = pending.borrow().bad_records;
    Ok(summary)
}
