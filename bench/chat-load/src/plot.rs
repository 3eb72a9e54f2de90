//! `chat-load plot`: turns the JSON the workloads wrote under `target/bench/`
//! into SVG line charts for `docs/benchmarks/`: server RSS against open
//! streams (W1), and latency and deliveries against publish rate (W2).

use serde_json::Value;
use std::fmt::Write;
use std::path::Path;

/// One line of a chart: a name and its points.
struct Series {
    name: String,
    points: Vec<(f64, f64)>,
}

pub fn plot(input: &Path, output: &Path) -> Result<(), String> {
    std::fs::create_dir_all(output).map_err(|e| e.to_string())?;
    let read = |name: &str| -> Option<Value> {
        let text = std::fs::read_to_string(input.join(name)).ok()?;
        serde_json::from_str(&text).ok()
    };
    let mut rss = Vec::new();
    let (mut p99, mut deliveries) = (Vec::new(), Vec::new());
    for store in ["sqlite", "postgres"] {
        if let Some(w1) = read(&format!("w1-{store}.json")) {
            for row in w1["rows"].as_array().into_iter().flatten() {
                let points = row["rss_by_streams"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| Some((p[0].as_f64()?, p[1].as_f64()? / 1024.0)))
                    .collect();
                rss.push(Series {
                    name: label(row, store),
                    points,
                });
            }
        }
        if let Some(w2) = read(&format!("w2-{store}.json")) {
            let rows = w2["rows"].as_array().cloned().unwrap_or_default();
            for target in ["chat-server", "axum hub"] {
                let of_target: Vec<&Value> =
                    rows.iter().filter(|row| row["target"] == target).collect();
                let line = |field: &str, scale: f64| Series {
                    name: label(of_target[0], store),
                    points: of_target
                        .iter()
                        .filter_map(|row| {
                            Some((row["rate"].as_f64()?, row[field].as_f64()? * scale))
                        })
                        .collect(),
                };
                if !of_target.is_empty() {
                    p99.push(line("p99_ms", 1.0));
                    deliveries.push(line("deliveries_per_s", 1e-3));
                }
            }
        }
    }
    let charts = [
        (
            "rss-vs-streams.svg",
            "W1: server memory against open idle streams",
            "open streams",
            "RSS (MiB)",
            rss,
        ),
        (
            "p99-vs-rate.svg",
            "W2: p99 latency to 10,000 subscribers against publish rate",
            "messages published per second",
            "p99 latency (ms)",
            p99,
        ),
        (
            "deliveries-vs-rate.svg",
            "W2: deliveries per second against publish rate",
            "messages published per second",
            "thousand deliveries per second",
            deliveries,
        ),
    ];
    for (file, title, x_label, y_label, series) in charts {
        if series.is_empty() {
            continue;
        }
        let path = output.join(file);
        std::fs::write(&path, chart(title, x_label, y_label, &series))
            .map_err(|e| e.to_string())?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn label(row: &Value, store: &str) -> String {
    match row["target"].as_str() {
        Some("chat-server") => format!("chat-server, {store}"),
        Some(other) => format!("{other} (beside {store})"),
        None => store.to_owned(),
    }
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 200.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLOURS: [&str; 4] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"];

/// A line chart from zero to a round maximum on both axes, legend on the right.
fn chart(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let points = || series.iter().flat_map(|s| s.points.iter());
    // A hair over a round number (a 5,000.1 ms histogram cap) keeps that number.
    let x_max = nice(points().map(|p| p.0).fold(0.0, f64::max) / 1.001);
    let y_max = nice(points().map(|p| p.1).fold(0.0, f64::max) / 1.001);
    let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let x = |v: f64| LEFT + v / x_max * plot_w;
    let y = |v: f64| TOP + plot_h - v / y_max * plot_h;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" font-size="14" text-anchor="middle">{title}</text>
"#,
        WIDTH / 2.0
    );
    for tick in 0..=5 {
        let (xv, yv) = (x_max * f64::from(tick) / 5.0, y_max * f64::from(tick) / 5.0);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/>
<text x="{}" y="{:.1}" text-anchor="end">{}</text>
<text x="{:.1}" y="{}" text-anchor="middle">{}</text>
"##,
            LEFT + plot_w,
            LEFT - 6.0,
            y(yv) + 4.0,
            short(yv),
            x(xv),
            TOP + plot_h + 16.0,
            short(xv),
            y = y(yv),
        );
    }
    let _ = write!(
        svg,
        r#"<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{}" stroke="black"/>
<line x1="{LEFT}" x2="{}" y1="{}" y2="{}" stroke="black"/>
<text x="{}" y="{}" text-anchor="middle">{x_label}</text>
<text transform="translate(16 {}) rotate(-90)" text-anchor="middle">{y_label}</text>
"#,
        TOP + plot_h,
        LEFT + plot_w,
        TOP + plot_h,
        TOP + plot_h,
        LEFT + plot_w / 2.0,
        HEIGHT - 10.0,
        TOP + plot_h / 2.0,
    );
    for (index, line) in series.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let dash = if line.name.starts_with("chat-server") {
            ""
        } else {
            r#" stroke-dasharray="6 4""#
        };
        let path: Vec<String> = line
            .points
            .iter()
            .map(|&(px, py)| format!("{:.1},{:.1}", x(px), y(py)))
            .collect();
        let legend_y = TOP + 10.0 + index as f64 * 20.0;
        let _ = write!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>
<line x1="{}" x2="{}" y1="{legend_y}" y2="{legend_y}" stroke="{colour}" stroke-width="2"{dash}/>
<text x="{}" y="{}">{}</text>
"#,
            path.join(" "),
            WIDTH - RIGHT + 12.0,
            WIDTH - RIGHT + 36.0,
            WIDTH - RIGHT + 42.0,
            legend_y + 4.0,
            line.name,
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// The smallest of 1, 2 or 5 times a power of ten at or above `value`.
fn nice(value: f64) -> f64 {
    if value <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|step| step * power)
        .find(|&candidate| candidate >= value)
        .unwrap_or(10.0 * power)
}

fn short(value: f64) -> String {
    if value >= 1000.0 {
        format!("{}k", value / 1000.0)
    } else {
        format!("{}", (value * 100.0).round() / 100.0)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn axes_end_at_round_numbers() {
        assert_eq!(super::nice(0.0), 1.0);
        assert_eq!(super::nice(7.0), 10.0);
        assert_eq!(super::nice(19_900.0), 20_000.0);
        assert_eq!(super::nice(512.0), 1_000.0);
        assert_eq!(super::nice(0.3), 0.5);
    }
}
