//! The digits data set shipped in `data/digits.csv` (1,797 images of 8×8 pixels with 17 grey
//! levels, the label last on each line; CC BY 4.0, see `data/README.md`), loaded the same way
//! by every example that trains on it.

use cotangent::{DType, Tensor};

const CSV: &str = include_str!("../../data/digits.csv");

/// Pixels scaled to [0, 1] as `[n, 64]` in `dtype`, and labels as `[n]` i64.
pub fn load_digits(dtype: DType) -> (Tensor, Tensor) {
    let mut pixels = Vec::with_capacity(1797 * 64);
    let mut labels = Vec::with_capacity(1797);
    for (i, line) in CSV.lines().enumerate() {
        let v: Vec<f64> = line
            .split(',')
            .map(|s| s.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("data/digits.csv line {}: {e}", i + 1));
        assert_eq!(v.len(), 65, "data/digits.csv line {}: 65 values", i + 1);
        // Grey levels are integers 0..=16, so the scaled values are exact in f32 and f64.
        pixels.extend(v[..64].iter().map(|p| p / 16.0));
        labels.push(v[64] as i64);
    }
    let n = labels.len();
    (Tensor::from_vec(pixels, &[n, 64]).cast(dtype), Tensor::from_vec(labels, &[n]))
}
