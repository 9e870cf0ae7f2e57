//! The `ht` eval against `data/ht_fixture.json`: a reduced GradBench instance (12 points of
//! `hand1`, the vertices they use) with its objective computed by an independent NumPy port
//! of ADBench's formula (`data/ht_fixture.py`), and the Jacobian against central finite
//! differences of the tool's own objective, in GradBench's column layout.

use gradbench_tool::protocol::handle_line;
use serde_json::{json, Value};

fn fixture() -> Value {
    serde_json::from_str(include_str!("data/ht_fixture.json")).unwrap()
}

fn run(function: &str, input: &Value) -> Value {
    let mut input = input.clone();
    input["min_runs"] = json!(1);
    input["min_seconds"] = json!(0);
    let msg = json!({"id": 1, "kind": "evaluate", "module": "ht", "function": function, "input": input});
    let r = handle_line(&msg.to_string());
    assert_eq!(r["success"], true, "{}", r["error"]);
    r["output"].clone()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

#[test]
fn objective_matches_the_independent_reference() {
    for variant in ["simple", "complicated"] {
        let case = &fixture()[variant];
        let got = floats(&run("objective", &case["input"]));
        let want = floats(&case["objective"]);
        assert_eq!(got.len(), want.len(), "{variant}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() < 1e-12, "{variant} entry {i}: {g} vs {w}");
        }
    }
}

#[test]
fn jacobian_matches_finite_differences() {
    for variant in ["simple", "complicated"] {
        let input = fixture()[variant]["input"].clone();
        let rows: Vec<Vec<f64>> = run("jacobian", &input).as_array().unwrap().iter().map(floats).collect();
        let complicated = variant == "complicated";
        let n = input["data"]["points"].as_array().unwrap().len();
        assert_eq!(rows.len(), 3 * n, "{variant}");
        assert_eq!(rows[0].len(), if complicated { 28 } else { 26 }, "{variant}");
        let objective = |input: &Value| floats(&run("objective", input));
        let h = 1e-6;
        // Angle columns: perturb theta[k].
        for k in 0..26 {
            let (mut hi, mut lo) = (input.clone(), input.clone());
            hi["theta"][k] = json!(input["theta"][k].as_f64().unwrap() + h);
            lo["theta"][k] = json!(input["theta"][k].as_f64().unwrap() - h);
            let (fh, fl) = (objective(&hi), objective(&lo));
            let col = k + if complicated { 2 } else { 0 };
            for r in 0..3 * n {
                let fd = (fh[r] - fl[r]) / (2.0 * h);
                assert!((rows[r][col] - fd).abs() < 1e-6, "{variant}: row {r}, theta {k}: {} vs {fd}", rows[r][col]);
            }
        }
        // Barycentric columns: row 3i + c holds d err[3i + c] / d us[i][d] in column d.
        if complicated {
            for i in [0, n - 1] {
                for d in 0..2 {
                    let (mut hi, mut lo) = (input.clone(), input.clone());
                    hi["us"][i][d] = json!(input["us"][i][d].as_f64().unwrap() + h);
                    lo["us"][i][d] = json!(input["us"][i][d].as_f64().unwrap() - h);
                    let (fh, fl) = (objective(&hi), objective(&lo));
                    for r in 3 * i..3 * i + 3 {
                        let fd = (fh[r] - fl[r]) / (2.0 * h);
                        assert!((rows[r][d] - fd).abs() < 1e-6, "point {i}, u{d}, row {r}: {} vs {fd}", rows[r][d]);
                    }
                }
            }
        }
    }
}

#[test]
fn bad_model_inputs_name_the_field() {
    let mut input = fixture()["complicated"]["input"].clone();
    input["data"]["correspondences"][0] = json!(100000);
    let msg = json!({"id": 1, "kind": "evaluate", "module": "ht", "function": "objective", "input": input});
    let r = handle_line(&msg.to_string());
    assert_eq!(r["success"], false);
    assert!(r["error"].as_str().unwrap().contains("correspondences"), "{r}");
    let mut input = fixture()["simple"]["input"].clone();
    input["data"]["model"]["parents"][0] = json!(5);
    let msg = json!({"id": 1, "kind": "evaluate", "module": "ht", "function": "jacobian", "input": input});
    let r = handle_line(&msg.to_string());
    assert!(r["error"].as_str().unwrap().contains("parent"), "{r}");
}
