//! SVG plot of a session (plotters, SVG backend only): bitrate of each segment, the ABR's
//! throughput estimate and the buffer level over session time; for a live session, the live
//! latency beside the buffer (both in seconds).

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use crate::report::SessionReport;

/// Writes the plot of `report` to `path`.
pub fn write_svg(report: &SessionReport, path: &Path) -> Result<()> {
    let svg = render_svg(report)?;
    std::fs::write(path, svg).map_err(|e| anyhow!("{}: cannot write plot: {e}", path.display()))
}

/// The plot as an SVG document.
pub fn render_svg(report: &SessionReport) -> Result<String> {
    let rows: Vec<_> = report.segments.iter().filter(|r| !r.missing).collect();
    let end_s = rows
        .iter()
        .map(|r| r.start_s + r.download_s)
        .fold(1.0f64, f64::max);
    let max_kbps = rows
        .iter()
        .flat_map(|r| [r.bitrate_kbps, r.estimate_kbps.unwrap_or(0.0)])
        .fold(100.0f64, f64::max)
        * 1.1;
    let max_buf = rows
        .iter()
        .map(|r| r.buffer_s)
        .chain(report.latency.iter().map(|p| p.latency_s))
        .fold(5.0f64, f64::max)
        * 1.1;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (900, 600)).into_drawing_area();
        let e = |e: DrawingAreaErrorKind<std::io::Error>| anyhow!("plot: {e}");
        root.fill(&WHITE).map_err(e)?;
        let (top, bottom) = root.split_vertically(360);
        let mut title = format!(
            "{} | QoE_lin {:.3} | {:.0} kb/s | rebuffer {:.2} s",
            report.abr,
            report.summary.qoe_lin,
            report.summary.bitrate_kbps,
            report.summary.rebuffer_s
        );
        if let (Some(p50), Some(p95)) = (
            report.summary.live_latency_p50_s,
            report.summary.live_latency_p95_s,
        ) {
            title.push_str(&format!(" | latency p50 {p50:.2} s, p95 {p95:.2} s"));
        }
        let mut chart = ChartBuilder::on(&top)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..end_s, 0.0..max_kbps)
            .map_err(e)?;
        chart.configure_mesh().y_desc("kb/s").draw().map_err(e)?;
        let mut steps = Vec::new();
        for r in &rows {
            steps.push((r.start_s, r.bitrate_kbps));
            steps.push((r.start_s + r.download_s, r.bitrate_kbps));
        }
        chart
            .draw_series(LineSeries::new(steps, BLUE.stroke_width(2)))
            .map_err(e)?
            .label("bitrate")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        let est: Vec<(f64, f64)> = rows
            .iter()
            .filter_map(|r| r.estimate_kbps.map(|k| (r.start_s, k)))
            .collect();
        chart
            .draw_series(LineSeries::new(est, RED))
            .map_err(e)?
            .label("estimate")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        let tput: Vec<(f64, f64)> = rows
            .iter()
            .map(|r| (r.start_s + r.download_s, r.throughput_kbps.min(max_kbps)))
            .collect();
        chart
            .draw_series(tput.iter().map(|&p| Circle::new(p, 2, GREEN.filled())))
            .map_err(e)?
            .label("measured")
            .legend(|(x, y)| Circle::new((x + 10, y), 2, GREEN.filled()));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(e)?;
        let mut buf = ChartBuilder::on(&bottom)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..end_s, 0.0..max_buf)
            .map_err(e)?;
        buf.configure_mesh()
            .x_desc("session time (s)")
            .y_desc(if report.latency.is_empty() {
                "buffer (s)"
            } else {
                "buffer, latency (s)"
            })
            .draw()
            .map_err(e)?;
        let levels: Vec<(f64, f64)> = rows
            .iter()
            .map(|r| (r.start_s + r.download_s, r.buffer_s))
            .collect();
        buf.draw_series(LineSeries::new(levels, BLACK))
            .map_err(e)?
            .label("buffer")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
        if !report.latency.is_empty() {
            let latency: Vec<(f64, f64)> = report
                .latency
                .iter()
                .filter(|p| p.t_s <= end_s)
                .map(|p| (p.t_s, p.latency_s.clamp(0.0, max_buf)))
                .collect();
            buf.draw_series(LineSeries::new(latency, MAGENTA))
                .map_err(e)?
                .label("live latency")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], MAGENTA));
            buf.configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(e)?;
        }
        let stalls = rows
            .iter()
            .filter(|r| r.rebuffer_s > 0.0)
            .map(|r| Circle::new((r.start_s + r.download_s, 0.0), 4, RED.filled()));
        buf.draw_series(stalls).map_err(e)?;
        root.present().map_err(e)?;
    }
    Ok(out)
}
