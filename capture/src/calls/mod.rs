//! Application probes: --uprobe, --usdt and --usdt-pair resolved against the
//! binaries before anything is loaded, so every mistake is reported up front.

pub mod binary;
pub mod spec;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};

use binary::Binary;
pub use spec::ProbeArg;
use spec::{pair_base, Spec};

/// Where a probe attaches, as libbpf will be asked for it.
#[derive(Debug, Clone)]
pub enum Target {
    /// By symbol name (libbpf resolves it), or by file offset when the
    /// name is not unique (same-named static functions).
    Function {
        symbol: Option<String>,
        offset: u64,
    },
    Usdt {
        provider: String,
        name: String,
    },
    UsdtPair {
        provider: String,
        start: String,
        done: Vec<String>,
    },
}

/// A probe ready to attach. Its index in the capture's list is the BPF
/// cookie that every row of it carries.
#[derive(Debug, Clone)]
pub struct AppProbe {
    /// The `probe` column.
    pub name: String,
    pub arg: ProbeArg,
    pub binary: PathBuf,
    pub target: Target,
    /// Addresses found in the binary, for the segment metadata.
    metadata: Value,
}

/// Suffixes of start/done USDT pairs, tried when `--usdt` names a base
/// (`postgresql:query` for `query__start` + `query__done`).
const PAIR_SUFFIXES: &[(&str, &str)] = &[
    ("__start", "__done"),
    ("__start", "__end"),
    ("_start", "_done"),
    ("_start", "_end"),
    ("__begin", "__end"),
    ("_begin", "_end"),
    ("__entry", "__return"),
    ("_entry", "_return"),
];

fn hex(addrs: impl IntoIterator<Item = u64>) -> Vec<String> {
    addrs.into_iter().map(|a| format!("0x{a:x}")).collect()
}

fn sites(bin: &Binary, provider: &str, name: &str) -> Vec<String> {
    hex(bin.usdt_sites(provider, name).iter().map(|n| n.address))
}

/// A start/done pair whose probes are known to exist: its target and metadata.
fn usdt_pair(bin: &Binary, provider: &str, start: &str, done: &[String]) -> (Target, Value) {
    let done_sites: Vec<String> = done.iter().flat_map(|d| sites(bin, provider, d)).collect();
    let meta = json!({"type": "usdt_pair", "provider": provider, "start": start, "done": done,
        "start_sites": sites(bin, provider, start), "done_sites": done_sites});
    (Target::UsdtPair { provider: provider.to_string(), start: start.to_string(), done: done.to_vec() }, meta)
}

fn resolve_one(arg: &ProbeArg, bin: &Binary) -> Result<AppProbe> {
    let (default_name, target, mut metadata) = match &arg.spec {
        Spec::Function { function, .. } => {
            let sym = bin.function(function)?;
            let unique = bin.symbols.iter().filter(|s| s.name == sym.name).all(|s| s.address == sym.address);
            let target = if unique {
                Target::Function { symbol: Some(sym.name.clone()), offset: 0 }
            } else {
                let offset = bin
                    .file_offset(sym.address)
                    .ok_or_else(|| anyhow!("0x{:x} lies in no section of {}", sym.address, bin.path.display()))?;
                Target::Function { symbol: None, offset }
            };
            (
                sym.base.clone(),
                target,
                json!({"type": "uprobe", "symbol": sym.name, "demangled": sym.demangled, "address": format!("0x{:x}", sym.address)}),
            )
        }
        Spec::Usdt { provider, name, .. } => {
            if bin.has_usdt(provider, name) {
                (
                    format!("{provider}:{name}"),
                    Target::Usdt { provider: provider.clone(), name: name.clone() },
                    json!({"type": "usdt", "provider": provider, "name": name, "sites": sites(bin, provider, name)}),
                )
            } else if let Some((s, d)) = PAIR_SUFFIXES.iter().find(|(s, d)| {
                bin.has_usdt(provider, &format!("{name}{s}")) && bin.has_usdt(provider, &format!("{name}{d}"))
            }) {
                let (target, meta) = usdt_pair(bin, provider, &format!("{name}{s}"), &[format!("{name}{d}")]);
                (format!("{provider}:{name}"), target, meta)
            } else {
                return Err(anyhow!(bin.usdt_missing(provider, name)));
            }
        }
        Spec::UsdtPair { provider, start, done, .. } => {
            if let Some(missing) = std::iter::once(start).chain(done).find(|n| !bin.has_usdt(provider, n)) {
                bail!(bin.usdt_missing(provider, missing));
            }
            let (target, meta) = usdt_pair(bin, provider, start, done);
            (format!("{provider}:{}", pair_base(start)), target, meta)
        }
    };
    let name = arg.name.clone().unwrap_or(default_name);
    let obj = metadata.as_object_mut().expect("an object");
    obj.insert("probe".into(), name.clone().into());
    obj.insert("spec".into(), arg.text.clone().into());
    obj.insert("binary".into(), bin.path.display().to_string().into());
    Ok(AppProbe { name, arg: arg.clone(), binary: bin.path.clone(), target, metadata })
}

/// Resolves every probe flag; errors name the flag and its text.
pub fn resolve(args: &[ProbeArg]) -> Result<Vec<AppProbe>> {
    let mut binaries: HashMap<PathBuf, Binary> = HashMap::new();
    let mut probes = Vec::new();
    for arg in args {
        let context = |e: anyhow::Error| anyhow!("{} {}: {e:#}", arg.flag, arg.text);
        let path = binary::locate(arg.binary()).map_err(context)?;
        if !binaries.contains_key(&path) {
            let bin = Binary::read(&path).map_err(context)?;
            binaries.insert(path.clone(), bin);
        }
        probes.push(resolve_one(arg, &binaries[&path]).map_err(context)?);
    }
    let mut names: BTreeMap<&str, &ProbeArg> = BTreeMap::new();
    for p in &probes {
        if let Some(first) = names.insert(&p.name, &p.arg) {
            bail!(
                "{} {}: probe name {:?} is already used by {} {}; name one of them with NAME=, e.g. {} other={}",
                p.arg.flag,
                p.arg.text,
                p.name,
                first.flag,
                first.text,
                p.arg.flag,
                p.arg.text
            );
        }
    }
    Ok(probes)
}

/// The probes as recorded in segment metadata (`netrec.probes`), in cookie order.
pub fn metadata(probes: &[AppProbe]) -> Value {
    Value::Array(probes.iter().map(|p| p.metadata.clone()).collect())
}
