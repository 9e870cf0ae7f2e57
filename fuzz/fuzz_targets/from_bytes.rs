//! Fuzzes the checkpoint loader: `cotangent::io::from_bytes` returns `Ok` or
//! `Err` for any bytes, never panics, and allocates no more than the file implies.
#![no_main]

use cotangent::{io, Tensor};
use libfuzzer_sys::fuzz_target;

/// The tree the seeds were written from (`fuzz/corpus/from_bytes/valid`); keep it
/// equal to `checkpoint_template` in `tools/gradbench/tests/fuzz_corpus.rs`.
fn template() -> Vec<Tensor> {
    vec![
        Tensor::from_vec(vec![0.0f32; 4], &[2, 2]),
        Tensor::from_vec(vec![0.0f64; 3], &[3]),
        Tensor::scalar(0i64),
        Tensor::from_vec(vec![0i32; 2], &[2]),
        Tensor::from_vec(vec![false; 2], &[2]),
    ]
}

fuzz_target!(|data: &[u8]| {
    if let Ok(tree) = io::from_bytes(&template(), data) {
        // Whatever loads has the template's structure.
        let shapes: Vec<Vec<usize>> = tree.iter().map(|t| t.shape()).collect();
        let expected: Vec<Vec<usize>> = template().iter().map(|t| t.shape()).collect();
        assert_eq!(shapes, expected);
    }
});
