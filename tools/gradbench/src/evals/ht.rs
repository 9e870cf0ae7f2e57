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
use cotangent::{concatenate, jit, stack, where_, DType, Tensor};
use serde_json::Value;

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

    /// The Jacobian `[3n, 2 + 26]` (complicated) or `[3n, 26]` (simple) of the objective.
    ///
    /// Forward mode along the 26 angles (`jvp` per angle, vectorised) gives the skinned
    /// vertices and their tangents; the objective is linear in those (a gather, and a
    /// barycentric combination with weights `us`), so that last step is applied to the
    /// tangents directly, with the directions as the trailing axis: the rows gathered per
    /// point are contiguous and the result is already in GradBench's layout. The `us`
    /// columns are the corners' differences (the objective's derivative in `us`).
    fn jacobian(&self, us: Option<&Tensor>, theta: &Tensor) -> Tensor {
        let n = self.points.shape()[0];
        let skin = |theta: &Tensor| self.vertices(theta);
        let (v, dv) = jvp_dirs(skin, theta, &Tensor::eye(THETA, DType::F64)); // [u, 3], [26, u, 3]
        let dv = dv.permute(&[1, 2, 0]); // [u, 3, 26]
        let (v, dv) = (v.take(&self.slots, 0), dv.take(&self.slots, 0));
        let Some(us) = us else {
            return (-dv).reshape(&[3 * n as isize, THETA as isize]);
        };
        let (c, dc) = (v.reshape(&[n as isize, 3, 3]), dv.reshape(&[n as isize, 3, 3, THETA as isize]));
        let corner = |k: usize| c.slice(&[0, k, 0], &[n, k + 1, 3], &[1, 1, 1]).reshape(&[n as isize, 3, 1]);
        let dcorner = |k: usize| {
            dc.slice(&[0, k, 0, 0], &[n, k + 1, 3, THETA], &[1, 1, 1, 1]).reshape(&[n as isize, 3, THETA as isize])
        };
        let u = |k: usize| us.slice(&[0, k], &[n, k + 1], &[1, 1]).reshape(&[n as isize, 1, 1]);
        let (u0, u1) = (u(0), u(1));
        let dtheta = -(&u0 * dcorner(0) + &u1 * dcorner(1) + (1.0 - &u0 - &u1) * dcorner(2));
        let du0 = corner(2) - corner(0);
        let du1 = corner(2) - corner(1);
        concatenate(&[du0, du1, dtheta], 2).reshape(&[3 * n as isize, (THETA + 2) as isize])
    }
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
        "jacobian" => {
            let f = jit(move |((us, theta), data): &((Tensor, Tensor), Vec<Tensor>)| {
                let p = problem.with_data(data);
                p.jacobian(p.us.as_ref().map(|_| us), theta)
            });
            let args = ((us, theta), data);
            Ok(Box::new(move || Ok(Output::from(f(&args)))))
        }
        _ => Err(unknown_function("ht", function, &["objective", "jacobian"])),
    }
}
