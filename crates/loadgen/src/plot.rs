//! `--plot FILE.svg`: latency percentiles and throughput over time, one point per
//! second, in two stacked panels sharing the time axis.
//!
//! The latency panel is logarithmic: a healthy p50 and a one-second stall differ by
//! four orders of magnitude, and on a linear axis the p50 would be a flat line on the
//! floor. The throughput panel shows responses and errors per second, so a dip in
//! throughput lines up by eye with the latency spike that caused it.

use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;

use crate::summary::Summary;

const P50: RGBColor = RGBColor(31, 119, 180);
const P99: RGBColor = RGBColor(255, 127, 14);
const MAX: RGBColor = RGBColor(214, 39, 40);
const OK: RGBColor = RGBColor(44, 160, 44);

/// Writes the plot of `s` to `path`.
pub fn write(s: &Summary, path: &Path) -> anyhow::Result<()> {
    draw(s, path).with_context(|| format!("cannot draw {}", path.display()))
}

fn draw(s: &Summary, path: &Path) -> anyhow::Result<()> {
    let total = s.seconds().max(1.0);
    // The centre of each bucket; the last one may be shorter than a second.
    let x = |t: f64| t + (total - t).clamp(0.0, 1.0) / 2.0;
    let floor = 0.001; // 1 µs: the log axis needs positive values
    let lat_max = s
        .timeline
        .iter()
        .map(|p| p.max_ms)
        .fold(s.latency.max, f64::max)
        .max(floor * 10.0);
    let lat_min = s
        .timeline
        .iter()
        .map(|p| p.p50_ms)
        .filter(|v| *v > 0.0)
        .fold(lat_max, f64::min)
        .max(floor);
    let rps_max = s
        .timeline
        .iter()
        .map(|p| p.rps.max(p.errors as f64))
        .fold(1.0, f64::max);

    let root = SVGBackend::new(path, (1000, 720)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!("ballast bench {} — {}", s.url, s.description);
    let root = root.titled(&title, ("sans-serif", 18))?;
    let (upper, lower) = root.split_vertically(400);

    let mut latency = ChartBuilder::on(&upper)
        .caption("Latency per second", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..total, (lat_min / 2.0..lat_max * 2.0).log_scale())?;
    latency
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("latency (ms, log scale)")
        .draw()?;
    for (name, color, value) in [
        (
            "p50",
            P50,
            (|p| p.p50_ms) as fn(&crate::summary::Point) -> f64,
        ),
        ("p99", P99, |p| p.p99_ms),
        ("max", MAX, |p| p.max_ms),
    ] {
        let points = s
            .timeline
            .iter()
            .filter(|p| p.requests > 0)
            .map(|p| (x(p.t), value(p).max(floor)));
        latency
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    latency
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;

    let mut throughput = ChartBuilder::on(&lower)
        .caption("Throughput per second", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..total, 0f64..rps_max * 1.1)?;
    throughput
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("requests/s")
        .draw()?;
    let ok = s.timeline.iter().map(|p| (x(p.t), p.rps));
    throughput
        .draw_series(LineSeries::new(ok, OK.stroke_width(2)))?
        .label("responses/s")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], OK.stroke_width(2)));
    let errors = s.timeline.iter().map(|p| (x(p.t), p.errors as f64));
    throughput
        .draw_series(LineSeries::new(errors, MAX.stroke_width(2)))?
        .label("errors/s")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], MAX.stroke_width(2)));
    throughput
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;

    root.present()?;
    Ok(())
}
