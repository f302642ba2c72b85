//! `pack TRACE -o ticket.tar`: one archive for a support ticket: the
//! segments (redacted if asked) with their capture manifests, the HTML
//! report, and the bundle's own manifest (versions, hosts, time range, each
//! file's size and sha256, losses, redaction). Every subcommand reads the
//! archive as it is.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;

use crate::input::bundle;
use crate::input::manifest::sha256_file;
use crate::metrics::by::By;
use crate::redact::{Name, RedactArgs};
use crate::Outcome;

pub const HELP: &str = "\
The archive holds segments/ (the segments and their capture manifests),
report.html (netrec-analyze report of them) and manifest.json: netrec and
schema versions, hosts, time range, every file's size and sha256, losses and
what was redacted. Give --key-file to redact first (see netrec-analyze redact
--help for what is replaced); the key stays out of the archive.

Examples:
  netrec-analyze pack /var/tmp/netrec -o ticket-4711.tar --key-file ~/.netrec-key --new-key
  netrec-analyze validate ticket-4711.tar
  netrec-analyze netio ticket-4711.tar --top 5";

#[derive(Debug, Args)]
pub struct PackArgs {
    /// Segment files, directories, globs or a bundle
    #[arg(required = true, value_name = "PATH")]
    pub inputs: Vec<PathBuf>,
    /// The archive to write (a tar); must not exist yet
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Redact with this key first (32 bytes, raw or as 64 hex digits)
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Make the key file if there is none
    #[arg(long, requires = "key_file")]
    pub new_key: bool,
    /// With --key-file: leave these names as they are
    #[arg(long, value_enum, value_delimiter = ',', value_name = "NAME", requires = "key_file")]
    pub keep: Vec<Name>,
}

fn add_file(tar: &mut tar::Builder<std::fs::File>, path: &Path, name: &str) -> Result<()> {
    tar.append_path_with_name(path, name).with_context(|| format!("adding {} to the archive", path.display()))
}

pub fn run(args: &PackArgs, out: &mut dyn Write) -> Result<Outcome> {
    if args.output.exists() {
        bail!("-o {}: exists; pack never writes over a file", args.output.display());
    }
    let work = tempfile::Builder::new().prefix("netrec-pack-").tempdir().context("a temporary directory")?;
    let segments_dir = work.path().join("segments");
    let mut sink = Vec::new();
    match &args.key_file {
        Some(key) => {
            let r = RedactArgs {
                inputs: args.inputs.clone(),
                output: segments_dir.clone(),
                key_file: key.clone(),
                new_key: args.new_key,
                keep: args.keep.clone(),
            };
            crate::redact::run(&r, &mut sink)?;
        }
        None => {
            // The trace as it is, checked against its manifests on the way.
            let trace = crate::input::Trace::open(&args.inputs)?;
            std::fs::create_dir(&segments_dir)?;
            let manifests =
                crate::input::manifest::beside(&trace.segments.iter().map(|s| s.path.clone()).collect::<Vec<_>>())?;
            // Where a manifest lists a segment (host=…/date=… under --layout hive), it stays there.
            let listed = crate::input::manifest::listed(&manifests);
            for s in &trace.segments {
                let rel = match listed.get(&s.path) {
                    Some((_, entry)) => PathBuf::from(&entry.file),
                    None => PathBuf::from(s.path.file_name().expect("a file")),
                };
                let target = segments_dir.join(rel);
                std::fs::create_dir_all(target.parent().expect("inside segments/"))?;
                std::fs::copy(&s.path, target)?;
            }
            for m in &manifests {
                std::fs::copy(&m.path, segments_dir.join(m.path.file_name().expect("a file")))?;
            }
        }
    }
    // What goes into the archive, opened once: for the report and the manifest.
    let ctx = crate::open(std::slice::from_ref(&segments_dir), &Default::default(), By::Pid)?;
    let trace = &ctx.trace;
    let report = work.path().join("report.html");
    crate::report::write(&ctx, 8, &report)?;

    let mut files = Vec::new();
    // Every file, partition directories included.
    let mut names = crate::input::discover::files_under(&segments_dir, &|_| true)?;
    names.sort();
    for p in names.iter().chain([&report]) {
        let rel = p.strip_prefix(work.path()).expect("inside").to_string_lossy().to_string();
        files.push(json!({"file": rel, "bytes": std::fs::metadata(p)?.len(), "sha256": sha256_file(p)?}));
    }
    let mut hosts: Vec<&str> = trace.segments.iter().map(|s| s.host.as_str()).collect();
    hosts.sort();
    hosts.dedup();
    let mut versions: Vec<u32> = trace.segments.iter().map(|s| s.schema_version).collect();
    versions.sort();
    versions.dedup();
    let first = trace.segments.iter().map(|s| s.start).min();
    let last = trace.segments.iter().map(|s| s.end).max();
    let redaction = trace.segments.first().and_then(|s| s.redaction.clone());
    let manifest = json!({
        "netrec_bundle": 1,
        "netrec_version": env!("CARGO_PKG_VERSION"),
        "schema_versions": versions,
        "hosts": hosts,
        "first": first.map(|t| t.to_rfc3339()),
        "last": last.map(|t| t.to_rfc3339()),
        "segments": trace.segments.len(),
        "lost_events": trace.segments.iter().map(|s| s.lost).sum::<u64>(),
        "redaction": redaction,
        "files": files,
    });
    let manifest_path = work.path().join(bundle::MANIFEST);
    std::fs::write(&manifest_path, serde_json::to_vec_pretty(&manifest)?)?;

    // Written beside and renamed: a failure leaves no half archive.
    let partial = args.output.with_extension("tar.partial");
    let result = (|| -> Result<()> {
        let mut tar = tar::Builder::new(std::fs::File::create(&partial)?);
        add_file(&mut tar, &manifest_path, bundle::MANIFEST)?;
        for p in names.iter().chain([&report]) {
            let rel = p.strip_prefix(work.path()).expect("inside").to_string_lossy().to_string();
            add_file(&mut tar, p, &rel)?;
        }
        tar.into_inner()?.sync_all()?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(e.context(format!("-o {}: cannot write the archive", args.output.display())));
    }
    std::fs::rename(&partial, &args.output)?;
    writeln!(
        out,
        "netrec-analyze: wrote {} ({} segments, report.html, manifest.json{})",
        args.output.display(),
        trace.segments.len(),
        if args.key_file.is_some() { "; redacted" } else { "" }
    )?;
    Ok(Outcome::Ok)
}
