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

/// Every number of a JSON value, in order.
fn numbers(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(xs) => xs.iter().flat_map(numbers).collect(),
        x => vec![x.as_f64().unwrap()],
    }
}

fn assert_close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-12 * (1.0 + w.abs()), "{what} entry {i}: {g} vs {w}");
    }
}

/// The tool skins only the vertices the objective reads when they are fewer than the mesh's,
/// and the whole mesh otherwise: both ways give the same objective and Jacobian.
#[test]
fn skinning_the_selected_vertices_or_all_agree() {
    // Complicated (36 corners, 35 vertices: the whole mesh), then with 40 unused vertices
    // appended (75: the selected corners only).
    let input = fixture()["complicated"]["input"].clone();
    let mut padded = input.clone();
    let model = &mut padded["data"]["model"];
    for field in ["base_positions", "weights"] {
        let rows = model[field].as_array_mut().unwrap();
        let first = rows[0].clone();
        rows.extend(std::iter::repeat_n(first, 40));
    }
    for function in ["objective", "jacobian"] {
        assert_close(&numbers(&run(function, &padded)), &numbers(&run(function, &input)), function);
    }
    // Simple (12 points, 35 vertices: the selected ones), then with every point three times
    // (36: the whole mesh).
    let input = fixture()["simple"]["input"].clone();
    let mut tripled = input.clone();
    for field in ["points", "correspondences"] {
        let items = tripled["data"][field].as_array().unwrap().clone();
        tripled["data"][field] = Value::Array([items.clone(), items.clone(), items].concat());
    }
    for function in ["objective", "jacobian"] {
        let once = numbers(&run(function, &input));
        assert_close(&numbers(&run(function, &tripled)), &[once.clone(), once.clone(), once].concat(), function);
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
