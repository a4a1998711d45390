//! The results chart, as plain SVG text: init time and peak RSS of each function beside its
//! Python reference, and health-sweeper's sweep wall and CPU time against the number of targets.

use std::fmt::Write;

use crate::measure::median;
use crate::report::{Results, seconds};

const WIDTH: f64 = 900.0;
const RUST: &str = "#b7410e";
const PYTHON: &str = "#3572a5";
const CPU: &str = "#6a9955";

/// One bar group per label: `(label, [(value, colour, text)])`.
type Groups = Vec<(String, Vec<(f64, &'static str, String)>)>;

pub fn svg(results: &Results) -> String {
    let init: Groups = results
        .functions
        .iter()
        .map(|f| {
            let (r, p) = (median(&f.rust.cold_ms), median(&f.python.cold_ms));
            (
                f.function.clone(),
                vec![
                    (r, RUST, format!("{r:.1} ms")),
                    (p, PYTHON, format!("{p:.0} ms")),
                ],
            )
        })
        .collect();
    let rss: Groups = results
        .functions
        .iter()
        .map(|f| {
            let (r, p) = (f.rust.peak_rss_mb, f.python.peak_rss_mb);
            (
                f.function.clone(),
                vec![
                    (r, RUST, format!("{r:.1} MB")),
                    (p, PYTHON, format!("{p:.1} MB")),
                ],
            )
        })
        .collect();
    let sweep = sweep_groups(results);

    let mut body = String::new();
    let mut y = 60.0;
    y = panel(
        &mut body,
        y,
        "Init: process start to first GET next (median of 20 cold starts)",
        &init,
    );
    y = panel(
        &mut body,
        y + 20.0,
        "Peak RSS after a cold start and 100 warm invocations",
        &rss,
    );
    if !sweep.is_empty() {
        y = panel(
            &mut body,
            y + 20.0,
            "health-sweeper: one sweep, wall time and CPU time by number of targets",
            &sweep,
        );
    }
    let height = y + 20.0;
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"22\" font-size=\"16\" font-weight=\"bold\">Watchkeeper functions, release builds, {}</text>\n\
         <rect x=\"10\" y=\"34\" width=\"12\" height=\"12\" fill=\"{RUST}\"/><text x=\"26\" y=\"44\">Rust (this project)</text>\n\
         <rect x=\"160\" y=\"34\" width=\"12\" height=\"12\" fill=\"{PYTHON}\"/><text x=\"176\" y=\"44\">Python reference (boto3) / sweep wall time</text>\n\
         <rect x=\"450\" y=\"34\" width=\"12\" height=\"12\" fill=\"{CPU}\"/><text x=\"466\" y=\"44\">sweep CPU time</text>\n\
         {body}</svg>\n",
        escape(&results.date)
    )
}

/// Draws one panel of horizontal bars (linear scale from zero); returns the next free y.
fn panel(out: &mut String, top: f64, title: &str, groups: &Groups) -> f64 {
    let (label_w, bar_h, right) = (190.0, 14.0, 90.0);
    let max = groups
        .iter()
        .flat_map(|(_, bars)| bars.iter().map(|b| b.0))
        .fold(0.0_f64, f64::max)
        .max(f64::MIN_POSITIVE);
    let scale = (WIDTH - label_w - right - 10.0) / max;
    let _ = writeln!(
        out,
        "<text x=\"10\" y=\"{}\" font-weight=\"bold\">{}</text>",
        top + 14.0,
        escape(title)
    );
    let mut y = top + 24.0;
    for (label, bars) in groups {
        let group_h = bars.len() as f64 * (bar_h + 2.0);
        let _ = writeln!(
            out,
            "<text x=\"10\" y=\"{:.1}\">{}</text>",
            y + group_h / 2.0 + 4.0,
            escape(label)
        );
        for (value, colour, text) in bars {
            let w = (value * scale).max(1.0);
            let _ = writeln!(
                out,
                "<rect x=\"{label_w}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{bar_h}\" fill=\"{colour}\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                label_w + w + 4.0,
                y + bar_h - 3.0,
                escape(text)
            );
            y += bar_h + 2.0;
        }
        y += 6.0;
    }
    y
}

/// From the sweep table: one group per size, wall time and CPU time.
fn sweep_groups(results: &Results) -> Groups {
    let Some(header) = results.sweep.first() else {
        return Vec::new();
    };
    let column = |needle: &str| {
        header
            .iter()
            .position(|h| h.to_ascii_lowercase().contains(needle))
    };
    let (Some(targets), Some(wall), Some(cpu)) = (column("targets"), column("wall"), column("cpu"))
    else {
        return Vec::new();
    };
    let open_files = column("open files");
    results
        .sweep
        .iter()
        .skip(1)
        .filter_map(|row| {
            let w = seconds(row.get(wall)?)?;
            let c = seconds(row.get(cpu)?)?;
            let files = open_files
                .and_then(|i| row.get(i))
                .map(|f| format!(", {f} files"))
                .unwrap_or_default();
            Some((
                format!("{} targets{files}", row.get(targets)?),
                vec![
                    (w, PYTHON, format!("{w:.2} s wall")),
                    (c, CPU, format!("{c:.2} s CPU")),
                ],
            ))
        })
        .collect()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
