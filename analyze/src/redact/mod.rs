//! `redact TRACE -o OUT --key-file KEY`: the same trace with every IP
//! address replaced by Crypto-PAn and names by keyed hashes. Every metric
//! but the addresses themselves stays the same; nothing original is left in
//! the rows, the metadata or the file names, which the output is checked for
//! before it is kept.

mod cryptopan;
mod names;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use netrec_schema::manifest::{self, Manifest, SegmentEntry};
use netrec_schema::meta;
use polars::prelude::*;
use serde_json::{json, Value as Json};

pub use cryptopan::CryptoPan;
use names::Names;

use crate::input::manifest::sha256_file;
use crate::input::{segment, Trace};
use crate::Outcome;

pub const HELP: &str = "\
What is replaced:
  laddr, raddr        always: Crypto-PAn (prefix-preserving, AES-128), IPv4 and IPv6
  hostname            netrec.hostname and the file names: host-<hash>
  comm                the comm column, and --comm in netrec.filters: p-<hash>
  filename            exec file names, and probed binaries in netrec.probes: file-<hash>
  cgroup              the cgroup column and --cgroup: /cgroup-<hash> (container and
                      pod can then no longer be told from it)
  command-line        netrec.command_line: [\"netrec-capture\", \"cmd-<hash>\"]
Every name is replaced unless --keep names it. Hashes are HMAC-SHA256 under the
key: one key maps a name or an address the same way in every trace, so traces
redacted with one key can still be compared (diff) and joined; keep the key to
yourself. The output's metadata says what was replaced and how
(netrec.redaction), with a key id that tells keys apart, never the key.

Examples:
  netrec-analyze redact /var/tmp/netrec -o ticket-4711 --key-file ~/.netrec-key --new-key
  netrec-analyze redact trace/ -o shared/ --key-file key --keep comm,filename";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Name {
    Hostname,
    Comm,
    Filename,
    Cgroup,
    CommandLine,
}

#[derive(Debug, Args)]
pub struct RedactArgs {
    /// Segment files, directories, globs or a bundle
    #[arg(required = true, value_name = "PATH")]
    pub inputs: Vec<PathBuf>,
    /// Directory for the redacted segments; must not exist yet
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,
    /// The key: 32 bytes, raw or as 64 hex digits
    #[arg(long, value_name = "FILE")]
    pub key_file: PathBuf,
    /// Make the key file (32 random bytes, mode 0600) if there is none
    #[arg(long)]
    pub new_key: bool,
    /// Leave these names as they are (comma-separated; default: replace every one)
    #[arg(long, value_enum, value_delimiter = ',', value_name = "NAME")]
    pub keep: Vec<Name>,
}

/// The key from its file (made first with --new-key).
pub fn load_key(path: &Path, make: bool) -> Result<[u8; 32]> {
    if make && !path.exists() {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("--new-key: no randomness: {e}"))?;
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        let mut f = std::fs::OpenOptions::new();
        f.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut f, 0o600);
        f.open(path)
            .and_then(|mut f| f.write_all(format!("{hex}\n").as_bytes()))
            .with_context(|| format!("--key-file {}: cannot create it", path.display()))?;
        eprintln!("netrec-analyze: made a new key in {}: keep it, it maps every trace the same way", path.display());
    }
    let bytes = std::fs::read(path)
        .with_context(|| format!("--key-file {}: cannot read it (--new-key makes one)", path.display()))?;
    if bytes.len() == 32 {
        return Ok(bytes.try_into().expect("32 bytes"));
    }
    let text = String::from_utf8_lossy(&bytes);
    let hex = text.trim();
    let parsed: Option<Vec<u8>> = (hex.len() == 64)
        .then(|| (0..32).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()).collect())
        .flatten();
    match parsed {
        Some(key) => Ok(key.try_into().expect("32 bytes")),
        None => bail!("--key-file {}: not a key (32 bytes, raw or as 64 hex digits)", path.display()),
    }
}

/// What replaces what, remembered: the check of the output and the metadata use it.
struct Redactor {
    pan: CryptoPan,
    names: Names,
    keep: Vec<Name>,
    addresses: HashMap<String, String>,
    /// Original -> replacement, of every name replaced.
    replaced: HashMap<String, String>,
}

impl Redactor {
    fn address(&mut self, a: &str) -> String {
        if let Some(r) = self.addresses.get(a) {
            return r.clone();
        }
        let r = match a.parse::<IpAddr>() {
            Ok(ip) => self.pan.ip(ip).to_string(),
            // Not an address (never written so): a keyed hash all the same.
            Err(_) => self.names.hash("addr", a),
        };
        self.addresses.insert(a.to_string(), r.clone());
        r
    }

    fn name(&mut self, kind: Name, a: &str) -> String {
        if self.keep.contains(&kind) {
            return a.to_string();
        }
        let prefix = match kind {
            Name::Hostname => "host",
            Name::Comm => "p",
            Name::Filename => "file",
            Name::Cgroup => "/cgroup",
            Name::CommandLine => "cmd",
        };
        let r = self.names.hash(prefix, a);
        self.replaced.insert(a.to_string(), r.clone());
        r
    }

    fn column(&mut self, df: &mut DataFrame, column: &str, kind: Option<Name>) -> Result<()> {
        let Ok(c) = df.column(column) else { return Ok(()) };
        if kind.is_some_and(|k| self.keep.contains(&k)) {
            return Ok(());
        }
        let values: Vec<Option<String>> = c
            .str()?
            .iter()
            .map(|v| {
                v.map(|s| match kind {
                    None => self.address(s),
                    Some(k) => self.name(k, s),
                })
            })
            .collect();
        df.with_column(Column::new(column.into(), values))?;
        Ok(())
    }

    /// One segment's metadata, redacted, with netrec.redaction added.
    fn metadata(&mut self, kv: &BTreeMap<String, String>) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for (k, v) in kv {
            let v = match k.as_str() {
                meta::HOSTNAME => self.name(Name::Hostname, v),
                meta::COMMAND_LINE if !self.keep.contains(&Name::CommandLine) => {
                    let argv: Vec<String> = serde_json::from_str(v).unwrap_or_default();
                    json!(["netrec-capture", self.name(Name::CommandLine, &argv.join(" "))]).to_string()
                }
                meta::FILTERS => {
                    let mut f: Json = serde_json::from_str(v).unwrap_or(Json::Null);
                    self.json_field(&mut f, "comm", Name::Comm);
                    self.json_field(&mut f, "cgroup", Name::Cgroup);
                    f.to_string()
                }
                meta::PROBES => {
                    let mut probes: Json = serde_json::from_str(v).unwrap_or(Json::Null);
                    for p in probes.as_array_mut().into_iter().flatten() {
                        self.json_field(p, "binary", Name::Filename);
                        // "path:function": the path part is a file name.
                        if let Some(spec) = p.get("spec").and_then(Json::as_str).map(String::from) {
                            if let Some((bin, rest)) = spec.rsplit_once(':').filter(|(b, _)| b.contains('/')) {
                                let bin = self.name(Name::Filename, bin);
                                p["spec"] = json!(format!("{bin}:{rest}"));
                            }
                        }
                    }
                    probes.to_string()
                }
                _ => v.clone(),
            };
            out.push((k.clone(), v));
        }
        let how = |n: Name| if self.keep.contains(&n) { "kept" } else { "HMAC-SHA256 under the key" };
        out.push((
            meta::REDACTION.to_string(),
            json!({
                "addresses": "Crypto-PAn (prefix-preserving, AES-128), IPv4 and IPv6",
                "hostname": how(Name::Hostname),
                "comm": how(Name::Comm),
                "filename": how(Name::Filename),
                "cgroup": how(Name::Cgroup),
                "command_line": how(Name::CommandLine),
                "key_id": self.names.key_id(),
                "by": concat!("netrec-analyze ", env!("CARGO_PKG_VERSION")),
            })
            .to_string(),
        ));
        Ok(out)
    }

    /// A JSON field holding a name, or an array of names, replaced.
    fn json_field(&mut self, obj: &mut Json, field: &str, kind: Name) {
        let Some(v) = obj.get_mut(field) else { return };
        match v {
            Json::String(s) => *s = self.name(kind, s),
            Json::Array(items) => {
                for item in items.iter_mut() {
                    if let Json::String(s) = item {
                        *s = self.name(kind, s);
                    }
                }
            }
            _ => {}
        }
    }
}

/// `netrec-<host>-<rest>` with the host replaced.
fn renamed(file: &str, host: &str, new_host: &str) -> String {
    match file.strip_prefix(&format!("netrec-{host}-")) {
        Some(rest) => format!("netrec-{new_host}-{rest}"),
        None => format!("netrec-{new_host}-{file}"),
    }
}

pub fn run(args: &RedactArgs, out: &mut dyn Write) -> Result<Outcome> {
    if args.output.exists() {
        bail!("--output {}: exists; redact writes a new directory and never over a trace", args.output.display());
    }
    let key = load_key(&args.key_file, args.new_key)?;
    let trace = Trace::open(&args.inputs)?;
    let mut r = Redactor {
        pan: CryptoPan::new(&key),
        names: Names::new(&key),
        keep: args.keep.clone(),
        addresses: HashMap::new(),
        replaced: HashMap::new(),
    };
    // Written beside the output and renamed at the end: a failure leaves nothing half-done.
    let partial = args.output.with_file_name(format!(
        ".{}.partial-{}",
        args.output.file_name().and_then(|n| n.to_str()).unwrap_or("redacted"),
        std::process::id()
    ));
    std::fs::create_dir_all(&partial).with_context(|| format!("--output {}: cannot create", args.output.display()))?;
    let result = (|| -> Result<(usize, Vec<PathBuf>)> {
        let mut captures: BTreeMap<String, (Manifest, String)> = BTreeMap::new();
        let mut written = Vec::new();
        for seg in &trace.segments {
            let read = ParquetReader::new(std::fs::File::open(&seg.path)?).finish();
            let mut df = anyhow::Context::with_context(read, || format!("{}", seg.path.display()))?;
            r.column(&mut df, "laddr", None)?;
            r.column(&mut df, "raddr", None)?;
            r.column(&mut df, "comm", Some(Name::Comm))?;
            r.column(&mut df, "filename", Some(Name::Filename))?;
            r.column(&mut df, "cgroup", Some(Name::Cgroup))?;
            let kv = r.metadata(&segment::key_values(&seg.path)?)?;
            let new_host = r.name(Name::Hostname, &seg.host);
            let file = seg.path.file_name().and_then(|n| n.to_str()).unwrap_or("segment.parquet");
            let target = partial.join(renamed(file, &seg.host, &new_host));
            let f = std::fs::File::create(&target).with_context(|| format!("{}", target.display()))?;
            let wrote = ParquetWriter::new(f)
                .with_compression(ParquetCompression::Zstd(None)) // zstd's default level, 3, as the capture
                .with_key_value_metadata(Some(KeyValueMetadata::from_static(kv)))
                .finish(&mut df);
            anyhow::Context::with_context(wrote, || format!("writing {}", target.display()))?;
            let name = target.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            let entry = SegmentEntry {
                file: name.clone(),
                index: seg.index.unwrap_or(0),
                bytes: std::fs::metadata(&target)?.len(),
                sha256: sha256_file(&target)?,
                start: seg.start.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
                end: seg.end.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
                events: seg.events,
                lost_events: seg.lost,
            };
            let stem = name.rsplit_once('-').map_or(name.as_str(), |(s, _)| s).to_string();
            let (m, _) = captures.entry(seg.capture_id.clone()).or_insert_with(|| {
                (
                    Manifest {
                        netrec_manifest: manifest::FORMAT,
                        netrec_version: env!("CARGO_PKG_VERSION").to_string(),
                        schema_version: seg.schema_version,
                        capture_id: seg.capture_id.clone(),
                        host: new_host.clone(),
                        started: entry.start.clone(),
                        finished: Some(entry.end.clone()),
                        segments: Vec::new(),
                        deleted: Vec::new(),
                    },
                    stem,
                )
            });
            m.finished = Some(entry.end.clone());
            m.segments.push(entry);
            written.push(target);
        }
        for (m, stem) in captures.values() {
            let path = partial.join(manifest::file_name(stem));
            let mut text = serde_json::to_vec_pretty(m)?;
            text.push(b'\n');
            std::fs::write(&path, text)?;
        }
        check_nothing_left(&written, &r)?;
        Ok((trace.segments.len(), written))
    })();
    match result {
        Ok((n, _)) => {
            std::fs::rename(&partial, &args.output)
                .with_context(|| format!("--output {}: cannot create", args.output.display()))?;
            writeln!(
                out,
                "netrec-analyze: wrote {n} redacted segments to {}: {} addresses and {} names replaced (key id {})",
                args.output.display(),
                r.addresses.len(),
                r.replaced.len(),
                r.names.key_id()
            )?;
            Ok(Outcome::Ok)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&partial);
            Err(e)
        }
    }
}

/// The written files hold no original address or replaced name: as any
/// value of a text column, or inside any metadata value or file name.
fn check_nothing_left(files: &[PathBuf], r: &Redactor) -> Result<()> {
    let images: std::collections::HashSet<&String> = r.addresses.values().chain(r.replaced.values()).collect();
    // An original that is also some other original's image was written as an image.
    let originals: std::collections::HashSet<&String> =
        r.addresses.keys().chain(r.replaced.keys()).filter(|o| !images.contains(o)).collect();
    let long: Vec<&&String> = originals.iter().filter(|o| o.len() >= 4).collect();
    for f in files {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let mut texts: Vec<String> = segment::key_values(f)?.into_values().collect();
        texts.push(name.to_string());
        for t in &texts {
            if let Some(o) = long.iter().find(|o| t.contains(o.as_str())) {
                bail!("{}: the original {o:?} is still in its metadata or name; nothing was written", f.display());
            }
        }
        let df = ParquetReader::new(std::fs::File::open(f)?).finish()?;
        for c in df.columns().iter().filter(|c| c.dtype() == &DataType::String) {
            let unique = c.str()?.unique()?;
            let found = unique.iter().flatten().find(|v| originals.contains(&v.to_string())).map(String::from);
            if let Some(o) = found {
                bail!("{}: the original {o:?} is still in column {}; nothing was written", f.display(), c.name());
            }
        }
    }
    Ok(())
}
