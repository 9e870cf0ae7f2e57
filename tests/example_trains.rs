//! README command 1: the digits example, run in release with fewer epochs, must learn
//! (test accuracy far above the 10% of chance), write its plot and checkpoints, and
//! score the same after reloading the checkpoint into a fresh model.

use std::process::Command;

fn percent_after(output: &str, prefix: &str) -> f64 {
    let line = output
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{output}"));
    line[prefix.len()..].trim().split('%').next().unwrap().parse().unwrap_or_else(|e| panic!("{line}: {e}"))
}

fn run(model: &str, epochs: &str) {
    let out_dir = std::env::temp_dir().join(format!("cotangent_digits_{model}_{}", std::process::id()));
    let output = Command::new(env!("CARGO"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["run", "--release", "--quiet", "--example", "digits", "--"])
        .args(["--epochs", epochs, "--model", model, "--out"])
        .arg(&out_dir)
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the example failed:\n{stdout}\n{stderr}");
    let acc = percent_after(&stdout, "final test accuracy:");
    let reloaded = percent_after(&stdout, "reloaded test accuracy:");
    assert!(acc > 80.0, "{model}: test accuracy {acc}% after {epochs} epochs:\n{stdout}");
    assert_eq!(acc, reloaded, "{model}: reloaded model scores differently");
    for f in [
        "digits_curves.png".to_string(),
        format!("digits_{model}.safetensors"),
        format!("digits_{model}_adam.safetensors"),
    ] {
        let p = out_dir.join(&f);
        assert!(p.metadata().map(|m| m.len() > 0).unwrap_or(false), "{} was not written", p.display());
        assert!(stdout.contains(&f), "{f} is not announced in the output");
    }
    std::fs::remove_dir_all(&out_dir).unwrap();
}

#[test]
fn digits_example_learns() {
    run("mlp", "3");
    run("cnn", "2");
}

// ---------------------------------------------------------------------------
// Taylor-mode examples (pinn, forward_gradient): short runs must learn and draw.
// ---------------------------------------------------------------------------

fn run_example(name: &str, args: &[&str]) -> (String, std::path::PathBuf) {
    let out_dir = std::env::temp_dir().join(format!("cotangent_{name}_{}", std::process::id()));
    let output = Command::new(env!("CARGO"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["run", "--release", "--quiet", "--example", name, "--"])
        .args(args)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the {name} example failed:\n{stdout}\n{stderr}");
    (stdout, out_dir)
}

fn number_after(output: &str, prefix: &str) -> f64 {
    let line = output
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{output}"));
    line[prefix.len()..].trim().trim_end_matches('%').parse().unwrap_or_else(|e| panic!("{line}: {e}"))
}

#[test]
fn pinn_example_learns() {
    let (stdout, out) = run_example("pinn", &["--dim", "20", "--batch", "50", "--steps", "100"]);
    // The untrained network's relative error is about 1.4; trained, well below.
    let err = number_after(&stdout, "final relative L2 error (STDE):");
    assert!(err < 0.5, "relative L2 error {err} after 100 steps:\n{stdout}");
    for method in ["STDE", "exact Taylor", "Hessian trace"] {
        assert!(stdout.lines().any(|l| l.starts_with(method) && l.contains("ms per step")), "{method}:\n{stdout}");
    }
    let png = out.join("pinn_error.png");
    assert!(png.metadata().map(|m| m.len() > 0).unwrap_or(false), "{} was not written", png.display());
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn forward_gradient_example_learns() {
    let (stdout, out) = run_example("forward_gradient", &["--epochs", "10"]);
    let fg = number_after(&stdout, "final test accuracy (forward gradient):");
    let bp = number_after(&stdout, "final test accuracy (backprop):");
    assert!(fg > 30.0, "forward gradients: {fg}% after 10 epochs (chance is 10%):\n{stdout}");
    assert!(bp > 90.0, "backprop: {bp}%:\n{stdout}");
    let png = out.join("forward_gradient_accuracy.png");
    assert!(png.metadata().map(|m| m.len() > 0).unwrap_or(false), "{} was not written", png.display());
    std::fs::remove_dir_all(&out).unwrap();
}

/// The categorical VAE trains with ReinMax and with straight-through: both losses fall far
/// below their first epoch's, and the plot of both curves is written.
#[test]
fn discrete_vae_example_learns_with_both_estimators() {
    let out_dir = std::env::temp_dir().join(format!("cotangent_discrete_vae_{}", std::process::id()));
    let output = Command::new(env!("CARGO"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["run", "--release", "--quiet", "--example", "discrete_vae", "--", "--epochs", "20", "--out"])
        .arg(&out_dir)
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the example failed:\n{stdout}\n{stderr}");
    let number_after = |prefix: &str| -> f64 {
        let line = stdout.lines().find(|l| l.contains(prefix)).unwrap_or_else(|| panic!("no {prefix:?} in:\n{stdout}"));
        let rest = &line[line.find(prefix).unwrap() + prefix.len()..];
        rest.trim()
            .split(|c: char| c == ',' || c.is_whitespace())
            .next()
            .unwrap()
            .parse()
            .unwrap_or_else(|e| panic!("{line}: {e}"))
    };
    for name in ["reinmax", "st"] {
        let first = number_after(&format!("{name}: first epoch train loss"));
        let test = number_after(&format!("final test loss {name}:"));
        assert!(test.is_finite() && test < first - 8.0, "{name}: test loss {test} vs first epoch {first}:\n{stdout}");
    }
    let png = out_dir.join("discrete_vae_losses.png");
    assert!(png.metadata().map(|m| m.len() > 0).unwrap_or(false), "{} was not written", png.display());
    std::fs::remove_dir_all(&out_dir).unwrap();
}

/// The neural ODE trains without and with the ERNODE regulariser: both trajectory errors fall
/// far below the untrained field's (2.76), the prediction-time NFE figures are plausible
/// counts of Tsit5 evaluations (1 + 6 per step), and both PNGs are written.
#[test]
fn neural_ode_example_learns_with_and_without_the_regulariser() {
    let (stdout, out) = run_example("neural_ode", &["--iters", "300"]);
    for run in ["plain", "ERNODE"] {
        let err = number_after(&stdout, &format!("final trajectory error ({run}):"));
        assert!(err.is_finite() && err < 0.3, "{run}: trajectory error {err}:\n{stdout}");
        let nfe = number_after(&stdout, &format!("prediction nfe ({run}):"));
        assert!(nfe > 12.0 && nfe < 2000.0 && (nfe - 1.0) % 6.0 == 0.0, "{run}: nfe {nfe}:\n{stdout}");
    }
    let truth = number_after(&stdout, "prediction nfe (true field):");
    assert!(truth > 12.0 && (truth - 1.0) % 6.0 == 0.0, "{truth}");
    for png in ["neural_ode_loss.png", "neural_ode_nfe.png"] {
        let png = out.join(png);
        assert!(png.metadata().map(|m| m.len() > 0).unwrap_or(false), "{} was not written", png.display());
    }
    std::fs::remove_dir_all(&out).unwrap();
}
