//! The training curves as a PNG, drawn with plotters' bitmap backend.
//!
//! plotters draws text only with a font library (system fonts or a bundled
//! font file); to keep the example free of both, labels are drawn with the
//! small 5×7 pixel font below.

use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// Per-epoch values.
#[derive(Default)]
pub struct History {
    pub train_loss: Vec<f64>,
    pub train_acc: Vec<f64>,
    pub test_loss: Vec<f64>,
    pub test_acc: Vec<f64>,
}

impl History {
    pub fn push(&mut self, train_loss: f64, train_acc: f64, test_loss: f64, test_acc: f64) {
        self.train_loss.push(train_loss);
        self.train_acc.push(train_acc);
        self.test_loss.push(test_loss);
        self.test_acc.push(test_acc);
    }
}

/// 5×7 glyphs, one byte per row, bit 4 = leftmost column.
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        ':' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00],
        '-' => [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        _ => [0; 7],
    }
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Draws `text` with its top-left corner at `(x, y)`, each font pixel `scale` wide.
pub fn text(area: &Area, x: i32, y: i32, s: &str, color: &RGBColor, scale: i32) -> DrawResult {
    for (i, c) in s.chars().enumerate() {
        let ox = x + i as i32 * 6 * scale;
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..5 {
                if bits & (0x10 >> col) != 0 {
                    let px = ox + col * scale;
                    let py = y + row as i32 * scale;
                    for dx in 0..scale {
                        for dy in 0..scale {
                            area.draw_pixel((px + dx, py + dy), color)?;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

pub fn text_width(s: &str, scale: i32) -> i32 {
    s.chars().count() as i32 * 6 * scale - scale
}

/// One panel: two curves (train, test) over epochs, with a frame, grid and tick labels.
fn panel(area: &Area, title: &str, train: &[f64], test: &[f64], y_max: f64, percent: bool) -> DrawResult {
    let (w, _) = area.dim_in_pixel();
    text(area, (w as i32 - text_width(title, 2)) / 2, 10, title, &BLACK, 2)?;
    let epochs = train.len().max(2) as f64;
    let mut chart = ChartBuilder::on(area)
        .margin_top(36)
        .margin_bottom(34)
        .margin_left(64)
        .margin_right(16)
        .build_cartesian_2d(1.0..epochs, 0.0..y_max)?;
    let grid = RGBColor(225, 225, 225);
    // `backend_coord` is in whole-image pixels; `area` draws relative to its own corner.
    let (bx, by) = area.get_base_pixel();
    let lc = |p: (i32, i32)| (p.0 - bx, p.1 - by);
    let ticks = 5;
    for i in 0..=ticks {
        let v = y_max * i as f64 / ticks as f64;
        chart.draw_series(LineSeries::new(vec![(1.0, v), (epochs, v)], grid))?;
        let (px, py) = lc(chart.backend_coord(&(1.0, v)));
        let label = if percent { format!("{:.0}%", 100.0 * v) } else { format!("{v:.2}") };
        text(area, px - 8 - text_width(&label, 1), py - 3, &label, &BLACK, 1)?;
    }
    let step = ((epochs / 6.0).ceil() as usize).max(1);
    for e in (1..=epochs as usize).step_by(step) {
        let (px, py) = lc(chart.backend_coord(&(e as f64, 0.0)));
        let label = e.to_string();
        text(area, px - text_width(&label, 1) / 2, py + 8, &label, &BLACK, 1)?;
    }
    let (x0, y0) = lc(chart.backend_coord(&(1.0, 0.0)));
    let (x1, y1) = lc(chart.backend_coord(&(epochs, y_max)));
    area.draw(&Rectangle::new([(x0, y1), (x1, y0)], BLACK.stroke_width(1)))?;
    let (_, h) = area.dim_in_pixel();
    text(area, (x0 + x1 - text_width("EPOCH", 1)) / 2, h as i32 - 12, "EPOCH", &BLACK, 1)?;
    let series = |v: &[f64]| v.iter().enumerate().map(|(i, &y)| (i as f64 + 1.0, y.min(y_max))).collect::<Vec<_>>();
    chart.draw_series(LineSeries::new(series(train), BLUE.stroke_width(2)))?;
    chart.draw_series(LineSeries::new(series(test), RED.stroke_width(2)))?;
    Ok(())
}

/// Writes the loss (left) and accuracy (right) curves to `path`.
pub fn draw(h: &History, path: &Path) -> DrawResult {
    let root = BitMapBackend::new(path, (1000, 440)).into_drawing_area();
    root.fill(&WHITE)?;
    let (legend, body) = root.split_vertically(30);
    text(&legend, 380, 10, "-- TRAIN", &BLUE, 2)?;
    text(&legend, 540, 10, "-- TEST", &RED, 2)?;
    let (left, right) = body.split_horizontally(500);
    let max_loss = h.train_loss.iter().chain(&h.test_loss).fold(0.0f64, |m, &v| m.max(v)).max(1e-3) * 1.05;
    panel(&left, "LOSS", &h.train_loss, &h.test_loss, max_loss, false)?;
    panel(&right, "ACCURACY", &h.train_acc, &h.test_acc, 1.0, true)?;
    root.present()?;
    Ok(())
}
