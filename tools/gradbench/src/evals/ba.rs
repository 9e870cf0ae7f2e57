//! `ba`: bundle adjustment (ADBench). Observation `j` sees point `X[j mod m]` through camera
//! `cams[j mod n]` with weight `w[j]`; its reprojection error is `w·(project(cam, X) - feat)`
//! (a Rodrigues rotation, a pinhole projection, radial distortion), and each weight has the
//! error `1 - w²`.
//!
//! The Jacobian is block-sparse: each observation's two error rows depend on its camera's 11
//! parameters, its point's 3 and its weight. The tool computes every block as
//! `vmap(jacfwd(error of one observation))` over the observations — one jitted plan — and
//! assembles the compressed-row matrix GradBench's `BASparseMat` describes; the protocol
//! then transmits the first 30 and the last entry of each of its three arrays. The inputs
//! repeat one camera, point, weight and feature (`n`, `m`, `p` times); nothing here uses
//! that: every observation is computed.

use super::{unknown_function, Output, Run};
use crate::input::{expect_shape, f64_field, usize_field, vector};
use crate::limits::{product_at_most, Limits};
use cotangent::{concatenate, jacfwd, jit, stack, vmap, where_, Tensor};
use serde_json::Value;

/// Parameters per camera: rotation (3), centre (3), focal length, principal point (2),
/// radial distortion (2).
pub const CAM_PARAMS: usize = 11;
/// Parameters one observation's errors depend on: its camera's, its point's 3, its weight.
const OBS_PARAMS: usize = CAM_PARAMS + 3 + 1;

/// The problem: cameras `[n, 11]`, points `[m, 3]`, weights `[p]`, features `[p, 2]`, and
/// which camera and point each observation uses.
pub struct Problem {
    /// Camera parameters, one row per camera.
    pub cams: Tensor,
    /// Points, one row per point.
    pub points: Tensor,
    /// Weights, one per observation.
    pub weights: Tensor,
    /// Observed image points, one row per observation.
    pub feats: Tensor,
    /// The camera of each observation (`i64`).
    pub cam_of: Tensor,
    /// The point of each observation (`i64`).
    pub point_of: Tensor,
}

impl Problem {
    /// The problem GradBench's input describes: `cam`, `x`, `w` and `feat` repeated `n`, `m`,
    /// `p` and `p` times, observation `j` seeing point `j mod m` from camera `j mod n`.
    pub fn from_input(input: &Value, limits: &Limits) -> Result<Problem, String> {
        let (n, m, p) = (usize_field(input, "n")?, usize_field(input, "m")?, usize_field(input, "p")?);
        if n == 0 || m == 0 {
            return Err(format!("`n` and `m` must be positive, got n = {n}, m = {m}"));
        }
        product_at_most("`p`·31", &[p, 2 * OBS_PARAMS + 1], limits.max_elements)?;
        product_at_most("`n`·11", &[n, CAM_PARAMS], limits.max_elements)?;
        product_at_most("`m`·3", &[m, 3], limits.max_elements)?;
        let cam = vector(input, "cam")?;
        expect_shape(&cam, "cam", &[CAM_PARAMS])?;
        let x = vector(input, "x")?;
        expect_shape(&x, "x", &[3])?;
        let feat = vector(input, "feat")?;
        expect_shape(&feat, "feat", &[2])?;
        let w = f64_field(input, "w")?;
        // Stored in full, as distinct data would be (no stride-0 views).
        let repeat =
            |v: &Tensor, times: usize, width: usize| Tensor::from_vec(v.to_vec::<f64>().repeat(times), &[times, width]);
        Ok(Problem {
            cams: repeat(&cam, n, CAM_PARAMS),
            points: repeat(&x, m, 3),
            weights: Tensor::full(&[p], w, cotangent::DType::F64),
            feats: repeat(&feat, p, 2),
            cam_of: Tensor::from_vec((0..p as i64).map(|j| j % n as i64).collect(), &[p]),
            point_of: Tensor::from_vec((0..p as i64).map(|j| j % m as i64).collect(), &[p]),
        })
    }

    /// The plan's arguments: cameras, points, weights, features, and each observation's
    /// camera and point (the compiled functions take the inputs as arguments, not as
    /// captured constants, and gather each observation's parameters themselves).
    fn args(&self) -> Args {
        let t = |x: &Tensor| x.clone();
        (t(&self.cams), t(&self.points), t(&self.weights), t(&self.feats), t(&self.cam_of), t(&self.point_of))
    }
}

/// Cameras, points, weights, features, camera of each observation, point of each observation.
type Args = (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor);

/// Each observation's 15 parameters `[p, 15]`: its camera, its point, its weight.
fn observation_params((cams, points, weights, _, cam_of, point_of): &Args) -> Tensor {
    concatenate(&[cams.take(cam_of, 0), points.take(point_of, 0), weights.reshape(&[-1, 1])], 1)
}

/// Column `k` of a `[p, c]` matrix, as a `[p]` vector.
fn column(x: &Tensor, k: usize) -> Tensor {
    x.slice(&[0, k], &[x.shape()[0], k + 1], &[1, 1]).reshape(&[-1])
}

/// `a × b` for 3-vectors.
fn cross(a: &Tensor, b: &Tensor) -> Tensor {
    let (a0, a1, a2) = (a.index(0), a.index(1), a.index(2));
    let (b0, b1, b2) = (b.index(0), b.index(1), b.index(2));
    stack(&[&a1 * &b2 - &a2 * &b1, &a2 * &b0 - &a0 * &b2, &a0 * &b1 - &a1 * &b0], 0)
}

/// Rotates `x` by the angle-axis vector `rot` (Rodrigues' formula; `x + rot × x` at zero
/// angle, where the formula divides by zero: selected without differentiating through it).
fn rodrigues(rot: &Tensor, x: &Tensor) -> Tensor {
    let sq = rot.square().sum_all();
    let zero = sq.eq(0.0);
    let theta = where_(&zero, &sq.ones_like(), &sq).sqrt();
    let (cos, sin) = (theta.cos(), theta.sin());
    let axis = rot / &theta;
    let axis_cross_x = cross(&axis, x);
    let along = (&axis * x).sum_all() * (1.0 - &cos);
    let rotated = x * &cos + axis_cross_x * &sin + axis * along;
    where_(&zero.broadcast_to(&[3]), &(x + cross(rot, x)), &rotated)
}

/// The two reprojection errors of one observation with parameters `q` (`[15]`) and
/// observed point `feat` (`[2]`).
pub fn reprojection_error(q: &Tensor, feat: &Tensor) -> Tensor {
    let part = |a: usize, b: usize| q.slice(&[a], &[b], &[1]);
    reprojection_error_of(&part(0, CAM_PARAMS), &part(CAM_PARAMS, CAM_PARAMS + 3), &q.index(14), feat)
}

/// The two reprojection errors of one observation of `point` (`[3]`) by camera `cam`
/// (`[11]`) with weight `w` (`[]`) and observed point `feat` (`[2]`).
pub fn reprojection_error_of(cam: &Tensor, point: &Tensor, w: &Tensor, feat: &Tensor) -> Tensor {
    let part = |a: usize, b: usize| cam.slice(&[a], &[b], &[1]);
    let (rot, centre, focal, principal, radial) = (part(0, 3), part(3, 6), cam.index(6), part(7, 9), part(9, 11));
    let xcam = rodrigues(&rot, &(point - centre));
    let proj = xcam.slice(&[0], &[2], &[1]) / xcam.index(2);
    let rsq = proj.square().sum_all();
    let distortion = 1.0 + radial.index(0) * &rsq + radial.index(1) * &rsq * &rsq;
    let projected = proj * distortion * focal + principal;
    (projected - feat) * w
}

/// The compressed-row Jacobian as GradBench's `BASparseMat` builds it: row offsets, column
/// of each entry, value of each entry. Row `2j + r` holds observation `j`'s error `r` against
/// its camera's 11 columns, its point's 3 and its weight's; rows `2p + j` the weight errors.
pub fn sparse_jacobian(
    n: usize,
    m: usize,
    cam_of: &[i64],
    point_of: &[i64],
    blocks: &[f64],
    weights: &[f64],
) -> (Vec<i64>, Vec<i64>, Vec<f64>) {
    let p = weights.len();
    let nnz = 2 * OBS_PARAMS * p + p;
    let (mut rows, mut cols, mut vals) =
        (Vec::with_capacity(3 * p + 1), Vec::with_capacity(nnz), Vec::with_capacity(nnz));
    rows.push(0i64);
    let (point_cols, weight_cols) = ((CAM_PARAMS * n) as i64, (CAM_PARAMS * n + 3 * m) as i64);
    for j in 0..p {
        // blocks[j] is [2, 15]: row r, parameter k.
        let block = &blocks[j * 2 * OBS_PARAMS..(j + 1) * 2 * OBS_PARAMS];
        for r in 0..2 {
            rows.push(rows[rows.len() - 1] + OBS_PARAMS as i64);
            let row = &block[r * OBS_PARAMS..(r + 1) * OBS_PARAMS];
            for (k, &v) in row[..CAM_PARAMS].iter().enumerate() {
                cols.push(CAM_PARAMS as i64 * cam_of[j] + k as i64);
                vals.push(v);
            }
            for (k, &v) in row[CAM_PARAMS..CAM_PARAMS + 3].iter().enumerate() {
                cols.push(point_cols + 3 * point_of[j] + k as i64);
                vals.push(v);
            }
            cols.push(weight_cols + j as i64);
            vals.push(row[OBS_PARAMS - 1]);
        }
    }
    for (j, &w) in weights.iter().enumerate() {
        rows.push(rows[rows.len() - 1] + 1);
        cols.push(weight_cols + j as i64);
        vals.push(-2.0 * w);
    }
    (rows, cols, vals)
}

/// The first 30 entries and the last one, which is what the protocol transmits.
fn head_and_last<T: Copy>(v: &[T]) -> Vec<T> {
    let mut out: Vec<T> = v.iter().take(30).copied().collect();
    out.extend(v.last().copied());
    out
}

/// The elements of a concrete `f64` tensor, borrowed (plan outputs are contiguous).
fn elements(t: &Tensor) -> &[f64] {
    t.as_concrete().and_then(|a| a.as_slice::<f64>()).expect("a concrete, contiguous f64 tensor")
}

/// Builds `objective` or `jacobian` for input `{n, m, p, cam, x, w, feat}`.
pub fn prepare(function: &str, input: &Value, limits: &Limits) -> Result<Run, String> {
    let problem = Problem::from_input(input, limits)?;
    let p = problem.weights.shape()[0];
    let args = problem.args();
    match function {
        "objective" => {
            // The reprojection errors as two `[p]` columns (the output need not be
            // interleaved: only its first two entries are transmitted), and the weight errors.
            let errors = jit(|(cams, points, weights, feats, cam_of, point_of): &Args| {
                let error = |(c, x, w, f): &(Tensor, Tensor, Tensor, Tensor)| reprojection_error_of(c, x, w, f);
                let observations = (cams.take(cam_of, 0), points.take(point_of, 0), weights.clone(), feats.clone());
                let reproj = vmap(error)(&observations);
                (column(&reproj, 0), column(&reproj, 1), 1.0 - weights.square())
            });
            Ok(Box::new(move || {
                let (rx, ry, w_err) = errors(&args);
                let (first_two, first_w) = if p > 0 {
                    (Tensor::from_vec(vec![elements(&rx)[0], elements(&ry)[0]], &[2]), w_err.index(0))
                } else {
                    (Tensor::zeros(&[0], cotangent::DType::F64), Tensor::scalar(0.0))
                };
                Ok(Output::Object(vec![
                    (
                        "reproj_error",
                        Output::Object(vec![
                            ("elements", first_two.into()),
                            ("repeated", Tensor::scalar(p as i64).into()),
                        ]),
                    ),
                    (
                        "w_err",
                        Output::Object(vec![
                            ("element", first_w.into()),
                            ("repeated", Tensor::scalar(p as i64).into()),
                        ]),
                    ),
                ]))
            }))
        }
        "jacobian" => {
            // d(errors)/d(params) per observation, `[p, 2, 15]`.
            let blocks = jit(|a: &Args| {
                let f = |(q, f): &(Tensor, Tensor)| jacfwd(|q: &Tensor| reprojection_error(q, f))(q);
                vmap(f)(&(observation_params(a), a.3.clone()))
            });
            let (n, m) = (problem.cams.shape()[0], problem.points.shape()[0]);
            let cam_of = problem.cam_of.to_vec::<i64>();
            let point_of = problem.point_of.to_vec::<i64>();
            Ok(Box::new(move || {
                let dq = blocks(&args);
                let (rows, cols, vals) = sparse_jacobian(n, m, &cam_of, &point_of, elements(&dq), elements(&args.2));
                let ints = |v: Vec<i64>| Tensor::from_vec(v.clone(), &[v.len()]);
                let vals = head_and_last(&vals);
                Ok(Output::Object(vec![
                    ("rows", ints(head_and_last(&rows)).into()),
                    ("cols", ints(head_and_last(&cols)).into()),
                    ("vals", Tensor::from_vec(vals.clone(), &[vals.len()]).into()),
                ]))
            }))
        }
        _ => Err(unknown_function("ba", function, &["objective", "jacobian"])),
    }
}
