//! `COTANGENT_PROFILE=1`: plans time their steps. (Its own test binary: it sets the
//! variable before any plan exists.)

use cotangent::compile::{optimize, Plan};
use cotangent::*;

#[test]
fn plans_report_where_their_time_goes() {
    // SAFETY: the only test in this process, and it sets the variable before anything reads it.
    unsafe { std::env::set_var("COTANGENT_PROFILE", "1") };
    let g = trace_graph(&[TensorType::new(DType::F64, vec![64, 64])], |xs| vec![xs[0].exp().matmul(&xs[0]).tanh()]);
    let plan = Plan::new(&optimize(&g));
    assert!(plan.profile_report().is_none(), "no runs yet");
    let x = Tensor::ones(&[64, 64], DType::F64);
    for _ in 0..3 {
        plan.run(std::slice::from_ref(&x));
    }
    let report = plan.profile_report().expect("profiling is on");
    assert!(report.contains("3 steps, 3 runs"), "{report}");
    assert!(report.contains("dot_general") && report.contains("fused"), "{report}");
}
