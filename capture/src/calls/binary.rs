//! An executable or library to probe: where it is, its function symbols and
//! its USDT notes, read with the `object` crate.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use object::read::elf::{ElfFile64, SectionHeader};
use object::{Endianness, Object, ObjectSection, ObjectSymbol, SymbolKind};

/// A function symbol, with its demangled forms.
#[derive(Debug, Clone)]
pub struct Symbol {
    /// As in the symbol table (mangled for C++ and Rust).
    pub name: String,
    /// Virtual address (st_value).
    pub address: u64,
    /// `login_connection(THD*)`; the raw name for C.
    pub demangled: String,
    /// `login_connection`: without parameters, the name users type.
    pub base: String,
}

/// A USDT probe site from `.note.stapsdt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsdtNote {
    pub provider: String,
    pub name: String,
    pub address: u64,
}

pub struct Binary {
    pub path: PathBuf,
    pub symbols: Vec<Symbol>,
    pub usdt: Vec<UsdtNote>,
    /// Loaded sections: (address, size, file offset), to turn a symbol
    /// address into the file offset a uprobe is placed at.
    sections: Vec<(u64, u64, u64)>,
}

/// An absolute path as given, or the name's location in PATH.
pub fn locate(binary: &str) -> Result<PathBuf> {
    let found = if binary.contains('/') {
        PathBuf::from(binary)
    } else {
        which::which(binary).map_err(|_| anyhow!("{binary} is not in PATH (give its absolute path)"))?
    };
    std::fs::canonicalize(&found).with_context(|| format!("{}", found.display()))
}

fn demangle(name: &str) -> (String, String) {
    if let Ok(d) = rustc_demangle::try_demangle(name) {
        // {:#} drops the hash; Rust names carry no parameter list.
        let s = format!("{d:#}");
        return (s.clone(), s);
    }
    if name.starts_with("_Z") {
        if let Ok(sym) = cpp_demangle::Symbol::new(name.as_bytes()) {
            let full = sym.demangle().unwrap_or_else(|_| name.to_string());
            let base = sym
                .demangle_with_options(&cpp_demangle::DemangleOptions::new().no_params().no_return_type())
                .unwrap_or_else(|_| full.clone());
            return (full, base);
        }
    }
    (name.to_string(), name.to_string())
}

impl Binary {
    pub fn read(path: &Path) -> Result<Binary> {
        let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let elf = ElfFile64::<Endianness>::parse(&*data)
            .map_err(|_| anyhow!("{} is not a 64-bit ELF executable or library", path.display()))?;
        let mut seen = BTreeSet::new();
        let mut symbols = Vec::new();
        for sym in elf.symbols().chain(elf.dynamic_symbols()) {
            if sym.kind() != SymbolKind::Text || !sym.is_definition() || sym.address() == 0 {
                continue;
            }
            let Ok(name) = sym.name() else { continue };
            if !seen.insert((name.to_string(), sym.address())) {
                continue;
            }
            let (demangled, base) = demangle(name);
            symbols.push(Symbol { name: name.to_string(), address: sym.address(), demangled, base });
        }
        let usdt = read_usdt_notes(&elf).with_context(|| format!("reading the USDT notes of {}", path.display()))?;
        let sections = elf
            .sections()
            .filter(|s| s.address() != 0)
            .filter_map(|s| s.file_range().map(|(off, _)| (s.address(), s.size(), off)))
            .collect();
        Ok(Binary { path: path.to_path_buf(), symbols, usdt, sections })
    }

    /// The file offset of a virtual address, where the kernel places a uprobe.
    pub fn file_offset(&self, address: u64) -> Option<u64> {
        self.sections.iter().find(|(a, size, _)| (*a..a + size).contains(&address)).map(|(a, _, off)| address - a + off)
    }

    /// The one function FUNCTION names: its mangled name, its demangled
    /// name, its name without parameters, its unqualified name, or the
    /// address it starts at (0x…, for same-named static functions).
    pub fn function(&self, function: &str) -> Result<&Symbol> {
        if self.symbols.is_empty() {
            bail!("{} has no symbol table (stripped) and exports no functions", self.path.display());
        }
        if let Some(hex) = function.strip_prefix("0x") {
            let addr = u64::from_str_radix(hex, 16).map_err(|_| anyhow!("{function} is not a hexadecimal address"))?;
            return self
                .symbols
                .iter()
                .find(|s| s.address == addr)
                .ok_or_else(|| anyhow!("no function starts at {function} in {}", self.path.display()));
        }
        let exact: Vec<&Symbol> = self.symbols.iter().filter(|s| s.name == function).collect();
        let mut found = if exact.is_empty() {
            self.symbols.iter().filter(|s| s.demangled == function || s.base == function).collect()
        } else {
            exact
        };
        if found.is_empty() {
            let suffix = format!("::{function}");
            found = self.symbols.iter().filter(|s| s.base.ends_with(&suffix)).collect();
        }
        let addresses: BTreeSet<u64> = found.iter().map(|s| s.address).collect();
        match addresses.len() {
            0 => bail!(
                "no function {function} in {}{}",
                self.path.display(),
                suggest(function, self.symbols.iter().map(|s| s.base.as_str()))
            ),
            // Aliases of one address (C1/C2 constructors, weak + strong) are one function.
            1 => Ok(found[0]),
            n => {
                let mut list: Vec<String> = found
                    .iter()
                    .take(8)
                    .map(|s| {
                        let name = if s.name == s.demangled {
                            s.name.clone()
                        } else {
                            format!("{} [{}]", s.demangled, s.name)
                        };
                        format!("{name} at 0x{:x}", s.address)
                    })
                    .collect();
                if found.len() > 8 {
                    list.push(format!("and {} more", found.len() - 8));
                }
                bail!(
                    "{function} is ambiguous in {}: {n} functions match: {}; give the symbol in brackets or the address (BINARY:0x{:x})",
                    self.path.display(),
                    list.join(", "),
                    found[0].address
                )
            }
        }
    }

    /// The USDT sites of PROVIDER:NAME.
    pub fn usdt_sites(&self, provider: &str, name: &str) -> Vec<&UsdtNote> {
        self.usdt.iter().filter(|n| n.provider == provider && n.name == name).collect()
    }

    pub fn has_usdt(&self, provider: &str, name: &str) -> bool {
        !self.usdt_sites(provider, name).is_empty()
    }

    /// Error text for a USDT probe that is not there.
    pub fn usdt_missing(&self, provider: &str, name: &str) -> String {
        if self.usdt.is_empty() {
            return format!("{} has no USDT probes (no .note.stapsdt section)", self.path.display());
        }
        let full: Vec<String> = self.usdt.iter().map(|n| format!("{}:{}", n.provider, n.name)).collect();
        format!(
            "no USDT probe {provider}:{name} in {}{}",
            self.path.display(),
            suggest(&format!("{provider}:{name}"), full.iter().map(String::as_str))
        )
    }
}

/// "; did you mean: a, b, c" for the closest names, or nothing.
fn suggest<'a>(wanted: &str, names: impl Iterator<Item = &'a str>) -> String {
    let mut scored: Vec<(f64, &str)> = names
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter_map(|n| {
            let score = strsim::jaro_winkler(wanted, n);
            let contains = n.contains(wanted) || (wanted.len() >= 4 && wanted.contains(n) && n.len() >= 4);
            (score >= 0.88 || contains).then_some((if contains { score.max(0.9) } else { score }, n))
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    if scored.is_empty() {
        return String::new();
    }
    let names: Vec<&str> = scored.iter().take(5).map(|(_, n)| *n).collect();
    format!("; did you mean: {}", names.join(", "))
}

/// SystemTap SDT v3 notes: three addresses (site, base, semaphore), then
/// provider, name and argument text. libbpf handles the semaphores itself.
fn read_usdt_notes(elf: &ElfFile64<'_, Endianness>) -> Result<Vec<UsdtNote>> {
    let Some(section) = elf.section_by_name(".note.stapsdt") else { return Ok(Vec::new()) };
    let endian = elf.endian();
    let mut out = Vec::new();
    let Some(mut notes) = section.elf_section_header().notes(endian, elf.data())? else { return Ok(out) };
    while let Some(note) = notes.next()? {
        const NT_STAPSDT: u32 = 3;
        if note.name() != b"stapsdt" || note.n_type(endian) != NT_STAPSDT {
            continue;
        }
        let desc = note.desc();
        if desc.len() < 24 {
            continue;
        }
        let site = u64::from_le_bytes(desc[..8].try_into().expect("8 bytes"));
        let mut strings = desc[24..].split(|&b| b == 0).map(|s| String::from_utf8_lossy(s).into_owned());
        let (Some(provider), Some(name)) = (strings.next(), strings.next()) else { continue };
        out.push(UsdtNote { provider, name, address: site });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demangles_cpp_and_rust() {
        assert_eq!(demangle("_Z16login_connectionP3THD"), ("login_connection(THD*)".into(), "login_connection".into()));
        let (full, base) = demangle("_ZN3foo3barEv");
        assert_eq!((full.as_str(), base.as_str()), ("foo::bar()", "foo::bar"));
        assert_eq!(demangle("main"), ("main".into(), "main".into()));
    }

    #[test]
    fn suggestions_rank_close_names() {
        let names = ["login_connection", "do_command", "dispatch_command", "logout"];
        assert_eq!(suggest("login_conection", names.into_iter()), "; did you mean: login_connection");
        assert!(suggest("dispatch", names.into_iter()).contains("dispatch_command"));
        assert_eq!(suggest("zzzz", names.into_iter()), "");
    }
}
