//! The continuous adjoint (Chen et al. 2018): one interval as a `custom_vjp` whose backward
//! pass integrates the augmented state `(y, a, g)` backward in time.

use super::step::{interval, Field};
use super::{Options, Solver};
use crate::control::custom_vjp;
use crate::{vjp, Tensor, Tree};

/// One interval as a [`custom_vjp`](crate::control::custom_vjp) whose backward pass integrates the adjoint ODE.
#[allow(clippy::too_many_arguments)]
pub(super) fn adjoint_interval<Y: Tree, P: Tree>(
    f: &impl Fn(&Tensor, &Y, &P) -> Y,
    solver: Solver,
    sign: f64,
    a: f64,
    b: f64,
    like: &Y,
    y: Vec<Tensor>,
    args: &P,
    opts: &Options,
) -> (Vec<Tensor>, [Tensor; 4]) {
    let ny = y.len();
    let np = args.leaves().len();
    // Leaves (y, args) -> (y1, stats): the forward solve.
    let forward = |x: &Vec<Tensor>| -> Vec<Tensor> {
        let (yl, pl) = x.split_at(ny);
        let p = args.rebuild_from(pl.to_vec());
        let fl = |t: &Tensor, y: &[Tensor]| f(t, &like.rebuild_from(y.to_vec()), &p).leaves();
        let (y1, st) = interval(solver, &Field { f: &fl, sign }, a, b, yl.to_vec(), opts);
        let mut out = y1;
        out.extend(st);
        out
    };
    let fwd = |x: &Vec<Tensor>| {
        let out = forward(x);
        let mut res: Vec<Tensor> = out[..ny].to_vec();
        res.extend(x[ny..].iter().cloned());
        (out, res)
    };
    let bwd = |res: &Vec<Tensor>, ct: &Vec<Tensor>| -> Vec<Tensor> {
        let (y1, pl) = res.split_at(ny);
        let p_leaves = pl.to_vec();
        // Augmented state (y, a, g) integrated in the reversed variable u = -s from -b to -a:
        // d/du (y, a, g) = (-f, aᵀ∂f/∂y, aᵀ∂f/∂p) with f in the forward variable s.
        let aug = |u: &Tensor, z: &[Tensor]| -> Vec<Tensor> {
            // f is evaluated at the forward time t = sign·s = -sign·u.
            let t = &-(u * sign);
            let (yz, rest) = z.split_at(ny);
            let az = &rest[..ny];
            let fy = |x: &Vec<Tensor>| {
                let (yy, pp) = x.split_at(ny);
                f(t, &like.rebuild_from(yy.to_vec()), &args.rebuild_from(pp.to_vec())).leaves()
            };
            let mut primal = yz.to_vec();
            primal.extend(p_leaves.iter().cloned());
            let (fv, pb) = vjp(fy, &primal);
            let cts = pb.call(&az.to_vec());
            // In the forward variable s (t = sign·s): dy/ds = sign·f.
            let mut out: Vec<Tensor> = fv.iter().map(|v| -(v * sign)).collect();
            out.extend(cts.iter().map(|c| c * sign));
            out
        };
        let mut z0: Vec<Tensor> = y1.to_vec();
        z0.extend(ct[..ny].iter().cloned());
        z0.extend(p_leaves.iter().map(Tensor::zeros_like));
        let mut o = *opts;
        o.dt0 = o.dt0.map(f64::abs);
        let (z, _) = interval(solver, &Field { f: &aug, sign: 1.0 }, -b, -a, z0, &o);
        let mut out = z[ny..2 * ny].to_vec();
        out.extend(z[2 * ny..2 * ny + np].iter().cloned());
        out
    };
    let g = custom_vjp(forward, fwd, bwd);
    let mut x = y;
    x.extend(args.leaves());
    let mut out = g(&x);
    let st = out.split_off(ny);
    (out, [st[0].clone(), st[1].clone(), st[2].clone(), st[3].clone()])
}
