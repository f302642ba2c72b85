//! Frames for people: aligned tables (or Markdown), histograms as BCC-style bars.

use std::io::{self, Write};

use comfy_table::presets::{ASCII_MARKDOWN, UTF8_FULL_CONDENSED};
use comfy_table::{Cell, CellAlignment, Table};
use polars::prelude::*;

use super::cells::{buckets, is_buckets, texts};

/// `     16 -> 31     : 5        |*****        |`
fn draw_histogram(out: &mut dyn Write, label: &str, buckets: &[(u64, u64)]) -> io::Result<()> {
    let max = buckets.iter().map(|b| b.1).max().unwrap_or(0).max(1);
    writeln!(out, "{label}")?;
    writeln!(out, "{:>24} : {:<8} distribution", "usecs", "count")?;
    for &(le, n) in buckets {
        let lo = if le <= 1 { 0 } else { le / 2 + 1 };
        let stars = (n * 40).div_ceil(max) as usize;
        writeln!(out, "{:>10} -> {:<10} : {:<8} |{:<40}|", lo, le, n, "*".repeat(stars.min(40)))?;
    }
    writeln!(out)
}

fn new_table(markdown: bool) -> Table {
    let mut t = Table::new();
    t.load_preset(if markdown { ASCII_MARKDOWN } else { UTF8_FULL_CONDENSED });
    t
}

fn print_table(out: &mut dyn Write, t: &Table, empty: bool) -> io::Result<()> {
    if empty {
        writeln!(out, "(no rows)")
    } else {
        writeln!(out, "{t}")
    }
}

pub fn write(
    out: &mut dyn Write,
    title: &str,
    df: &DataFrame,
    transposed: bool,
    markdown: bool,
    local: bool,
) -> anyhow::Result<()> {
    let heading = |out: &mut dyn Write, t: &str| -> io::Result<()> {
        match (t.is_empty(), markdown) {
            (true, _) => Ok(()),
            (false, true) => writeln!(out, "### {t}\n"),
            (false, false) => writeln!(out, "{t}"),
        }
    };
    let cols = df.columns();
    let hist: Vec<bool> = cols.iter().map(|c| is_buckets(c.dtype())).collect();
    let numeric: Vec<bool> = cols.iter().map(|c| c.dtype().is_primitive_numeric()).collect();
    let mut text: Vec<Vec<Option<String>>> = Vec::with_capacity(cols.len());
    for (c, h) in cols.iter().zip(&hist) {
        text.push(if *h { vec![None; c.len()] } else { texts(c, local)? });
    }
    let cell = |s: &Option<String>| {
        let s = s.clone().unwrap_or_default();
        if markdown {
            s.replace('\n', "<br>").replace('|', "\\|")
        } else {
            s
        }
    };
    if transposed {
        for row in 0..df.height() {
            let name = text.first().and_then(|c| c[row].clone()).unwrap_or_default();
            heading(out, &format!("{title} {name}"))?;
            let mut t = new_table(markdown);
            t.set_header(["field", "value"]);
            for (c, col) in cols.iter().enumerate().filter(|(c, _)| !hist[*c]) {
                t.add_row([Cell::new(col.name().as_str()), Cell::new(cell(&text[c][row]))]);
            }
            print_table(out, &t, false)?;
            if row + 1 < df.height() {
                writeln!(out)?;
            }
        }
        if df.height() == 0 {
            heading(out, title)?;
            writeln!(out, "(no rows)")?;
        }
        return Ok(());
    }
    heading(out, title)?;
    let shown: Vec<usize> = (0..cols.len()).filter(|&c| !hist[c]).collect();
    let mut t = new_table(markdown);
    t.set_header(shown.iter().map(|&c| cols[c].name().as_str()));
    // Row by row across columns of text: an index, not an iterator.
    #[allow(clippy::needless_range_loop)]
    for row in 0..df.height() {
        t.add_row(shown.iter().map(|&c| {
            let x = Cell::new(cell(&text[c][row]));
            if numeric[c] {
                x.set_alignment(CellAlignment::Right)
            } else {
                x
            }
        }));
    }
    print_table(out, &t, df.height() == 0)?;
    for (c, col) in cols.iter().enumerate().filter(|(c, _)| hist[*c]) {
        if markdown {
            writeln!(out, "\n```")?;
        }
        for (row, b) in buckets(col)?.iter().enumerate() {
            // "connect (comm=curl)": the row's first text names it, the rest qualify it.
            let mut named = shown
                .iter()
                .filter(|&&i| i < c && !cols[i].name().ends_with("_us") && cols[i].name() != "count")
                .filter_map(|&i| text[i][row].as_ref().map(|v| (cols[i].name().as_str(), v.as_str())));
            let name = named.next().map(|(_, v)| v.to_string()).unwrap_or_default();
            let quals: Vec<String> = named.map(|(k, v)| format!("{k}={v}")).collect();
            let label = if quals.is_empty() { name } else { format!("{name} ({})", quals.join(", ")) };
            draw_histogram(out, &label, b)?;
        }
        if markdown {
            writeln!(out, "```")?;
        }
    }
    Ok(())
}
