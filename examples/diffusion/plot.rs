//! Scatter plots of 2-D point sets side by side on one PNG (plotters' bitmap backend, with the
//! digits example's pixel font for labels).

// The same file is loaded by `common/lines.rs`; its text helpers are all this module needs.
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "../digits/plot.rs"]
mod digits_plot;

use digits_plot::{text, text_width};
use plotters::prelude::*;
use std::path::Path;

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// The square every panel shows (standardised data units).
const LIMIT: f64 = 3.0;

/// Draws each `(title, points)` as a square panel, left to right, on the same axes
/// `[-3, 3]²`; points outside are left out.
pub fn scatter(path: &Path, panels: &[(String, Vec<(f64, f64)>)]) -> DrawResult {
    let side = 420u32;
    let root = BitMapBackend::new(path, (side * panels.len() as u32, side + 20)).into_drawing_area();
    root.fill(&WHITE)?;
    let colors = [RGBColor(90, 90, 90), BLUE, RGBColor(200, 40, 40)];
    for (i, (area, (title, pts))) in root.split_evenly((1, panels.len())).iter().zip(panels).enumerate() {
        let (w, _) = area.dim_in_pixel();
        text(area, (w as i32 - text_width(title, 2)) / 2, 10, title, &BLACK, 2)?;
        let mut chart = ChartBuilder::on(area)
            .margin_top(40)
            .margin_bottom(30)
            .margin_left(30)
            .margin_right(30)
            .build_cartesian_2d(-LIMIT..LIMIT, -LIMIT..LIMIT)?;
        // `backend_coord` is in whole-image pixels; `area` draws relative to its own corner.
        let (bx, by) = area.get_base_pixel();
        let lc = |p: (i32, i32)| (p.0 - bx, p.1 - by);
        let grid = RGBColor(225, 225, 225);
        for v in [-2.0, -1.0, 0.0, 1.0, 2.0] {
            chart.draw_series(LineSeries::new(vec![(-LIMIT, v), (LIMIT, v)], grid))?;
            chart.draw_series(LineSeries::new(vec![(v, -LIMIT), (v, LIMIT)], grid))?;
            let (px, py) = lc(chart.backend_coord(&(v, -LIMIT)));
            let label = format!("{v:.0}");
            text(area, px - text_width(&label, 1) / 2, py + 6, &label, &BLACK, 1)?;
        }
        let inside = pts.iter().filter(|(x, y)| x.abs() < LIMIT && y.abs() < LIMIT);
        let color = colors[i % colors.len()];
        chart.draw_series(inside.map(|&p| Circle::new(p, 2, color.mix(0.6).filled())))?;
        let (x0, y0) = lc(chart.backend_coord(&(-LIMIT, -LIMIT)));
        let (x1, y1) = lc(chart.backend_coord(&(LIMIT, LIMIT)));
        area.draw(&Rectangle::new([(x0, y1), (x1, y0)], BLACK.stroke_width(1)))?;
    }
    root.present()?;
    Ok(())
}
