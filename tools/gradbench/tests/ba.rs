//! The `ba` eval against an independent scalar implementation of ADBench's formula: the
//! objective's values, and every entry of the first observation's Jacobian block against
//! central finite differences, plus the sparse matrix's structure.

use gradbench_tool::protocol::handle_line;
use serde_json::{json, Value};

const CAM: [f64; 11] = [
    -0.758453, -1.109613, -0.845551, 34.556073, 39.676747, 53.881673, 419.194514, 5.864426, -8.518870, 0.087812,
    0.002739,
];
const X: [f64; 3] = [7.203245, 0.001144, 3.023326];
const W: f64 = 0.417022;
const FEAT: [f64; 2] = [271.760969, 834.209256];

/// ADBench's reprojection error of one observation, in plain f64 (parameters: camera 11,
/// point 3, weight).
fn reference(q: &[f64; 15]) -> [f64; 2] {
    let (rot, c, f, x0, rad) = (&q[0..3], &q[3..6], q[6], &q[7..9], &q[9..11]);
    let p = [q[11] - c[0], q[12] - c[1], q[13] - c[2]];
    let w = q[14];
    let sq: f64 = rot.iter().map(|r| r * r).sum();
    let cross =
        |a: &[f64], b: &[f64]| [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
    let xc: [f64; 3] = if sq != 0.0 {
        let t = sq.sqrt();
        let k: Vec<f64> = rot.iter().map(|r| r / t).collect();
        let kx = cross(&k, &p);
        let dot: f64 = k.iter().zip(&p).map(|(a, b)| a * b).sum::<f64>() * (1.0 - t.cos());
        [0, 1, 2].map(|i| p[i] * t.cos() + kx[i] * t.sin() + k[i] * dot)
    } else {
        let rx = cross(rot, &p);
        [0, 1, 2].map(|i| p[i] + rx[i])
    };
    let proj = [xc[0] / xc[2], xc[1] / xc[2]];
    let rsq = proj[0] * proj[0] + proj[1] * proj[1];
    let l = 1.0 + rad[0] * rsq + rad[1] * rsq * rsq;
    [0, 1].map(|i| w * (proj[i] * l * f + x0[i] - FEAT[i]))
}

fn params() -> [f64; 15] {
    let mut q = [0.0; 15];
    q[..11].copy_from_slice(&CAM);
    q[11..14].copy_from_slice(&X);
    q[14] = W;
    q
}

fn run(function: &str, n: usize, m: usize, p: usize) -> Value {
    let input =
        json!({"n": n, "m": m, "p": p, "cam": CAM, "x": X, "w": W, "feat": FEAT, "min_runs": 1, "min_seconds": 0});
    let msg = json!({"id": 1, "kind": "evaluate", "module": "ba", "function": function, "input": input});
    let r = handle_line(&msg.to_string());
    assert_eq!(r["success"], true, "{r}");
    r["output"].clone()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

#[test]
fn objective_matches_the_reference() {
    let out = run("objective", 3, 5, 7);
    let want = reference(&params());
    let got = floats(&out["reproj_error"]["elements"]);
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= 1e-9 * w.abs().max(1.0), "{g} vs {w}");
    }
    assert_eq!(out["reproj_error"]["repeated"].as_f64(), Some(7.0));
    assert!((out["w_err"]["element"].as_f64().unwrap() - (1.0 - W * W)).abs() < 1e-15);
}

#[test]
fn jacobian_block_matches_finite_differences_and_the_layout() {
    let (n, m, p) = (3, 5, 12);
    let out = run("jacobian", n, m, p);
    let (rows, cols, vals) = (floats(&out["rows"]), floats(&out["cols"]), floats(&out["vals"]));
    assert_eq!((rows.len(), cols.len(), vals.len()), (31, 31, 31));
    // Row offsets: 15 entries per error row, then one per weight row.
    let offsets: Vec<f64> = (0..30).map(|i| if i <= 2 * p { 15 * i } else { 30 * p + i - 2 * p } as f64).collect();
    assert_eq!(rows[..30], offsets[..]);
    assert_eq!(rows[30], (31 * p) as f64);
    // The first observation uses camera 0 and point 0: columns 0..11, 11n..11n+3, then its weight.
    let block_cols: Vec<f64> =
        (0..11).map(|k| k as f64).chain((0..3).map(|k| (11 * n + k) as f64)).chain([(11 * n + 3 * m) as f64]).collect();
    assert_eq!(cols[..15], block_cols[..]);
    assert_eq!(cols[15..30], block_cols[..]);
    assert_eq!(cols[30], (11 * n + 3 * m + p - 1) as f64);
    assert!((vals[30] + 2.0 * W).abs() < 1e-15);
    // Values: row r, parameter k, against central differences of the reference.
    let q = params();
    for r in 0..2 {
        for k in 0..15 {
            let h = 1e-6 * q[k].abs().max(1.0);
            let (mut hi, mut lo) = (q, q);
            hi[k] += h;
            lo[k] -= h;
            let fd = (reference(&hi)[r] - reference(&lo)[r]) / (2.0 * h);
            let got = vals[15 * r + k];
            assert!((got - fd).abs() <= 1e-5 * fd.abs().max(1.0), "row {r}, parameter {k}: {got} vs {fd}");
        }
    }
}

#[test]
fn zero_rotation_takes_the_small_angle_formula() {
    // With rot = 0 the formula divides by zero; the tool selects x + rot × x there, and its
    // derivatives stay finite.
    let mut cam = CAM;
    cam[..3].fill(0.0);
    let input =
        json!({"n": 1, "m": 1, "p": 2, "cam": cam, "x": X, "w": W, "feat": FEAT, "min_runs": 1, "min_seconds": 0});
    let msg = json!({"id": 1, "kind": "evaluate", "module": "ba", "function": "jacobian", "input": input});
    let r = handle_line(&msg.to_string());
    assert_eq!(r["success"], true, "{r}");
    assert!(floats(&r["output"]["vals"]).iter().all(|v| v.is_finite()), "{r}");
}

#[test]
fn bad_inputs_name_the_field() {
    let input = json!({"n": 1, "m": 1, "p": 2, "cam": [1.0, 2.0], "x": X, "w": W, "feat": FEAT});
    let msg = json!({"id": 1, "kind": "evaluate", "module": "ba", "function": "objective", "input": input});
    let r = handle_line(&msg.to_string());
    assert_eq!(r["success"], false);
    assert!(r["error"].as_str().unwrap().contains("cam"), "{r}");
}

#[test]
fn a_huge_observation_count_is_refused_before_allocating() {
    let input = json!({"n": 1, "m": 1, "p": 1u64 << 60, "cam": CAM, "x": X, "w": W, "feat": FEAT});
    let msg = json!({"id": 1, "kind": "evaluate", "module": "ba", "function": "jacobian", "input": input});
    let r = handle_line(&msg.to_string());
    assert_eq!(r["success"], false);
    assert!(r["error"].as_str().unwrap().contains("`p`"), "{r}");
}
