//! Where the C compiler cannot build kernels, plans run interpreted with the same results.
//! (Its own test binary: it points `COTANGENT_CC` at a "compiler" that answers `--version`
//! but builds nothing, before anything reads the variable.)

use cotangent::*;

#[test]
fn a_broken_compiler_leaves_plans_interpreted_and_right() {
    // SAFETY: the only test in this process, and it sets the variables before anything reads them.
    unsafe {
        std::env::set_var("COTANGENT_CC", "true");
        std::env::set_var("COTANGENT_CACHE_DIR", std::env::temp_dir().join("cotangent-fallback-test"));
    }
    let x = Tensor::from_vec((0..10_000).map(|i| i as f64 * 1e-3).collect::<Vec<_>>(), &[10_000]);
    let f = |x: &Tensor| (x.sin() * x + 1.0).sum_all();
    let expected = f(&x).item::<f64>();
    with_native_mode(NativeMode::Always, || {
        let g = jit(f);
        for _ in 0..3 {
            // Fused reductions add in lanes, eager ones in order: equal to rounding.
            let got = g(&x).item::<f64>();
            assert!((got - expected).abs() <= 1e-12 * expected.abs(), "{got} vs {expected}");
        }
        let plan = jit_inspect(f, &x).plan;
        assert!(plan.contains("fused") && !plan.contains("native"), "{plan}");
    });
}
