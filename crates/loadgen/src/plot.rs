//! `--plot FILE.svg`: latency percentiles and throughput over time, one point per
//! second, in two stacked panels sharing the time axis, and under them the
//! latency distribution by percentile.
//!
//! The latency panels are logarithmic: a healthy p50 and a one-second stall differ by
//! four orders of magnitude, and on a linear axis the p50 would be a flat line on the
//! floor. Their grid lines and labels are 1-2-5 per decade or fewer (`log_axis.rs`),
//! never crowded. The throughput panel shows responses and errors per second, so a dip in
//! throughput lines up by eye with the latency spike that caused it.
//!
//! The distribution panel is HdrHistogram's percentile plot (as wrk2 and
//! HdrHistogram's plotter draw it): latency against percentile on a "nines" axis,
//! 0%, 90%, 99%, 99.9%, ... equally spaced, so that the tail — where a stall or a
//! coordinated-omission artefact shows — gets as much room as the median.

use std::path::Path;

use anyhow::Context;
use plotters::coord::combinators::WithKeyPoints;
use plotters::prelude::*;

use crate::log_axis::{self, Ticks};
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

    let root = SVGBackend::new(path, (1000, 1080)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!("ballast bench {} — {}", s.url, s.description);
    let root = root.titled(&title, ("sans-serif", 18))?;
    let (upper, rest) = root.split_vertically(380);
    let (lower, bottom) = rest.split_vertically(320);

    let (lo, hi) = (lat_min / 2.0, lat_max * 2.0);
    let mut latency = ChartBuilder::on(&upper)
        .caption("Latency per second", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..total, log_range(lo, hi, &upper))?;
    latency
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("latency (ms, log scale)")
        .y_label_formatter(&|v| log_axis::label(*v))
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

    distribution(s, &bottom, floor)?;
    root.present()?;
    Ok(())
}

/// A log axis from `lo` to `hi` over the height of `area`, with our ticks.
fn log_range(
    lo: f64,
    hi: f64,
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
) -> WithKeyPoints<LogCoord<f64>> {
    // The plotting height: the area's, less its caption, margins and x labels.
    let pixels = (f64::from(area.dim_in_pixel().1) - 90.0).max(60.0);
    let Ticks { labelled, light } = log_axis::ticks(lo, hi, pixels);
    (lo..hi)
        .log_scale()
        .with_key_points(labelled)
        .with_light_points(light)
}

/// The latency distribution by percentile on the "nines" axis.
fn distribution(
    s: &Summary,
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    floor: f64,
) -> anyhow::Result<()> {
    // The last point is 100%, infinitely many nines: it is drawn where the
    // percentiles stop being distinct, one request in all of them.
    let resolution = (s.requests.max(10) as f64).log10();
    let points: Vec<(f64, f64)> = s
        .distribution
        .iter()
        .map(|(q, ms)| {
            let x = if *q < 1.0 {
                log_axis::nines(*q)
            } else {
                resolution
            };
            (x.min(resolution), ms.max(floor))
        })
        .collect();
    let nines_max = resolution.max(1.0);
    let lo = points.first().map_or(floor, |p| p.1);
    let hi = points.last().map_or(floor * 10.0, |p| p.1).max(lo * 4.0);
    let mut chart = ChartBuilder::on(area)
        .caption("Latency by percentile", ("sans-serif", 16))
        .margin(12)
        .margin_right(36)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..nines_max, log_range(lo / 2.0, hi * 2.0, area))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        // A label and a grid line at each whole nine, none between.
        .x_labels(nines_max.floor() as usize + 1)
        .x_max_light_lines(0)
        .y_desc("latency (ms, log scale)")
        .x_label_formatter(&|n| log_axis::nines_label(*n))
        .y_label_formatter(&|v| log_axis::label(*v))
        .draw()?;
    chart
        .draw_series(LineSeries::new(points, P50.stroke_width(2)))?
        .label("latency")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], P50.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}
