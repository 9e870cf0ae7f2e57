//! `ht`: hand tracking (ADBench). A skinned hand model posed by 26 angles `theta`: each
//! bone's Euler angles rotate its base transform, transforms chain from parent to child,
//! vertices are blended by their bone weights, and a global rotation, scale and translation
//! place the hand. The objective is the offset from observed points to their corresponding
//! vertices (`simple`) or to points given by barycentric coordinates `us` on corresponding
//! triangles (`complicated`, when `us` is not empty).
//!
//! The Jacobian is `d(objective)/d(us, theta)` with GradBench's layout: 3 rows per point;
//! in the complicated case two leading columns hold each point's own `[3, 2]` block (the
//! `us` part is block diagonal), then 26 columns for `theta`. The tool computes it in
//! forward mode, in one plan: the skinned vertices' tangents along each angle (one `jvp`
//! per angle, vectorised with `vmap`), then the objective's last, linear step (gathering
//! each point's vertices and combining them with weights `us`) applied to those tangents
//! with the angle as the trailing axis; the `us` columns are differences of corners.
//! Only the distinct vertices the objective reads are skinned (at most a few hundred in
//! GradBench's inputs, whatever the number of points, against the mesh's 10 000), once
//! each; each point then reads its vertices (or its triangle's corners) from them.
//! The model and observations are the plan's arguments, not captured constants.

use super::{jvp_dirs, unknown_function, Output, Run};
use crate::input::{field, kind, number, usize_field, vector};
use crate::limits::{product_at_most, Limits};
use cotangent::{
    concatenate, jit, native_mode, stack, wait_for_native_compiles, where_, with_native_mode, DType, NativeMode, Tensor,
};
use serde_json::Value;
use std::rc::Rc;

/// Angles of the pose.
const THETA: usize = 26;

/// The hand model and the observations, as tensors.
pub struct Problem {
    /// Parent of each bone (earlier in the order), or -1 for a root.
    parents: Vec<i64>,
    /// Base transform of each bone relative to its parent, `[b, 4, 4]`.
    base_relatives: Tensor,
    /// Inverse of each bone's absolute base transform, `[b, 4, 4]`.
    inverse_base_absolutes: Tensor,
    /// Homogeneous vertex positions `[v, 4]`.
    base_positions: Tensor,
    /// Bone weights of each vertex `[v, b]`.
    weights: Tensor,
    /// Observed points `[n, 3]`.
    points: Tensor,
    /// The distinct vertices the objective reads, ascending, `i64 [u]`: the only ones
    /// skinned.
    skinned: Tensor,
    /// For each point, the rows of the skinned vertices it reads: its vertex (simple, `[n]`)
    /// or its triangle's three corners (complicated, `[3n]`), `i64`.
    slots: Tensor,
    /// Where each entry of the `[b + 3, 3]` pose comes from in `theta ++ [0, 1]`.
    pose_index: Tensor,
    /// The pose angles `[26]`.
    theta: Tensor,
    /// Barycentric coordinates `[n, 2]` (complicated) or `None` (simple).
    us: Option<Tensor>,
}

/// Field `name` as an `f64` tensor of the given rank (nested JSON arrays, rectangular).
fn nested(v: &Value, name: &str, rank: usize) -> Result<Tensor, String> {
    fn walk(
        v: &Value,
        name: &str,
        depth: usize,
        rank: usize,
        shape: &mut Vec<usize>,
        out: &mut Vec<f64>,
    ) -> Result<(), String> {
        if depth == rank {
            out.push(number(v, name)?);
            return Ok(());
        }
        let items =
            v.as_array().ok_or_else(|| format!("`{name}`: expected {rank}-d nested arrays, got {}", kind(v)))?;
        match shape.get(depth) {
            None => shape.push(items.len()),
            Some(&n) if n != items.len() => {
                return Err(format!("`{name}`: rows at depth {depth} have different lengths ({n} and {})", items.len()))
            }
            Some(_) => {}
        }
        items.iter().try_for_each(|x| walk(x, name, depth + 1, rank, shape, out))
    }
    let (mut shape, mut data) = (Vec::new(), Vec::new());
    walk(field(v, name)?, name, 0, rank, &mut shape, &mut data)?;
    // An empty outer array leaves the inner extents unknown: zero.
    shape.resize(rank, 0);
    Ok(Tensor::from_vec(data, &shape))
}

/// Integers in `0..bound` (`-1` too where `allow_root`), from an `f64` tensor, naming the
/// field and the first bad entry otherwise.
fn indices(t: &Tensor, name: &str, bound: usize, allow_root: bool) -> Result<Vec<i64>, String> {
    t.to_vec::<f64>()
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let ok = x.fract() == 0.0 && ((x >= 0.0 && x < bound as f64) || (allow_root && x == -1.0));
            if ok {
                Ok(x as i64)
            } else {
                Err(format!("`{name}`[{i}] = {x} is not an index below {bound}"))
            }
        })
        .collect()
}

/// Where each entry of ADBench's pose (`to_pose_params`) comes from: an index into
/// `theta ++ [0, 1]` for a pose of `bones + 3` rows of 3.
fn pose_index(bones: usize) -> Vec<i64> {
    let (zero, one) = (THETA as i64, THETA as i64 + 1);
    let mut idx = vec![zero; (bones + 3) * 3];
    idx[0..3].copy_from_slice(&[0, 1, 2]);
    idx[3..6].fill(one);
    idx[6..9].copy_from_slice(&[3, 4, 5]);
    let (mut t, mut row) = (6i64, 5usize);
    for _finger in 0..5 {
        for joint in 1..=3 {
            if row < bones + 3 {
                idx[row * 3] = t;
            }
            t += 1;
            if joint == 1 {
                if row < bones + 3 {
                    idx[row * 3 + 1] = t;
                }
                t += 1;
            }
            row += 1;
        }
        row += 1;
    }
    idx
}

impl Problem {
    /// Parses `{theta, data: {model, correspondences, points}, us}`.
    pub fn from_input(input: &Value, limits: &Limits) -> Result<Problem, String> {
        let theta = vector(input, "theta")?;
        if theta.shape() != [THETA] {
            return Err(format!("`theta`: expected {THETA} angles, got {}", theta.shape()[0]));
        }
        let data = field(input, "data")?;
        let model = field(data, "model")?;
        let bones = usize_field(model, "bone_count")?;
        if bones < 3 + 5 * 4 - 3 {
            return Err(format!("`bone_count`: the hand's pose needs at least 20 bones, got {bones}"));
        }
        let base_relatives = nested(model, "base_relatives", 3)?;
        let inverse_base_absolutes = nested(model, "inverse_base_absolutes", 3)?;
        for (t, name) in [(&base_relatives, "base_relatives"), (&inverse_base_absolutes, "inverse_base_absolutes")] {
            if t.shape() != [bones, 4, 4] {
                return Err(format!("`{name}`: expected [{bones}, 4, 4], got {:?}", t.shape()));
            }
        }
        let base_positions = nested(model, "base_positions", 2)?;
        let verts = base_positions.shape()[0];
        if base_positions.shape()[1] != 4 {
            return Err(format!("`base_positions`: expected [v, 4], got {:?}", base_positions.shape()));
        }
        product_at_most("vertices·`bone_count`", &[verts, bones], limits.max_elements)?;
        let weights = nested(model, "weights", 2)?;
        if weights.shape() != [verts, bones] {
            return Err(format!("`weights`: expected [{verts}, {bones}], got {:?}", weights.shape()));
        }
        let parents = indices(&nested(model, "parents", 1)?, "parents", bones, true)?;
        if let Some((i, &p)) = parents.iter().enumerate().find(|(i, &p)| p >= *i as i64) {
            return Err(format!("`parents`[{i}] = {p}: a bone's parent must come before it"));
        }
        let triangles_f = nested(model, "triangles", 2)?;
        let tris = triangles_f.shape()[0];
        let triangles = Tensor::from_vec(indices(&triangles_f, "triangles", verts, false)?, &[tris, 3]);
        let points = nested(data, "points", 2)?;
        let n = points.shape()[0];
        if n > 0 && points.shape()[1] != 3 {
            return Err(format!("`points`: expected [n, 3], got {:?}", points.shape()));
        }
        product_at_most("points·28·3", &[n, 3 * (THETA + 2)], limits.max_elements)?;
        let us = nested(input, "us", 2)?;
        let complicated = us.numel() > 0;
        if complicated && us.shape() != [n, 2] {
            return Err(format!("`us`: expected [{n}, 2], got {:?}", us.shape()));
        }
        let targets = if complicated { tris } else { verts };
        let corr = indices(&vector(data, "correspondences")?, "correspondences", targets, false)?;
        if corr.len() != n {
            return Err(format!("`correspondences`: expected {n} entries, got {}", corr.len()));
        }
        // The vertices each point reads, then the distinct ones and where each read finds its
        // vertex among them.
        let tri = triangles.to_vec::<i64>();
        let read: Vec<i64> = if complicated {
            corr.iter().flat_map(|&t| tri[3 * t as usize..3 * t as usize + 3].to_vec()).collect()
        } else {
            corr
        };
        let mut skinned = read.clone();
        skinned.sort_unstable();
        skinned.dedup();
        let slots: Vec<i64> = read.iter().map(|v| skinned.binary_search(v).expect("a read vertex") as i64).collect();
        Ok(Problem {
            parents,
            base_relatives,
            inverse_base_absolutes,
            base_positions,
            weights,
            points,
            skinned: Tensor::from_vec(skinned.clone(), &[skinned.len()]),
            slots: Tensor::from_vec(slots.clone(), &[slots.len()]),
            pose_index: Tensor::from_vec(pose_index(bones), &[bones + 3, 3]),
            theta,
            us: complicated.then_some(us),
        })
    }

    /// The model and observation tensors, in the order [`Problem::with_data`] takes them: the
    /// compiled functions take them as arguments rather than as captured constants.
    fn data(&self) -> Vec<Tensor> {
        [
            &self.base_relatives,
            &self.inverse_base_absolutes,
            &self.base_positions,
            &self.weights,
            &self.points,
            &self.skinned,
            &self.slots,
            &self.pose_index,
        ]
        .map(Tensor::clone)
        .to_vec()
    }

    /// This problem with its model and observation tensors replaced by `data` (as
    /// [`Problem::data`] orders them): inside `jit`, the plan's arguments.
    fn with_data(&self, data: &[Tensor]) -> Problem {
        Problem {
            parents: self.parents.clone(),
            base_relatives: data[0].clone(),
            inverse_base_absolutes: data[1].clone(),
            base_positions: data[2].clone(),
            weights: data[3].clone(),
            points: data[4].clone(),
            skinned: data[5].clone(),
            slots: data[6].clone(),
            pose_index: data[7].clone(),
            theta: self.theta.clone(),
            us: self.us.clone(),
        }
    }

    /// The skinned, globally placed positions `[u, 3]` of the vertices the objective reads,
    /// for the pose angles.
    fn vertices(&self, theta: &Tensor) -> Tensor {
        let extended = concatenate(&[theta.clone(), Tensor::from_vec(vec![0.0, 1.0], &[2])], 0);
        let pose = extended.take(&self.pose_index.reshape(&[-1]), 0).reshape(&[-1, 3]);
        let bones = self.parents.len();
        let angles = pose.slice(&[3, 0], &[bones + 3, 3], &[1, 1]);
        let relatives = self.base_relatives.matmul(&homogeneous(&euler_rotations(&angles)));
        // Absolute transforms, parent before child (a short chain: one 4×4 product per bone).
        let mut absolutes: Vec<Tensor> = Vec::with_capacity(bones);
        for (i, &p) in self.parents.iter().enumerate() {
            let r = relatives.index(i as isize);
            absolutes.push(if p < 0 { r } else { absolutes[p as usize].matmul(&r) });
        }
        let transforms = stack(&absolutes, 0).matmul(&self.inverse_base_absolutes);
        let (weights, base_positions) =
            (self.weights.take(&self.skinned, 0), self.base_positions.take(&self.skinned, 0));
        // Each vertex: its bones' transforms blended by its weights (one product, [v, b] by
        // [b, 12]: the top three rows suffice), then applied to it.
        let top = transforms.slice(&[0, 0, 0], &[bones, 3, 4], &[1, 1, 1]).reshape(&[bones as isize, 12]);
        let verts = base_positions.shape()[0] as isize;
        let blended = weights.matmul(&top).reshape(&[verts, 3, 4]);
        let positions = (blended * base_positions.reshape(&[verts, 1, 4])).sum(&[2], false);
        let rotation = angle_axis_rotation(&pose.index(0)) * pose.index(1).reshape(&[1, 3]);
        positions.matmul(&rotation.t()) + pose.index(2).reshape(&[1, 3])
    }

    /// The objective `[3n]`: observed points minus their model points.
    fn objective(&self, us: Option<&Tensor>, theta: &Tensor) -> Tensor {
        let read = self.vertices(theta).take(&self.slots, 0);
        let model_points = match us {
            None => read,
            Some(us) => {
                let n = us.shape()[0];
                // The corners of each point's triangle, [n, 3 (corner), 3].
                let corners = read.reshape(&[n as isize, 3, 3]);
                let corner = |k: usize| corners.slice(&[0, k, 0], &[n, k + 1, 3], &[1, 1, 1]).reshape(&[n as isize, 3]);
                let (u0, u1) = (us.slice(&[0, 0], &[n, 1], &[1, 1]), us.slice(&[0, 1], &[n, 2], &[1, 1]));
                &u0 * corner(0) + &u1 * corner(1) + (1.0 - &u0 - &u1) * corner(2)
            }
        };
        (&self.points - model_points).reshape(&[-1])
    }

    /// Each skinned vertex's row of the complicated Jacobian's table, `[u', 3, 28]`: its
    /// position twice (the `us` columns' factors), then its tangents along the 26 angles
    /// (forward mode: `jvp` per angle, vectorised), with zero rows appended up to a multiple
    /// of [`TABLE_ROWS`] (so inputs share one [`combine_chunk`] plan).
    fn table(&self, theta: &Tensor) -> Tensor {
        let skin = |theta: &Tensor| self.vertices(theta);
        let (v, dv) = jvp_dirs(skin, theta, &Tensor::eye(THETA, DType::F64)); // [u, 3], [26, u, 3]
        let position = v.reshape(&[-1, 3, 1]);
        let table = concatenate(&[position.clone(), position, dv.permute(&[1, 2, 0])], 2);
        let u = table.shape()[0];
        table.pad(&[0, 0, 0], &[(table_rows(u) - u) as i64, 0, 0], &[0, 0, 0], 0.0)
    }

    /// The Jacobian `[3n, 2 + 26]` (complicated) or `[3n, 26]` (simple) of the objective, in
    /// one plan (the tool runs the complicated one as [`Problem::table`] and chunks of
    /// [`combine_chunk`], which give the same numbers).
    ///
    /// Forward mode along the 26 angles gives the skinned vertices' tangents; the objective
    /// is linear in the vertices (a gather, and a barycentric combination with weights `us`),
    /// so that last step is applied to the tangents directly, with the directions as the
    /// trailing axis: the result is already in GradBench's layout.
    #[cfg(test)]
    fn jacobian(&self, us: Option<&Tensor>, theta: &Tensor) -> Tensor {
        let n = self.points.shape()[0] as isize;
        let Some(us) = us else {
            return self.simple_jacobian(theta);
        };
        combine_chunk(&(self.table(theta), self.slots.clone(), us.clone())).reshape(&[3 * n, (THETA + 2) as isize])
    }

    /// The simple variant's Jacobian `[3n, 26]`: minus each point's vertex's tangents.
    fn simple_jacobian(&self, theta: &Tensor) -> Tensor {
        let n = self.points.shape()[0] as isize;
        let skin = |theta: &Tensor| self.vertices(theta);
        let (_, dv) = jvp_dirs(skin, theta, &Tensor::eye(THETA, DType::F64)); // [26, u, 3]
                                                                              // Rows of 3 gathered along the vertex axis, then read transposed.
        (-dv.take(&self.slots, 1).permute(&[1, 2, 0])).reshape(&[3 * n, THETA as isize])
    }
}

/// The complicated Jacobian's table has a multiple of this many rows (zero rows appended
/// after skinning, so they cost a copy, not a skinning): GradBench's inputs read at most
/// 544 distinct vertices, so they all share one [`combine_chunk`] plan.
const TABLE_ROWS: usize = 1024;

/// `u` rounded up to a multiple of [`TABLE_ROWS`].
fn table_rows(u: usize) -> usize {
    u.div_ceil(TABLE_ROWS).max(1) * TABLE_ROWS
}

/// Points per [`combine_chunk`] call: its gathered corners (`[POINTS, 3, 3, 28]`, 1.5 MiB)
/// stay in cache, and the plan, of one size, is traced and compiled once per process.
pub(crate) const POINTS: usize = 768;

/// The complicated Jacobian's rows `[c, 3, 28]` of `c` points from the vertex table
/// `[u', 3, 28]` ([`Problem::table`]), the points' corner rows in it (`i64 [3c]`) and their
/// barycentric coordinates `us` (`[c, 2]`). Each of a point's corners enters every column
/// with its own weight (`a + u·b` below): -1 / +1 in the two `us` columns (the objective's
/// derivative in `us` is corner 2 minus corner 0 or 1), minus its barycentric coordinate in
/// the angle columns (the linear combination applied to the tangents).
pub(crate) fn combine_chunk((table, slots, us): &(Tensor, Tensor, Tensor)) -> Tensor {
    let (n, cols) = (us.shape()[0], THETA + 2);
    let corners = table.take(slots, 0).reshape(&[n as isize, 3, 3, cols as isize]); // [n, corner, xyz, column]
    let corner = |k: usize| {
        corners.slice(&[0, k, 0, 0], &[n, k + 1, 3, cols], &[1, 1, 1, 1]).reshape(&[n as isize, 3, cols as isize])
    };
    let u = |k: usize| us.slice(&[0, k], &[n, k + 1], &[1, 1]).reshape(&[n as isize, 1, 1]);
    let (u0, u1) = (u(0), u(1));
    let u2 = 1.0 - &u0 - &u1;
    let row = |first: [f64; 2], rest: f64| {
        let mut r = vec![rest; cols];
        r[..2].copy_from_slice(&first);
        Tensor::from_vec(r, &[1, 1, cols])
    };
    let (b, a0, a1, a2) = (row([0.0, 0.0], -1.0), row([-1.0, 0.0], 0.0), row([0.0, -1.0], 0.0), row([1.0, 1.0], 0.0));
    (a0 + &u0 * &b) * corner(0) + (a1 + &u1 * &b) * corner(1) + (a2 + &u2 * &b) * corner(2)
}

/// A chunk's table, corner rows and `us`.
type CombineArgs = (Tensor, Tensor, Tensor);

thread_local! {
    /// [`combine_chunk`], jitted once per process.
    static COMBINE: Rc<dyn Fn(&CombineArgs) -> Tensor> = Rc::new(jit(combine_chunk));
}

/// Traces [`combine_chunk`]'s plan and compiles it to native code now (unless native code
/// is off), for GradBench's `define`, at the table size of GradBench's inputs.
pub(crate) fn warm_up() {
    let chunk = (
        Tensor::ones(&[TABLE_ROWS, 3, THETA + 2], DType::F64),
        Tensor::zeros(&[3 * POINTS], DType::I64),
        Tensor::zeros(&[POINTS, 2], DType::F64),
    );
    let combine = COMBINE.with(Rc::clone);
    let twice = || {
        combine(&chunk);
        combine(&chunk);
    };
    match native_mode() {
        NativeMode::Off => twice(),
        _ => with_native_mode(NativeMode::Always, twice),
    }
    wait_for_native_compiles();
}

/// Rotation matrices `[b, 3, 3]` from ADBench's Euler angles (stored x, z, y): `Rz·Ry·Rx`.
fn euler_rotations(angles: &Tensor) -> Tensor {
    let b = angles.shape()[0];
    let col = |k: usize| angles.slice(&[0, k], &[b, k + 1], &[1, 1]).reshape(&[-1]);
    let (tx, tz, ty) = (col(0), col(1), col(2));
    let (zero, one) = (tx.zeros_like(), tx.ones_like());
    let m = |rows: [[&Tensor; 3]; 3]| stack(&rows.map(|r| stack(&r.map(|x| x.clone()), 1)), 1);
    let (cx, sx, cy, sy, cz, sz) = (tx.cos(), tx.sin(), ty.cos(), ty.sin(), tz.cos(), tz.sin());
    let rx = m([[&one, &zero, &zero], [&zero, &cx, &(-&sx)], [&zero, &sx, &cx]]);
    let ry = m([[&cy, &zero, &(-&sy)], [&zero, &one, &zero], [&sy, &zero, &cy]]);
    let rz = m([[&cz, &(-&sz), &zero], [&sz, &cz, &zero], [&zero, &zero, &one]]);
    rz.matmul(&ry).matmul(&rx)
}

/// `[b, 3, 3]` rotations as `[b, 4, 4]` transforms without translation.
fn homogeneous(r: &Tensor) -> Tensor {
    r.pad(&[0, 0, 0], &[0, 1, 1], &[0, 0, 0], 0.0)
        + Tensor::from_vec((0..16).map(|i| if i == 15 { 1.0 } else { 0.0 }).collect(), &[1, 4, 4])
}

/// The rotation by angle-axis vector `a` (the identity below an angle of 1e-4, as ADBench).
fn angle_axis_rotation(a: &Tensor) -> Tensor {
    let n = a.square().sum_all().sqrt();
    let small = n.lt(1e-4);
    let safe = where_(&small, &n.ones_like(), &n);
    let k = a / &safe;
    let (x, y, z) = (k.index(0), k.index(1), k.index(2));
    let (s, c) = (safe.sin(), safe.cos());
    let oc = 1.0 - &c;
    let r = stack(
        &[
            stack(&[&x * &x + (1.0 - &x * &x) * &c, &x * &y * &oc - &z * &s, &x * &z * &oc + &y * &s], 0),
            stack(&[&x * &y * &oc + &z * &s, &y * &y + (1.0 - &y * &y) * &c, &y * &z * &oc - &x * &s], 0),
            stack(&[&x * &z * &oc - &y * &s, &z * &y * &oc + &x * &s, &z * &z + (1.0 - &z * &z) * &c], 0),
        ],
        0,
    );
    where_(&small.broadcast_to(&[3, 3]), &Tensor::eye(3, DType::F64), &r)
}

/// Builds `objective` or `jacobian` for input `{theta, data, us}`.
pub fn prepare(function: &str, input: &Value, limits: &Limits) -> Result<Run, String> {
    let problem = Problem::from_input(input, limits)?;
    let us = problem.us.clone().unwrap_or_else(|| Tensor::zeros(&[0, 2], DType::F64));
    let theta = problem.theta.clone();
    let data = problem.data();
    match function {
        "objective" => {
            let f = jit(move |((us, theta), data): &((Tensor, Tensor), Vec<Tensor>)| {
                let p = problem.with_data(data);
                p.objective(p.us.as_ref().map(|_| us), theta)
            });
            let args = ((us, theta), data);
            Ok(Box::new(move || Ok(Output::from(f(&args)))))
        }
        "jacobian" if problem.us.is_none() => {
            let f = jit(move |(theta, data): &(Tensor, Vec<Tensor>)| problem.with_data(data).simple_jacobian(theta));
            let args = (theta, data);
            Ok(Box::new(move || Ok(Output::from(f(&args)))))
        }
        "jacobian" => {
            // The vertex table in one plan, then the points in chunks of `POINTS` (the last
            // one padded with corner row 0 and zero `us`).
            let (n, cols) = (problem.points.shape()[0], THETA + 2);
            let (slots, us) = (problem.slots.to_vec::<i64>(), us.to_vec::<f64>());
            let table = jit(move |(theta, data): &(Tensor, Vec<Tensor>)| problem.with_data(data).table(theta));
            let combine = COMBINE.with(Rc::clone);
            let args = (theta, data);
            Ok(Box::new(move || {
                let table = table(&args);
                let mut out = Vec::with_capacity(3 * n * cols);
                for start in (0..n).step_by(POINTS) {
                    let rows = POINTS.min(n - start);
                    let mut s = slots[3 * start..3 * (start + rows)].to_vec();
                    s.resize(3 * POINTS, 0);
                    let mut u = us[2 * start..2 * (start + rows)].to_vec();
                    u.resize(2 * POINTS, 0.0);
                    let chunk = (table.clone(), Tensor::from_vec(s, &[3 * POINTS]), Tensor::from_vec(u, &[POINTS, 2]));
                    let jac = combine(&chunk);
                    let values = jac.as_concrete().and_then(|a| a.as_slice::<f64>()).expect("a contiguous f64 result");
                    out.extend_from_slice(&values[..3 * rows * cols]);
                }
                Ok(Output::from(Tensor::from_vec(out, &[3 * n, cols])))
            }))
        }
        _ => Err(unknown_function("ht", function, &["objective", "jacobian"])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The complicated fixture with its points repeated past two chunks of [`POINTS`], each
    /// copy's barycentric coordinates shifted so the rows differ.
    fn many_points() -> Value {
        let fixture: Value = serde_json::from_str(include_str!("../../tests/data/ht_fixture.json")).unwrap();
        let mut input = fixture["complicated"]["input"].clone();
        let copies = 2 * POINTS / input["us"].as_array().unwrap().len() + 2;
        for field in ["points", "correspondences"] {
            let items = input["data"][field].as_array().unwrap().clone();
            input["data"][field] = Value::Array((0..copies).flat_map(|_| items.clone()).collect());
        }
        let us = input["us"].as_array().unwrap().clone();
        input["us"] = Value::Array(
            (0..copies)
                .flat_map(|c| {
                    us.iter().map(move |u| {
                        let (a, b) = (u[0].as_f64().unwrap(), u[1].as_f64().unwrap());
                        serde_json::json!([a * (1.0 - 0.01 * c as f64), b + 0.001 * c as f64])
                    })
                })
                .collect(),
        );
        input
    }

    #[test]
    fn chunked_jacobian_equals_the_one_plan_jacobian() {
        let input = many_points();
        let problem = Problem::from_input(&input, &Limits::default()).unwrap();
        let n = problem.points.shape()[0];
        assert!(n > 2 * POINTS && !n.is_multiple_of(POINTS), "{n} points: chunks, the last one partial");
        let want = problem.jacobian(problem.us.as_ref(), &problem.theta).to_vec::<f64>();
        let Output::Tensor(got) = prepare("jacobian", &input, &Limits::default()).unwrap()().unwrap() else {
            panic!("the Jacobian is a tensor")
        };
        assert_eq!(got.shape(), [3 * n, THETA + 2]);
        let got = got.to_vec::<f64>();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 1e-12 * w.abs().max(1.0), "entry {i} (row {}): {g} vs {w}", i / (THETA + 2));
        }
        // The repeated points differ only in `us`: their `us` columns agree, their angle
        // columns do not.
        let row = |p: usize, x: usize| &got[(3 * p + x) * (THETA + 2)..(3 * p + x + 1) * (THETA + 2)];
        let copy = n - 12;
        assert_eq!(row(0, 0)[..2], row(copy, 0)[..2]);
        assert_ne!(row(0, 0)[2..], row(copy, 0)[2..]);
    }
}
