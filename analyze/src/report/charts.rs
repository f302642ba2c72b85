//! Charts as SVG, drawn by plotters (its SVG backend; the browser renders the
//! text, so no font is needed here).

use anyhow::{anyhow, Result};
use plotters::prelude::*;

const WIDTH: u32 = 960;
const HEIGHT: u32 = 320;

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing a chart: {e:?}")
}

/// Inline in HTML an SVG needs no namespace declaration; without it the page
/// names no URL at all.
fn inline(svg: String) -> String {
    svg.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1)
}

/// A named line: (seconds from the start, value) points.
pub type Series = (String, Vec<(f64, f64)>);

/// One line per series over seconds from the trace start.
pub fn lines(title: &str, y_desc: &str, series: &[Series]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let xs = series.iter().flat_map(|(_, p)| p.iter().map(|(x, _)| *x));
        let (x0, x1) = xs.fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(x), hi.max(x)));
        let (x0, x1) = if x0 > x1 { (0.0, 1.0) } else { (x0, x1.max(x0 + 1.0)) };
        let top = series.iter().flat_map(|(_, p)| p.iter().map(|(_, y)| *y)).fold(0.0, f64::max).max(1.0) * 1.05;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(72)
            .build_cartesian_2d(x0..x1, 0.0..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .light_line_style(RGBColor(238, 238, 238))
            .x_desc("seconds from the start")
            .y_desc(y_desc)
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(err)?;
        for (i, (name, points)) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))
                .map_err(err)?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        }
        if !series.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .draw()
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(inline(svg))
}

/// Log2 buckets as bars: (le_us, count), the label of each its range.
pub fn histogram(title: &str, buckets: &[(u64, u64)]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH / 2, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let top = buckets.iter().map(|b| b.1).max().unwrap_or(0).max(1) as f64 * 1.1;
        let n = buckets.len().max(1) as u32;
        let labels: Vec<String> = buckets.iter().map(|(le, _)| format!("≤{}", short_us(*le))).collect();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d((0u32..n).into_segmented(), 0.0..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(RGBColor(238, 238, 238))
            .x_desc("microseconds")
            .y_desc("count")
            .y_label_formatter(&|v| format!("{v:.0}"))
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .draw()
            .map_err(err)?;
        chart
            .draw_series(
                Histogram::vertical(&chart)
                    .style(Palette99::pick(4).filled())
                    .margin(2)
                    .data(buckets.iter().enumerate().map(|(i, (_, c))| (i as u32, *c as f64))),
            )
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(inline(svg))
}

/// 1023 → "1023", 1048575 → "1.0M".
fn short_us(v: u64) -> String {
    match v {
        0..=9_999 => v.to_string(),
        10_000..=9_999_999 => format!("{:.0}k", v as f64 / 1e3),
        _ => format!("{:.1}M", v as f64 / 1e6),
    }
}
