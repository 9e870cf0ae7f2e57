//! `ba`: bundle adjustment (ADBench). Observation `j` sees point `X[j mod m]` through camera
//! `cams[j mod n]` with weight `w[j]`; its reprojection error is `w·(project(cam, X) - feat)`
//! (a Rodrigues rotation, a pinhole projection, radial distortion), and each weight has the
//! error `1 - w²`.
//!
//! The Jacobian is block-sparse: each observation's two error rows depend on its camera's 11
//! parameters, its point's 3 and its weight. The tool computes the errors of a chunk of
//! observations on their parameters' 15 columns (one `[CHUNK]` vector per parameter, read
//! in place from the chunk's rows: [`reprojection_errors`]), and every block by reverse mode: one `vjp` per
//! error row, seeded with ones, gives that row's 15 partial derivatives of every
//! observation as 15 columns. Two reverse passes cost far less than forward mode's 15
//! directions, and on columns the primal and both passes are one fused element-wise loop
//! over the chunk (no `[CHUNK, 15]` tangents, no transposed copy). The tool then writes
//! the blocks into the compressed-row matrix GradBench's `BASparseMat` describes; the
//! protocol transmits the first 30 and the last entry of each of its three arrays. The
//! inputs repeat one camera, point, weight and feature (`n`, `m`, `p` times); nothing here
//! uses that: every observation is computed.
//!
//! Both functions run over the observations in chunks of [`CHUNK`]: one jitted plan of a
//! fixed size, traced once per process and shared by every input (GradBench sends all of an
//! eval's inputs to one tool process), so its native compile, started in the background by
//! the first input, serves all later ones, and its intermediates are a chunk's, not the
//! whole problem's (peak memory: the inputs and the sparse matrix).

use super::{unknown_function, Output, Run};
use crate::input::{expect_shape, f64_field, usize_field, vector};
use crate::limits::{product_at_most, Limits};
use cotangent::{
    grad, jit, native_mode, stack, vjp, vmap, wait_for_native_compiles, where_, with_native_mode, DType, NativeMode,
    Tensor,
};
use serde_json::Value;
use std::cell::RefCell;
use std::rc::Rc;

/// Parameters per camera: rotation (3), centre (3), focal length, principal point (2),
/// radial distortion (2).
pub const CAM_PARAMS: usize = 11;
/// Parameters one observation's errors depend on: its camera's, its point's 3, its weight.
const OBS_PARAMS: usize = CAM_PARAMS + 3 + 1;

/// Observations per plan call. The plans have this size whatever the input, so one trace
/// and one native compile serve every input of the eval, and their intermediates stay
/// small (memory, cache). The last chunk repeats observation 0 past the end.
pub(crate) const CHUNK: usize = 4096;

/// The problem: cameras, points, weights, features, and which camera and point each
/// observation uses, as plain row-major vectors (each chunk's rows are gathered from them).
pub struct Problem {
    /// Number of cameras.
    pub n: usize,
    /// Number of points.
    pub m: usize,
    /// Camera parameters, 11 per camera.
    pub cams: Vec<f64>,
    /// Points, 3 per point.
    pub points: Vec<f64>,
    /// Weights, one per observation.
    pub weights: Vec<f64>,
    /// Observed image points, 2 per observation.
    pub feats: Vec<f64>,
    /// The camera of each observation.
    pub cam_of: Vec<i64>,
    /// The point of each observation.
    pub point_of: Vec<i64>,
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
        let columns = CAM_PARAMS as u128 * n as u128 + 3 * m as u128 + p as u128;
        if columns.max((2 * OBS_PARAMS + 1) as u128 * p as u128) > i32::MAX as u128 {
            return Err(format!("n = {n}, m = {m}, p = {p}: the Jacobian's indices do not fit a C `int`"));
        }
        // Stored in full, as distinct data would be.
        Ok(Problem {
            n,
            m,
            cams: cam.to_vec::<f64>().repeat(n),
            points: x.to_vec::<f64>().repeat(m),
            weights: vec![w; p],
            feats: feat.to_vec::<f64>().repeat(p),
            cam_of: (0..p as i64).map(|j| j % n as i64).collect(),
            point_of: (0..p as i64).map(|j| j % m as i64).collect(),
        })
    }

    /// Number of observations.
    pub fn observations(&self) -> usize {
        self.weights.len()
    }

    /// The plans' arguments for the [`CHUNK`] observations from `start` (observation 0
    /// repeated past the end): each observation's 15 parameters `[CHUNK, 15]` (camera,
    /// point, weight) and its feature `[CHUNK, 2]`.
    fn chunk(&self, start: usize) -> Chunk {
        let p = self.observations();
        let (mut q, mut f) = (Vec::with_capacity(CHUNK * OBS_PARAMS), Vec::with_capacity(CHUNK * 2));
        for i in start..start + CHUNK {
            let j = if i < p { i } else { 0 };
            let (c, x) = (self.cam_of[j] as usize, self.point_of[j] as usize);
            q.extend_from_slice(&self.cams[c * CAM_PARAMS..(c + 1) * CAM_PARAMS]);
            q.extend_from_slice(&self.points[x * 3..x * 3 + 3]);
            q.push(self.weights[j]);
            f.extend_from_slice(&self.feats[j * 2..j * 2 + 2]);
        }
        (Tensor::from_vec(q, &[CHUNK, OBS_PARAMS]), Tensor::from_vec(f, &[CHUNK, 2]))
    }
}

/// A chunk's arguments: parameters `[CHUNK, 15]`, features `[CHUNK, 2]`.
type Chunk = (Tensor, Tensor);
/// A jitted function of a chunk, kept for the whole process.
type ChunkFn<B> = Rc<dyn Fn(&Chunk) -> B>;

/// The columns of a `[p, c]` matrix, as `[p]` vectors (views: the plans' loops read them
/// in place, with the matrix's row stride).
fn columns(x: &Tensor) -> Vec<Tensor> {
    let (p, c) = (x.shape()[0], x.shape()[1]);
    (0..c).map(|k| x.slice(&[0, k], &[p, k + 1], &[1, 1]).reshape(&[-1])).collect()
}

/// A chunk's two reprojection error columns `[CHUNK]` (not joined: the plan would spend a
/// pass on it) and its weight errors `[CHUNK]`.
fn objective_chunk((q, f): &Chunk) -> ((Tensor, Tensor), Tensor) {
    let (q, f) = (columns(q), columns(f));
    (reprojection_errors(&q, &(f[0].clone(), f[1].clone())), 1.0 - q[OBS_PARAMS - 1].square())
}

/// A chunk's Jacobian blocks as 30 columns `[CHUNK]` (error row 0's partial derivatives
/// along the 15 parameters, then row 1's), each row by one reverse pass (`vjp`, seeded with
/// ones on that row and zeros on the other: the rows of different observations do not
/// mix), and the weight errors' derivatives `[CHUNK]`.
fn jacobian_chunk((q, f): &Chunk) -> (Vec<Tensor>, Tensor) {
    // Differentiated with respect to the columns, so that each partial derivative is an
    // output of its own (with respect to `q`, they would be joined into `[CHUNK, 15]`).
    let (q, f) = (columns(q), columns(f));
    let f = (f[0].clone(), f[1].clone());
    // One linearization (the primal once), transposed twice: seeded with ones on one row
    // and zeros on the other.
    let (e, pullback) = vjp(|q: &Vec<Tensor>| reprojection_errors(q, &f), &q);
    let (ones, zeros) = (e.0.ones_like(), e.0.zeros_like());
    let row =
        |r: usize| pullback.call(&if r == 0 { (ones.clone(), zeros.clone()) } else { (zeros.clone(), ones.clone()) });
    let mut blocks = row(0);
    blocks.extend(row(1));
    let w_err = |w: &Tensor| 1.0 - w.square();
    (blocks, vmap(grad(w_err))(&q[OBS_PARAMS - 1]))
}

thread_local! {
    /// [`objective_chunk`], jitted once per process.
    static OBJECTIVE: ChunkFn<((Tensor, Tensor), Tensor)> = Rc::new(jit(objective_chunk));
    /// [`jacobian_chunk`], jitted once per process.
    static JACOBIAN: ChunkFn<(Vec<Tensor>, Tensor)> = Rc::new(jit(jacobian_chunk));
}

/// Keeps memory that is freed in the process for reuse (glibc's malloc; once per process).
/// Each chunk's plan call allocates its outputs (~1 MB for the Jacobian's 30 columns), which
/// are freed once copied; under glibc's default, adaptive thresholds the top of the heap is
/// then given back to the kernel and taken again at the next chunk, and the page faults
/// cost as much as the chunk's arithmetic (measured: ba1's Jacobian 8.9 -> 4.5 ms of CPU per
/// run). Fixed thresholds (allocations below 32 MiB from the heap, up to 256 MiB of free
/// heap kept) make the next chunk reuse the same pages. Peak memory is what the process
/// holds at once either way.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            extern "C" {
                fn mallopt(param: i32, value: i32) -> i32;
            }
            const M_TRIM_THRESHOLD: i32 = -1;
            const M_MMAP_THRESHOLD: i32 = -3;
            // SAFETY: `mallopt` only sets two of glibc's allocator parameters (taking the
            // allocator's lock); it reads and writes no memory of ours, and both values are in
            // the documented ranges (the mmap threshold at most 32 MiB on 64-bit targets).
            unsafe {
                mallopt(M_MMAP_THRESHOLD, 32 << 20);
                mallopt(M_TRIM_THRESHOLD, 256 << 20);
            }
        });
    }
}

/// Traces both chunk plans and compiles them to native code now (unless native code is
/// off), for GradBench's `define`: every evaluation then runs them natively from its first
/// call.
pub(crate) fn warm_up() {
    keep_freed_memory();
    let chunk = (Tensor::ones(&[CHUNK, OBS_PARAMS], DType::F64), Tensor::ones(&[CHUNK, 2], DType::F64));
    let (objective, jacobian) = (OBJECTIVE.with(Rc::clone), JACOBIAN.with(Rc::clone));
    let twice = || {
        for _ in 0..2 {
            objective(&chunk);
            jacobian(&chunk);
        }
    };
    match native_mode() {
        NativeMode::Off => twice(),
        _ => with_native_mode(NativeMode::Always, twice),
    }
    wait_for_native_compiles();
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

/// The two reprojection error columns of a batch of observations whose 15 parameters are
/// the columns `q` (camera 11, point 3, weight; each `[k]`) and whose observed points are
/// the columns `feat`: [`reprojection_error_of`]'s arithmetic, element-wise on columns.
///
/// ```
/// use cotangent::Tensor;
/// use gradbench_tool::evals::ba::{reprojection_error, reprojection_errors};
/// let q: Vec<f64> = vec![0.1, -0.2, 0.3, 1.0, 2.0, -3.0, 400.0, 5.0, -6.0, 1e-3, 1e-5, 0.5, -1.0, 10.0, 0.7];
/// let columns: Vec<Tensor> = q.iter().map(|&v| Tensor::from_vec(vec![v], &[1])).collect();
/// let feat = (Tensor::from_vec(vec![30.0], &[1]), Tensor::from_vec(vec![-20.0], &[1]));
/// let (ex, ey) = reprojection_errors(&columns, &feat);
/// let e = reprojection_error(&Tensor::from_vec(q, &[15]), &Tensor::from_vec(vec![30.0, -20.0], &[2]));
/// let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs();
/// assert!(close(ex.to_vec::<f64>()[0], e.to_vec::<f64>()[0]) && close(ey.to_vec::<f64>()[0], e.to_vec::<f64>()[1]));
/// ```
pub fn reprojection_errors(q: &[Tensor], feat: &(Tensor, Tensor)) -> (Tensor, Tensor) {
    assert_eq!(q.len(), OBS_PARAMS, "reprojection_errors: expected {OBS_PARAMS} parameter columns");
    let x = [&q[11] - &q[3], &q[12] - &q[4], &q[13] - &q[5]];
    let xcam = rodrigues_columns([&q[0], &q[1], &q[2]], &x);
    let (px, py) = (&xcam[0] / &xcam[2], &xcam[1] / &xcam[2]);
    let rsq = px.square() + py.square();
    let distortion = 1.0 + &q[9] * &rsq + &q[10] * &rsq * &rsq;
    let (focal, w) = (&q[6], &q[14]);
    let ex = (&px * &distortion * focal + &q[7] - &feat.0) * w;
    let ey = (&py * &distortion * focal + &q[8] - &feat.1) * w;
    (ex, ey)
}

/// `a × b` for 3-vectors held as three columns each.
fn cross_columns(a: [&Tensor; 3], b: [&Tensor; 3]) -> [Tensor; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

/// [`rodrigues`] on columns: rotates the points `x` by the angle-axis vectors `rot`.
fn rodrigues_columns(rot: [&Tensor; 3], x: &[Tensor; 3]) -> [Tensor; 3] {
    let sq = rot[0].square() + rot[1].square() + rot[2].square();
    let zero = sq.eq(0.0);
    let theta = where_(&zero, &sq.ones_like(), &sq).sqrt();
    let (cos, sin) = (theta.cos(), theta.sin());
    let axis = rot.map(|r| r / &theta);
    let axis_cross_x = cross_columns([&axis[0], &axis[1], &axis[2]], [&x[0], &x[1], &x[2]]);
    let along = (&axis[0] * &x[0] + &axis[1] * &x[1] + &axis[2] * &x[2]) * (1.0 - &cos);
    let small = cross_columns(rot, [&x[0], &x[1], &x[2]]);
    std::array::from_fn(|k| {
        let rotated = &x[k] * &cos + &axis_cross_x[k] * &sin + &axis[k] * &along;
        where_(&zero, &(&x[k] + &small[k]), &rotated)
    })
}

/// The compressed-row Jacobian as GradBench's `BASparseMat` builds it: row offsets, column
/// of each entry, value of each entry (indices as C `int`s, as there). Row `2j + r` holds
/// observation `j`'s error `r` against its camera's 11 columns, its point's 3 and its
/// weight's; rows `2p + j` the weight errors.
#[derive(Default)]
pub(crate) struct SparseJacobian {
    /// Row offsets, `3p + 1`.
    pub rows: Vec<i32>,
    /// Column of each entry.
    pub cols: Vec<i32>,
    /// Value of each entry.
    pub vals: Vec<f64>,
}

impl SparseJacobian {
    /// Rebuilds the matrix's structure for `problem` (in this matrix's storage, which
    /// successive runs reuse); its values are left for the chunks to write.
    fn rebuild(&mut self, problem: &Problem) {
        let (n, m, p) = (problem.n, problem.m, problem.observations());
        let nnz = 2 * OBS_PARAMS * p + p;
        self.rows.clear();
        self.rows.extend((0..=2 * p).map(|r| (r * OBS_PARAMS) as i32));
        self.rows.extend((1..=p).map(|j| (2 * OBS_PARAMS * p + j) as i32));
        let (point_cols, weight_cols) = ((CAM_PARAMS * n) as i32, (CAM_PARAMS * n + 3 * m) as i32);
        self.cols.clear();
        self.cols.reserve_exact(nnz);
        for j in 0..p {
            let (c, x) = (CAM_PARAMS as i32 * problem.cam_of[j] as i32, point_cols + 3 * problem.point_of[j] as i32);
            for _ in 0..2 {
                self.cols.extend((0..CAM_PARAMS as i32).map(|k| c + k));
                self.cols.extend([x, x + 1, x + 2, weight_cols + j as i32]);
            }
        }
        self.cols.extend((0..p as i32).map(|j| weight_cols + j));
        // Every value is written by the chunks (`write`): kept as they are, not zeroed first.
        self.vals.resize(nnz, 0.0);
    }

    /// Writes the values of observations `start..start + w_err.len()` from their blocks'
    /// 30 columns (row 0's 15 partial derivatives, then row 1's; each at least that long),
    /// and their weight errors' derivatives.
    fn write(&mut self, start: usize, blocks: &[&[f64]], w_err: &[f64]) {
        let (p, rows) = ((self.rows.len() - 1) / 3, w_err.len());
        let blocks: Vec<&[f64]> = blocks.iter().map(|c| &c[..rows]).collect();
        let blocks: &[&[f64]; 2 * OBS_PARAMS] = blocks.as_slice().try_into().expect("30 columns");
        let dst = &mut self.vals[2 * OBS_PARAMS * start..2 * OBS_PARAMS * (start + rows)];
        // Observation by observation: the 30 columns are read in order, the values written in order.
        for (r, block) in dst.chunks_exact_mut(2 * OBS_PARAMS).enumerate() {
            for (d, column) in block.iter_mut().zip(blocks) {
                *d = column[r];
            }
        }
        self.vals[2 * OBS_PARAMS * p + start..2 * OBS_PARAMS * p + start + rows].copy_from_slice(w_err);
    }
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

/// Runs `f` (one of the chunk plans) over every chunk of `problem`, passing each chunk's
/// first observation, how many of its rows are real, and the plan's outputs.
fn over_chunks<B>(problem: &Problem, f: &ChunkFn<B>, mut each: impl FnMut(usize, usize, &B)) {
    let p = problem.observations();
    for start in (0..p).step_by(CHUNK) {
        each(start, CHUNK.min(p - start), &f(&problem.chunk(start)));
    }
}

/// Builds `objective` or `jacobian` for input `{n, m, p, cam, x, w, feat}`.
pub fn prepare(function: &str, input: &Value, limits: &Limits) -> Result<Run, String> {
    keep_freed_memory();
    let problem = Problem::from_input(input, limits)?;
    let p = problem.observations();
    match function {
        "objective" => {
            let f = OBJECTIVE.with(Rc::clone);
            // Every error, as GradBench's objective computes them (the protocol sends the
            // first of each and the count), in storage every run reuses.
            let errors = RefCell::new((vec![0.0; 2 * p], vec![0.0; p]));
            Ok(Box::new(move || {
                let (reproj, w_err) = &mut *errors.borrow_mut();
                over_chunks(&problem, &f, |start, rows, ((ex, ey), w)| {
                    let (ex, ey) = (&elements(ex)[..rows], &elements(ey)[..rows]);
                    for (e, (x, y)) in reproj[2 * start..2 * (start + rows)].chunks_exact_mut(2).zip(ex.iter().zip(ey))
                    {
                        e.copy_from_slice(&[*x, *y]);
                    }
                    w_err[start..start + rows].copy_from_slice(&elements(w)[..rows]);
                });
                let first_two = Tensor::from_vec(reproj.iter().take(2).copied().collect::<Vec<f64>>(), &[2.min(2 * p)]);
                let first_w = Tensor::scalar(w_err.first().copied().unwrap_or(0.0));
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
            let f = JACOBIAN.with(Rc::clone);
            // The matrix's storage, reused by every run (each rebuilds it in full).
            let jac = RefCell::new(SparseJacobian::default());
            Ok(Box::new(move || {
                let mut jac = jac.borrow_mut();
                jac.rebuild(&problem);
                over_chunks(&problem, &f, |start, rows, (blocks, w)| {
                    let blocks: Vec<&[f64]> = blocks.iter().map(elements).collect();
                    jac.write(start, &blocks, &elements(w)[..rows]);
                });
                let ints = |v: &[i32]| {
                    let v: Vec<i64> = head_and_last(v).into_iter().map(i64::from).collect();
                    Tensor::from_vec(v.clone(), &[v.len()])
                };
                let vals = head_and_last(&jac.vals);
                Ok(Output::Object(vec![
                    ("rows", ints(&jac.rows).into()),
                    ("cols", ints(&jac.cols).into()),
                    ("vals", Tensor::from_vec(vals.clone(), &[vals.len()]).into()),
                ]))
            }))
        }
        _ => Err(unknown_function("ba", function, &["objective", "jacobian"])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cotangent::jacfwd;

    /// Equal to rounding: relative 1e-11 (or absolute, near zero).
    fn close(x: f64, y: f64) -> bool {
        (x - y).abs() <= 1e-11 * y.abs().max(1.0)
    }

    /// A problem of `p` observations with distinct cameras, points, weights and features.
    fn distinct(n: usize, m: usize, p: usize) -> Problem {
        let wave = |k: usize, scale: f64| (k as f64 * 0.731).sin() * scale;
        let cams = (0..n * CAM_PARAMS)
            .map(|k| match k % CAM_PARAMS {
                // Camera 0 does not rotate: Rodrigues' zero-angle branch.
                0..=2 if k < CAM_PARAMS => 0.0,
                0..=2 => wave(k, 0.5),
                3..=5 => wave(k, 2.0),
                6 => 400.0 + wave(k, 50.0),
                7 | 8 => wave(k, 5.0),
                _ => wave(k, 0.01),
            })
            .collect();
        Problem {
            n,
            m,
            cams,
            // Points in front of the cameras (z well away from the centres' 2).
            points: (0..m * 3).map(|k| if k % 3 == 2 { 10.0 + wave(k, 1.0) } else { wave(k, 3.0) }).collect(),
            weights: (0..p).map(|j| 0.5 + wave(j, 0.4)).collect(),
            feats: (0..2 * p).map(|k| wave(k, 300.0)).collect(),
            cam_of: (0..p).map(|j| ((j * 7) % n) as i64).collect(),
            point_of: (0..p).map(|j| ((j * 13) % m) as i64).collect(),
        }
    }

    /// Observation `j`'s parameters `[15]` and feature `[2]`.
    fn observation(problem: &Problem, j: usize) -> (Tensor, Tensor) {
        let (c, x) = (problem.cam_of[j] as usize, problem.point_of[j] as usize);
        let mut q = problem.cams[c * CAM_PARAMS..(c + 1) * CAM_PARAMS].to_vec();
        q.extend_from_slice(&problem.points[3 * x..3 * x + 3]);
        q.push(problem.weights[j]);
        (Tensor::from_vec(q, &[OBS_PARAMS]), Tensor::from_vec(problem.feats[2 * j..2 * j + 2].to_vec(), &[2]))
    }

    #[test]
    fn chunks_agree_with_each_observation_computed_alone() {
        // Three chunks, the last one partial: observations on both sides of each boundary.
        let p = 2 * CHUNK + 5;
        let problem = distinct(5, 9, p);
        let mut jac = SparseJacobian::default();
        jac.rebuild(&problem);
        over_chunks(&problem, &JACOBIAN.with(Rc::clone), |start, rows, (blocks, w)| {
            let blocks: Vec<&[f64]> = blocks.iter().map(elements).collect();
            jac.write(start, &blocks, &elements(w)[..rows]);
        });
        let (mut reproj, mut w_err) = (vec![f64::NAN; 2 * p], vec![f64::NAN; p]);
        over_chunks(&problem, &OBJECTIVE.with(Rc::clone), |start, rows, ((ex, ey), w)| {
            for r in 0..rows {
                reproj[2 * (start + r)] = elements(ex)[r];
                reproj[2 * (start + r) + 1] = elements(ey)[r];
            }
            w_err[start..start + rows].copy_from_slice(&elements(w)[..rows]);
        });
        assert_eq!(jac.rows.len(), 3 * p + 1);
        assert_eq!(*jac.rows.last().unwrap() as usize, jac.vals.len());
        let weight_cols = CAM_PARAMS * 5 + 3 * 9;
        for j in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK - 1, 2 * CHUNK, p - 1] {
            let (q, f) = observation(&problem, j);
            let e = reprojection_error(&q, &f).to_vec::<f64>();
            for r in 0..2 {
                assert!(
                    close(reproj[2 * j + r], e[r]),
                    "error {r} of observation {j}: {} vs {}",
                    reproj[2 * j + r],
                    e[r]
                );
            }
            let w = problem.weights[j];
            assert_eq!(w_err[j], 1.0 - w * w);
            // Forward mode on the observation alone: the same derivatives (to rounding).
            let block = jacfwd(|q: &Tensor| reprojection_error(q, &f))(&q).to_vec::<f64>();
            let at = 2 * OBS_PARAMS * j;
            for (k, (got, want)) in jac.vals[at..at + 2 * OBS_PARAMS].iter().zip(&block).enumerate() {
                assert!(close(*got, *want), "block of observation {j}, entry {k}: {got} vs {want}");
            }
            assert_eq!(jac.vals[2 * OBS_PARAMS * p + j], -2.0 * w);
            let (c, x) = (problem.cam_of[j] as i32, problem.point_of[j] as i32);
            for r in 0..2 {
                let cols = &jac.cols[at + r * OBS_PARAMS..at + (r + 1) * OBS_PARAMS];
                let want: Vec<i32> = (0..11)
                    .map(|k| 11 * c + k)
                    .chain((0..3).map(|k| 11 * 5 + 3 * x + k))
                    .chain([(weight_cols + j) as i32])
                    .collect();
                assert_eq!(cols, &want[..], "columns of row {r} of observation {j}");
            }
        }
    }
}
