//! Frames as HTML tables and the page around them: one file, everything inline.

use std::fmt::Write as _;

use polars::prelude::*;

use crate::output::cells::{is_buckets, texts};

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A frame as a table; `id` names it for readers (and the tests).
pub fn table(id: &str, df: &DataFrame) -> PolarsResult<String> {
    let cols: Vec<&Column> = df.columns().iter().filter(|c| !is_buckets(c.dtype())).collect();
    let text: Vec<Vec<Option<String>>> = cols.iter().map(|c| texts(c, false)).collect::<PolarsResult<_>>()?;
    let mut s = format!("<table id=\"{}\"><thead><tr>", esc(id));
    for c in &cols {
        let _ = write!(s, "<th>{}</th>", esc(c.name()));
    }
    s.push_str("</tr></thead><tbody>");
    for row in 0..df.height() {
        s.push_str("<tr>");
        for (c, t) in cols.iter().zip(&text) {
            let class = if c.dtype().is_primitive_numeric() { " class=\"n\"" } else { "" };
            let v = t[row].as_deref().map(esc).unwrap_or_default().replace('\n', "<br>");
            let _ = write!(s, "<td{class}>{v}</td>");
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    Ok(s)
}

/// A chart with its numbers beside it, folded away until asked for.
pub fn figure(svg: &str, numbers: &str, caption: &str) -> String {
    format!(
        "<figure>{svg}<figcaption>{}</figcaption><details><summary>the numbers</summary>{numbers}</details></figure>",
        esc(caption)
    )
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px auto;max-width:1000px;color:#222}\
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;margin:8px 0;font-size:12px}th,td{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}\
td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f4f4f4}\
figure{margin:12px 0}figcaption{color:#555;font-size:12px}details{margin:4px 0}summary{cursor:pointer;color:#036}\
svg{max-width:100%;height:auto}.warn{background:#fff4e0;border:1px solid #e0b060;padding:6px 10px}";

pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\
<title>{t}</title><style>{STYLE}</style></head><body><h1>{t}</h1>{body}</body></html>\n",
        t = esc(title)
    )
}
