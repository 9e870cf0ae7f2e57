//! `lstm`: the loss of a stacked LSTM predicting a binary-encoded character
//! sequence, and its gradient with respect to the parameters by `grad`.
//!
//! The recurrence is sequential in time, so the objective is a Rust loop over
//! time steps of element-wise tensor operations (each layer's gates act
//! element-wise on `b`-vectors, as in the benchmark's reference).

use super::{unknown_function, Output, Run};
use crate::input::{expect_shape, matrix};
use crate::limits::{product_at_most, Limits};
use cotangent::{concatenate, grad, jit, stack, Tensor};
use serde_json::Value;

/// The fixed data: the initial state `[2l, b]` and the sequence `[c, b]`.
pub struct Lstm {
    state: Tensor,
    /// The inputs `sequence[t]` for `t < c - 1`.
    inputs: Vec<Tensor>,
    /// The targets `sequence[1..]`, `[c - 1, b]`.
    targets: Tensor,
}

/// One layer's weights or biases, split in the four gate blocks.
struct Gates {
    forget: Tensor,
    ingate: Tensor,
    outgate: Tensor,
    change: Tensor,
}

impl Gates {
    fn from_row(row: &Tensor, b: usize) -> Gates {
        let p = row.split(&[b, b, b, b], 0);
        Gates { forget: p[0].clone(), ingate: p[1].clone(), outgate: p[2].clone(), change: p[3].clone() }
    }
}

impl Lstm {
    /// A problem on `state` (`[2l, b]`) and `sequence` (`[c, b]`, `c >= 2`).
    pub fn new(state: Tensor, sequence: &Tensor) -> Lstm {
        let c = sequence.shape()[0];
        Lstm {
            state,
            inputs: (0..c - 1).map(|t| sequence.index(t as isize)).collect(),
            targets: sequence.slice_axis(0, 1, c as isize, 1),
        }
    }

    /// The loss `-Σₜ Σᵢ seq[t+1]ᵢ · log_softmax₂(pred_t)ᵢ / ((c-1) b)` for
    /// `main_params` `[2l, 4b]` and `extra_params` `[3, b]`.
    pub fn objective(&self, main_params: &Tensor, extra_params: &Tensor) -> Tensor {
        let b = self.targets.shape()[1];
        let layers = main_params.shape()[0] / 2;
        let (weights, biases): (Vec<Gates>, Vec<Gates>) = (0..layers)
            .map(|i| {
                (
                    Gates::from_row(&main_params.index(2 * i as isize), b),
                    Gates::from_row(&main_params.index(2 * i as isize + 1), b),
                )
            })
            .unzip();
        let in_weight = extra_params.index(0);
        let out_weight = extra_params.index(1);
        let out_bias = extra_params.index(2);
        let mut hidden: Vec<Tensor> = (0..layers).map(|i| self.state.index(2 * i as isize)).collect();
        let mut cell: Vec<Tensor> = (0..layers).map(|i| self.state.index(2 * i as isize + 1)).collect();
        let mut normalised = Vec::with_capacity(self.inputs.len());
        for input in &self.inputs {
            let mut u = input * &in_weight;
            for i in 0..layers {
                let (w, bias, h) = (&weights[i], &biases[i], &hidden[i]);
                let forget = (&u * &w.forget + &bias.forget).sigmoid();
                let ingate = (h * &w.ingate + &bias.ingate).sigmoid();
                let outgate = (&u * &w.outgate + &bias.outgate).sigmoid();
                let change = (h * &w.change + &bias.change).tanh();
                cell[i] = &cell[i] * forget + ingate * change;
                hidden[i] = outgate * cell[i].tanh();
                u = hidden[i].clone();
            }
            let pred = u * &out_weight + &out_bias;
            // log(Σ exp(pred) + 2), as in the benchmark's reference.
            let lse = (pred.exp().sum_all() + 2.0).log();
            normalised.push(pred - lse);
        }
        let total = (stack(&normalised, 0) * &self.targets).sum_all();
        -total / (self.targets.numel() as f64)
    }
}

/// Builds `objective` or `jacobian` for input
/// `{main_params: [2l][4b], extra_params: [3][b], state: [2l][b], sequence: [c][b]}`.
///
/// The time loop is unrolled into the traced graph: `(c - 1)·l` layer steps
/// beyond [`Limits::max_steps`] are refused.
pub fn prepare(function: &str, input: &Value, limits: &Limits) -> Result<Run, String> {
    let main_params = matrix(input, "main_params")?;
    let extra_params = matrix(input, "extra_params")?;
    let state = matrix(input, "state")?;
    let sequence = matrix(input, "sequence")?;
    let (c, b) = (sequence.shape()[0], sequence.shape()[1]);
    let l2 = main_params.shape()[0];
    if c < 2 || b == 0 || l2 == 0 || l2 % 2 != 0 {
        return Err(format!(
            "need a sequence of at least 2 non-empty rows and an even, non-zero number of \
             main_params rows, got sequence {:?} and main_params {:?}",
            sequence.shape(),
            main_params.shape()
        ));
    }
    expect_shape(&main_params, "main_params", &[l2, 4 * b])?;
    expect_shape(&extra_params, "extra_params", &[3, b])?;
    expect_shape(&state, "state", &[l2, b])?;
    product_at_most("layer steps (`sequence` rows - 1)·(`main_params` rows / 2)", &[c - 1, l2 / 2], limits.max_steps)?;
    let lstm = Lstm::new(state, &sequence);
    match function {
        "objective" => {
            let params = (main_params, extra_params);
            let f = jit(move |(m, e): &(Tensor, Tensor)| lstm.objective(m, e));
            Ok(Box::new(move || Ok(Output::from(f(&params)))))
        }
        "jacobian" => {
            let params = (main_params, extra_params);
            let df = grad(move |(m, e): &(Tensor, Tensor)| lstm.objective(m, e));
            Ok(Box::new(move || {
                let (dm, de) = df(&params);
                Ok(Output::from(concatenate(&[dm.flatten(), de.flatten()], 0)))
            }))
        }
        _ => Err(unknown_function("lstm", function, &["objective", "jacobian"])),
    }
}
