//! Line charts for the Taylor-mode examples: several named curves on one PNG (plotters'
//! bitmap backend, with the digits example's pixel font for labels).

#[allow(dead_code)]
#[path = "../digits/plot.rs"]
mod digits_plot;

use digits_plot::{text, text_width};
use plotters::prelude::*;
use std::path::Path;

/// One named curve.
pub struct Curve {
    pub name: String,
    pub color: RGBColor,
    pub points: Vec<(f64, f64)>,
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Draws `curves` against a shared x axis; with `log_y`, y is drawn on a log10 scale.
pub fn draw(path: &Path, title: &str, x_label: &str, curves: &[Curve], log_y: bool) -> DrawResult {
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let (w, h) = root.dim_in_pixel();
    text(&root, (w as i32 - text_width(title, 2)) / 2, 10, title, &BLACK, 2)?;
    let ty = |y: f64| if log_y { y.max(1e-12).log10() } else { y };
    let pts = curves.iter().flat_map(|c| c.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in pts {
        let y = ty(y);
        if y.is_finite() {
            (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
        }
    }
    if x0.partial_cmp(&x1) != Some(std::cmp::Ordering::Less) {
        (x0, x1) = (0.0, 1.0);
    }
    if y0.partial_cmp(&y1) != Some(std::cmp::Ordering::Less) {
        (y0, y1) = (y0.min(0.0) - 1.0, y1.max(0.0) + 1.0);
    }
    if log_y {
        (y0, y1) = (y0.floor(), y1.ceil());
    } else {
        let pad = 0.05 * (y1 - y0);
        (y0, y1) = (y0 - pad, y1 + pad);
    }
    let mut chart = ChartBuilder::on(&root)
        .margin_top(40)
        .margin_bottom(40)
        .margin_left(80)
        .margin_right(200)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    let grid = RGBColor(225, 225, 225);
    let ticks = if log_y { (y1 - y0).round() as usize } else { 5 };
    for i in 0..=ticks {
        let v = y0 + (y1 - y0) * i as f64 / ticks as f64;
        chart.draw_series(LineSeries::new(vec![(x0, v), (x1, v)], grid))?;
        let (px, py) = chart.backend_coord(&(x0, v));
        let label = if log_y { format!("1E{}", v.round() as i64) } else { format!("{v:.3}") };
        text(&root, px - 8 - text_width(&label, 1), py - 3, &label, &BLACK, 1)?;
    }
    for i in 0..=5 {
        let v = x0 + (x1 - x0) * i as f64 / 5.0;
        let (px, py) = chart.backend_coord(&(v, y0));
        let label = format!("{v:.0}");
        text(&root, px - text_width(&label, 1) / 2, py + 8, &label, &BLACK, 1)?;
    }
    let (ax, ay) = chart.backend_coord(&(x0, y0));
    let (bx, by) = chart.backend_coord(&(x1, y1));
    root.draw(&Rectangle::new([(ax, by), (bx, ay)], BLACK.stroke_width(1)))?;
    text(&root, (ax + bx - text_width(x_label, 1)) / 2, h as i32 - 16, x_label, &BLACK, 1)?;
    for (i, c) in curves.iter().enumerate() {
        let line: Vec<(f64, f64)> = c.points.iter().map(|&(x, y)| (x, ty(y))).filter(|p| p.1.is_finite()).collect();
        chart.draw_series(LineSeries::new(line, c.color.stroke_width(2)))?;
        let ly = 60 + 24 * i as i32;
        root.draw(&PathElement::new(
            vec![(w as i32 - 190, ly + 3), (w as i32 - 170, ly + 3)],
            c.color.stroke_width(3),
        ))?;
        text(&root, w as i32 - 164, ly, &c.name, &c.color, 1)?;
    }
    root.present()?;
    Ok(())
}
