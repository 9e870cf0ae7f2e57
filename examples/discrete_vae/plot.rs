//! The two loss curves as a PNG, drawn with plotters' bitmap backend and the small pixel
//! font of the digits example (no font library needed).

use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

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
fn text(area: &Area, x: i32, y: i32, s: &str, color: &RGBColor, scale: i32) -> DrawResult {
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

fn text_width(s: &str, scale: i32) -> i32 {
    s.chars().count() as i32 * 6 * scale - scale
}

/// Negative ELBO per epoch for ReinMax (blue) and straight-through (red).
pub fn draw(reinmax: &[f64], st: &[f64], path: &Path) -> DrawResult {
    let root = BitMapBackend::new(path, (640, 440)).into_drawing_area();
    root.fill(&WHITE)?;
    let (legend, area) = root.split_vertically(30);
    text(&legend, 170, 10, "-- REINMAX", &BLUE, 2)?;
    text(&legend, 360, 10, "-- ST", &RED, 2)?;
    let title = "NEGATIVE ELBO (NATS)";
    let (w, h) = area.dim_in_pixel();
    text(&area, (w as i32 - text_width(title, 2)) / 2, 10, title, &BLACK, 2)?;
    let epochs = reinmax.len().max(st.len()).max(2) as f64;
    let all = || reinmax.iter().chain(st);
    let y_max = all().fold(0.0f64, |m, &v| m.max(v)) * 1.02;
    let y_min = all().fold(f64::INFINITY, |m, &v| m.min(v)) * 0.98;
    let mut chart = ChartBuilder::on(&area)
        .margin_top(36)
        .margin_bottom(34)
        .margin_left(64)
        .margin_right(16)
        .build_cartesian_2d(1.0..epochs, y_min..y_max)?;
    let grid = RGBColor(225, 225, 225);
    let (bx, by) = area.get_base_pixel();
    let lc = |p: (i32, i32)| (p.0 - bx, p.1 - by);
    for i in 0..=5 {
        let v = y_min + (y_max - y_min) * i as f64 / 5.0;
        chart.draw_series(LineSeries::new(vec![(1.0, v), (epochs, v)], grid))?;
        let (px, py) = lc(chart.backend_coord(&(1.0, v)));
        let label = format!("{v:.1}");
        text(&area, px - 8 - text_width(&label, 1), py - 3, &label, &BLACK, 1)?;
    }
    let step = ((epochs / 6.0).ceil() as usize).max(1);
    for e in (1..=epochs as usize).step_by(step) {
        let (px, py) = lc(chart.backend_coord(&(e as f64, y_min)));
        let label = e.to_string();
        text(&area, px - text_width(&label, 1) / 2, py + 8, &label, &BLACK, 1)?;
    }
    let (x0, y0) = lc(chart.backend_coord(&(1.0, y_min)));
    let (x1, y1) = lc(chart.backend_coord(&(epochs, y_max)));
    area.draw(&Rectangle::new([(x0, y1), (x1, y0)], BLACK.stroke_width(1)))?;
    text(&area, (x0 + x1 - text_width("EPOCH", 1)) / 2, h as i32 - 12, "EPOCH", &BLACK, 1)?;
    let series = |v: &[f64]| v.iter().enumerate().map(|(i, &y)| (i as f64 + 1.0, y)).collect::<Vec<_>>();
    chart.draw_series(LineSeries::new(series(reinmax), BLUE.stroke_width(2)))?;
    chart.draw_series(LineSeries::new(series(st), RED.stroke_width(2)))?;
    root.present()?;
    Ok(())
}
