//! The ticks of the plot's logarithmic latency axes, and of the percentile axis
//! on its "nines" scale.
//!
//! Off the measurement path (drawing, after the run). Left to itself plotters
//! puts a grid line at every integer multiple in each decade, and labels many of
//! them: near the top of a decade they crowd into a dark band with labels
//! printed over each other. Here the labels are 1-2-5 per decade (as on printed
//! log paper and in Grafana), or fewer — one per decade, or per few decades —
//! whatever keeps every two labels at least [`MIN_GAP`] pixels apart; the
//! multiples left out are drawn as light grid lines only while those lines stay
//! well apart too.

/// The least distance between two labels on the axis, in pixels: more than a
/// line of the 12-pixel label text.
pub const MIN_GAP: f64 = 22.0;

/// The least distance between two light grid lines, in pixels.
const MIN_LIGHT_GAP: f64 = 6.0;

/// Where a log axis has a labelled grid line and where a light one.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticks {
    pub labelled: Vec<f64>,
    pub light: Vec<f64>,
}

/// Ticks for a log axis from `lo` to `hi` (both > 0) drawn over `pixels`.
pub fn ticks(lo: f64, hi: f64, pixels: f64) -> Ticks {
    let decades = (hi / lo).log10().max(1e-9);
    let per_decade = pixels / decades;
    let fits = |gap_in_decades: f64, min: f64| gap_in_decades * per_decade >= min;
    let one_two_five = [1.0, 2.0, 5.0];
    let (labelled, light): (Vec<f64>, Vec<f64>) = if fits(2f64.log10(), MIN_GAP) {
        let light = if fits((10.0f64 / 9.0).log10(), MIN_LIGHT_GAP) {
            vec![3.0, 4.0, 6.0, 7.0, 8.0, 9.0]
        } else {
            Vec::new()
        };
        (one_two_five.to_vec(), light)
    } else if fits(1.0, MIN_GAP) {
        let light = if fits(2f64.log10(), MIN_LIGHT_GAP) {
            vec![2.0, 5.0]
        } else {
            Vec::new()
        };
        (vec![1.0], light)
    } else {
        // A label every `step` decades, a light line at each decade between.
        let step = (MIN_GAP / per_decade).ceil() as i32;
        let all = powers(lo, hi).into_iter().filter(|p| *p >= lo);
        let (labelled, light) = all.partition(|p| (p.log10().round() as i32).rem_euclid(step) == 0);
        return Ticks { labelled, light };
    };
    let at = |mantissas: &[f64]| -> Vec<f64> {
        powers(lo, hi)
            .into_iter()
            .flat_map(|p| mantissas.iter().map(move |m| m * p))
            .filter(|v| *v >= lo && *v <= hi)
            .collect()
    };
    Ticks {
        labelled: at(&labelled),
        light: at(&light),
    }
}

/// The powers of ten from the one at or below `lo` to `hi`.
fn powers(lo: f64, hi: f64) -> Vec<f64> {
    let (first, last) = (lo.log10().floor() as i32, hi.log10().floor() as i32);
    (first..=last).map(|e| 10f64.powi(e)).collect()
}

/// A tick's label: as few digits as its value needs (`0.002`, `5`, `2000`).
pub fn label(v: f64) -> String {
    let digits = (-v.log10().floor()).max(0.0) as usize;
    format!("{v:.digits$}")
}

/// The "nines" of percentile `q` (0 ≤ q < 1): 0 for 0%, 1 for 90%, 2 for 99%,
/// 3 for 99.9%: the x coordinate of HdrHistogram's percentile plot.
pub fn nines(q: f64) -> f64 {
    -(1.0 - q).log10()
}

/// The label of whole nines `n`: `0%`, `90%`, `99%`, `99.9%`, `99.99%`.
pub fn nines_label(n: f64) -> String {
    let n = n.round().max(0.0) as i32;
    if n == 0 {
        return "0%".to_owned();
    }
    let decimals = (n - 2).max(0) as usize;
    format!("{:.decimals$}%", 100.0 - 10f64.powi(2 - n))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every two labels at least `MIN_GAP` pixels apart, over axes from a
    /// fraction of a decade to nine decades.
    #[test]
    fn labels_never_crowd_and_are_1_2_5() {
        for (lo, hi) in [
            (0.5, 8.0),
            (0.05, 400.0),
            (0.001, 2000.0),
            (1.3, 3.1),
            (0.001, 1e6),
        ] {
            let pixels = 300.0;
            let t = ticks(lo, hi, pixels);
            assert!(!t.labelled.is_empty(), "{lo}..{hi}");
            let y = |v: f64| (v / lo).log10() / (hi / lo).log10() * pixels;
            for pair in t.labelled.windows(2) {
                assert!(y(pair[1]) - y(pair[0]) >= MIN_GAP, "{lo}..{hi}: {pair:?}");
            }
            for v in t.labelled.iter().chain(&t.light) {
                assert!(*v >= lo && *v <= hi, "{v} outside {lo}..{hi}");
                let mantissa = v / 10f64.powf(v.log10().floor());
                assert!((mantissa - mantissa.round()).abs() < 1e-6, "{v}");
            }
            for v in &t.labelled {
                let m = (v / 10f64.powf(v.log10().floor())).round();
                assert!([1.0, 2.0, 5.0].contains(&m), "{v} in {lo}..{hi}");
            }
        }
    }

    #[test]
    fn a_wide_axis_labels_decades_and_a_very_wide_one_fewer() {
        let t = ticks(0.01, 1000.0, 300.0);
        let labels: Vec<String> = t.labelled.iter().map(|v| label(*v)).collect();
        assert_eq!(labels, ["0.01", "0.1", "1", "10", "100", "1000"]);
        let light: Vec<String> = t.light.iter().map(|v| label(*v)).collect();
        assert!(light.contains(&"20".to_owned()) && light.contains(&"0.05".to_owned()));
        let t = ticks(0.001, 1e9, 150.0);
        assert!(t.labelled.len() <= 7, "{:?}", t.labelled);
        assert!(
            t.labelled.iter().any(|v| label(*v) == "1"),
            "{:?}",
            t.labelled
        );
    }

    #[test]
    fn labels_and_nines() {
        assert_eq!(label(0.002), "0.002");
        assert_eq!(label(0.5), "0.5");
        assert_eq!(label(5.0), "5");
        assert_eq!(label(2000.0), "2000");
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(0.999) - 3.0).abs() < 1e-9);
        let labels: Vec<String> = (0..6).map(|n| nines_label(n as f64)).collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]);
    }
}
