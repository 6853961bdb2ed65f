//! The writer's latency over time for every run, in one SVG chart: the worst
//! statement per 50 ms (log scale), time relative to each migration's start.

use std::path::Path;

use plotters::prelude::*;

use crate::Run;

const BUCKET: f64 = 0.05;

/// Writes the chart; `goal_ms` is drawn as a horizontal line.
pub fn draw(
    path: &Path,
    title: &str,
    runs: &[&Run],
    before: f64,
    after: f64,
    goal_ms: f64,
) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let colors = [
        RGBColor(214, 39, 40),
        RGBColor(31, 119, 180),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
    ];
    let longest = runs.iter().map(|r| r.t1 - r.t0).fold(0.0, f64::max);
    let (x0, x1) = (-before, longest + after);
    let series: Vec<Vec<(f64, f64)>> = runs.iter().map(|r| buckets(r, x0, x1)).collect();
    let top = series.iter().flatten().map(|p| p.1).fold(goal_ms, f64::max) * 2.0;

    let root = SVGBackend::new(path, (1200, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .margin(16)
        .caption(title, ("sans-serif", 20))
        .set_label_area_size(LabelAreaPosition::Left, 70)
        .set_label_area_size(LabelAreaPosition::Bottom, 45)
        .build_cartesian_2d(x0..x1, (0.05f64..top).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the migration started")
        .y_desc("writer latency, worst per 50 ms (ms, log)")
        .y_label_formatter(&|v| {
            if *v >= 1.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.2}")
            }
        })
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(err)?;
    let gray = RGBColor(120, 120, 120);
    chart
        .draw_series(LineSeries::new(
            vec![(x0, goal_ms), (x1, goal_ms)],
            gray.stroke_width(1),
        ))
        .map_err(err)?
        .label(format!("goal: longest stall <= {goal_ms} ms"))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], gray));
    chart
        .draw_series(LineSeries::new(
            vec![(0.0, 0.05), (0.0, top)],
            BLACK.stroke_width(1),
        ))
        .map_err(err)?;
    for (i, (run, points)) in runs.iter().zip(&series).enumerate() {
        let color = colors[i % colors.len()];
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(1),
            ))
            .map_err(err)?
            .label(format!(
                "{} (migration {:.1} s)",
                run.label,
                run.t1 - run.t0
            ))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        // Where this run's migration ended.
        let end = run.t1 - run.t0;
        chart
            .draw_series(LineSeries::new(
                vec![(end, 0.05), (end, top)],
                color.stroke_width(2),
            ))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(gray)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// The worst latency of the statements started in each 50 ms, relative to the migration's start.
fn buckets(run: &Run, x0: f64, x1: f64) -> Vec<(f64, f64)> {
    let n = ((x1 - x0) / BUCKET).ceil() as usize + 1;
    let mut worst = vec![f64::NAN; n];
    for s in &run.samples {
        let x = s.start - run.t0;
        if x < x0 || x > x1 {
            continue;
        }
        let i = ((x - x0) / BUCKET) as usize;
        if worst[i].is_nan() || s.ms > worst[i] {
            worst[i] = s.ms;
        }
    }
    worst
        .iter()
        .enumerate()
        .filter(|(_, v)| !v.is_nan())
        .map(|(i, v)| (x0 + i as f64 * BUCKET, v.max(0.05)))
        .collect()
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing the chart: {e:?}")
}
