//! The text of --uprobe, --usdt and --usdt-pair, split into its parts.

use anyhow::{bail, Result};

/// What the user asked to trace, before any file is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// `BINARY:FUNCTION`
    Function { binary: String, function: String },
    /// `BINARY:PROVIDER:NAME`
    Usdt { binary: String, provider: String, name: String },
    /// `BINARY:PROVIDER:START:DONE[,DONE...]`
    UsdtPair { binary: String, provider: String, start: String, done: Vec<String> },
}

/// One probe flag: an optional `NAME=` prefix names the probe's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeArg {
    pub flag: &'static str,
    pub text: String,
    pub name: Option<String>,
    pub spec: Spec,
}

impl ProbeArg {
    pub fn parse(flag: &'static str, text: &str) -> Result<ProbeArg> {
        // A name never holds '/' or ':'; a path or spec may hold '='.
        let (name, rest) = match text.split_once('=') {
            Some((n, r)) if !n.is_empty() && !n.contains(['/', ':']) => (Some(n.to_string()), r),
            _ => (None, text),
        };
        let parts: Vec<&str> = match flag {
            // FUNCTION may be a qualified C++ name: split off the binary only.
            "--uprobe" => rest.splitn(2, ':').collect(),
            "--usdt" => rest.splitn(3, ':').collect(),
            _ => rest.splitn(4, ':').collect(),
        };
        let usage = match flag {
            "--uprobe" => "BINARY:FUNCTION (e.g. mariadbd:login_connection)",
            "--usdt" => "BINARY:PROVIDER:NAME (e.g. postgres:postgresql:query__start)",
            _ => "BINARY:PROVIDER:START:DONE (e.g. postgres:postgresql:query__start:query__done)",
        };
        let want = match flag {
            "--uprobe" => 2,
            "--usdt" => 3,
            _ => 4,
        };
        if parts.len() != want || parts.iter().any(|p| p.is_empty()) {
            bail!("{flag} {text}: expected [NAME=]{usage}");
        }
        let binary = parts[0].to_string();
        let spec = match flag {
            "--uprobe" => Spec::Function { binary, function: parts[1].to_string() },
            "--usdt" => Spec::Usdt { binary, provider: parts[1].to_string(), name: parts[2].to_string() },
            _ => {
                let done: Vec<String> = parts[3].split(',').map(str::to_string).collect();
                if done.iter().any(String::is_empty) {
                    bail!("{flag} {text}: expected [NAME=]{usage}");
                }
                Spec::UsdtPair { binary, provider: parts[1].to_string(), start: parts[2].to_string(), done }
            }
        };
        Ok(ProbeArg { flag, text: text.to_string(), name, spec })
    }

    pub fn binary(&self) -> &str {
        match &self.spec {
            Spec::Function { binary, .. } | Spec::Usdt { binary, .. } | Spec::UsdtPair { binary, .. } => binary,
        }
    }
}

/// `query__start` -> `query`: the name of a start/done pair.
pub fn pair_base(start: &str) -> &str {
    for suffix in ["__start", "_start", "__begin", "_begin", "__entry", "_entry"] {
        if let Some(base) = start.strip_suffix(suffix) {
            if !base.is_empty() {
                return base;
            }
        }
    }
    start
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_each_form() {
        let p = ProbeArg::parse("--uprobe", "/usr/sbin/mariadbd:THD::send_kill_message").unwrap();
        assert_eq!(
            p.spec,
            Spec::Function { binary: "/usr/sbin/mariadbd".into(), function: "THD::send_kill_message".into() }
        );
        let p = ProbeArg::parse("--usdt", "q=postgres:postgresql:query__start").unwrap();
        assert_eq!(p.name.as_deref(), Some("q"));
        assert_eq!(
            p.spec,
            Spec::Usdt { binary: "postgres".into(), provider: "postgresql".into(), name: "query__start".into() }
        );
        let p = ProbeArg::parse(
            "--usdt-pair",
            "postgres:postgresql:transaction__start:transaction__commit,transaction__abort",
        )
        .unwrap();
        match p.spec {
            Spec::UsdtPair { start, done, .. } => {
                assert_eq!(start, "transaction__start");
                assert_eq!(done, ["transaction__commit", "transaction__abort"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_specs_name_the_flag_and_the_form() {
        for (flag, text) in
            [("--uprobe", "mariadbd"), ("--uprobe", ":f"), ("--usdt", "postgres:query"), ("--usdt-pair", "p:q:a:")]
        {
            let err = ProbeArg::parse(flag, text).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{flag} {text}: expected")), "{err}");
        }
    }

    #[test]
    fn pair_names_drop_the_start_suffix() {
        assert_eq!(pair_base("query__start"), "query");
        assert_eq!(pair_base("txn_begin"), "txn");
        assert_eq!(pair_base("checkpoint"), "checkpoint");
    }
}
