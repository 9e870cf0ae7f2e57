//! `lstm`: the loss of a stacked LSTM predicting a binary-encoded character
//! sequence, and its gradient with respect to the parameters by `grad`.
//!
//! The recurrence is sequential in time, so each layer is a
//! [`scan`](cotangent::control::scan) over the time steps, layer after layer (as cuDNN and
//! PyTorch run a stacked LSTM): layer `i` reads the whole sequence of layer `i - 1`'s hidden
//! states and returns its own, its body one layer's gates acting element-wise on `b`-vectors,
//! as in the benchmark's reference. Every value is computed by the same operations as in the
//! time-major order (step by step through all layers), so the loss is the same; but every
//! layer's scan has the same body (its weights are operands), so one compiled loop serves all
//! layers and all depths; the gates that read only a layer's input (forget, output), the
//! output layer and its log-sum-exp act on the whole sequence at once, outside the scans. The graph, and the time to trace, differentiate and compile it, does not
//! grow with the sequence length.

use super::{unknown_function, Output, Run};
use crate::input::{expect_shape, matrix};
use crate::limits::{product_at_most, Limits};
use cotangent::control::scan;
use cotangent::{concatenate, grad, jit, stack, Tensor};
use serde_json::Value;

/// The fixed data: the initial state `[2l, b]` and the sequence `[c, b]`.
pub struct Lstm {
    state: Tensor,
    /// The inputs `sequence[..c - 1]`, `[c - 1, b]`.
    inputs: Tensor,
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
            inputs: sequence.slice_axis(0, 0, c as isize - 1, 1),
            targets: sequence.slice_axis(0, 1, c as isize, 1),
        }
    }

    /// The loss `-Σₜ Σᵢ seq[t+1]ᵢ · log_softmax₂(pred_t)ᵢ / ((c-1) b)` for
    /// `main_params` `[2l, 4b]` and `extra_params` `[3, b]`: per layer a `scan` over the time
    /// steps, whose carries are the layer's hidden and cell state and whose outputs are its
    /// hidden states, read by the next layer's scan.
    pub fn objective(&self, main_params: &Tensor, extra_params: &Tensor) -> Tensor {
        let model = Model::new(main_params, extra_params, self.targets.shape()[1]);
        let (hidden, cell) = self.initial_state(model.layers());
        let mut u = &self.inputs * &model.in_weight;
        for i in 0..model.layers() {
            // The gates that read only the layer's input, for the whole sequence at once.
            let gates = model.input_gates(i, &u);
            let step = |(h, c): &(Tensor, Tensor), (forget, outgate): &(Tensor, Tensor)| {
                let (h, c) = model.state_step(i, h, c, forget, outgate);
                ((h.clone(), c), h)
            };
            u = scan(step, &(hidden[i].clone(), cell[i].clone()), &gates, None, false).1;
        }
        self.loss(&model.normalised(&u))
    }

    /// [`Lstm::objective`] with the time loops unrolled into the traced graph (Rust loops
    /// over the time steps): the same operations in the same order, so the same value bit
    /// for bit; its graph grows with the sequence.
    pub fn objective_unrolled(&self, main_params: &Tensor, extra_params: &Tensor) -> Tensor {
        let model = Model::new(main_params, extra_params, self.targets.shape()[1]);
        let (hidden, cell) = self.initial_state(model.layers());
        let steps = self.inputs.shape()[0];
        let mut u = &self.inputs * &model.in_weight;
        for i in 0..model.layers() {
            let (mut h, mut c) = (hidden[i].clone(), cell[i].clone());
            let (forget, outgate) = model.input_gates(i, &u);
            let outs: Vec<Tensor> = (0..steps)
                .map(|t| {
                    let t = t as isize;
                    (h, c) = model.state_step(i, &h, &c, &forget.index(t), &outgate.index(t));
                    h.clone()
                })
                .collect();
            u = stack(&outs, 0);
        }
        self.loss(&model.normalised(&u))
    }

    /// The time-major order of the reference (each time step through all layers, the layers
    /// a Rust loop inside a `scan` over time): the same value as [`Lstm::objective`] bit for
    /// bit (tests only).
    #[cfg(test)]
    fn objective_time_major(&self, main_params: &Tensor, extra_params: &Tensor) -> Tensor {
        let model = Model::new(main_params, extra_params, self.targets.shape()[1]);
        let init = self.initial_state(model.layers());
        let step = |(hidden, cell): &(Vec<Tensor>, Vec<Tensor>), input: &Tensor| {
            let (mut hidden, mut cell) = (hidden.clone(), cell.clone());
            let mut u = input * &model.in_weight;
            for i in 0..model.layers() {
                (hidden[i], cell[i]) = model.layer_step(i, &hidden[i], &cell[i], &u);
                u = hidden[i].clone();
            }
            ((hidden, cell), u)
        };
        let (_, top) = scan(step, &init, &self.inputs, None, false);
        self.loss(&model.normalised(&top))
    }

    /// Each layer's initial hidden and cell state.
    fn initial_state(&self, layers: usize) -> (Vec<Tensor>, Vec<Tensor>) {
        let hidden = (0..layers).map(|i| self.state.index(2 * i as isize)).collect();
        let cell = (0..layers).map(|i| self.state.index(2 * i as isize + 1)).collect();
        (hidden, cell)
    }

    /// The loss of the stacked normalised predictions `[c - 1, b]`.
    fn loss(&self, normalised: &Tensor) -> Tensor {
        let total = (normalised * &self.targets).sum_all();
        -total / (self.targets.numel() as f64)
    }
}

/// The parameters split into each layer's gate blocks.
struct Model {
    weights: Vec<Gates>,
    biases: Vec<Gates>,
    in_weight: Tensor,
    out_weight: Tensor,
    out_bias: Tensor,
}

impl Model {
    fn new(main_params: &Tensor, extra_params: &Tensor, b: usize) -> Model {
        let layers = main_params.shape()[0] / 2;
        let (weights, biases) = (0..layers)
            .map(|i| {
                (
                    Gates::from_row(&main_params.index(2 * i as isize), b),
                    Gates::from_row(&main_params.index(2 * i as isize + 1), b),
                )
            })
            .unzip();
        Model {
            weights,
            biases,
            in_weight: extra_params.index(0),
            out_weight: extra_params.index(1),
            out_bias: extra_params.index(2),
        }
    }

    fn layers(&self) -> usize {
        self.weights.len()
    }

    /// Layer `i`'s step at one time: its new hidden and cell state from the old ones and
    /// its input `u` (the layer below's hidden state, or the scaled input character); the
    /// time-major order's step (tests only).
    #[cfg(test)]
    fn layer_step(&self, i: usize, h: &Tensor, cell: &Tensor, u: &Tensor) -> (Tensor, Tensor) {
        let (forget, outgate) = self.input_gates(i, u);
        self.state_step(i, h, cell, &forget, &outgate)
    }

    /// Layer `i`'s forget and output gates, which read only its input `u` (a time step's or
    /// the whole sequence's, element-wise either way).
    fn input_gates(&self, i: usize, u: &Tensor) -> (Tensor, Tensor) {
        let (w, bias) = (&self.weights[i], &self.biases[i]);
        let forget = (u * &w.forget + &bias.forget).sigmoid();
        let outgate = (u * &w.outgate + &bias.outgate).sigmoid();
        (forget, outgate)
    }

    /// Layer `i`'s new hidden and cell state from the old ones and its input gates.
    fn state_step(&self, i: usize, h: &Tensor, cell: &Tensor, forget: &Tensor, outgate: &Tensor) -> (Tensor, Tensor) {
        let (w, bias) = (&self.weights[i], &self.biases[i]);
        let ingate = (h * &w.ingate + &bias.ingate).sigmoid();
        let change = (h * &w.change + &bias.change).tanh();
        let cell = cell * forget + ingate * change;
        let hidden = outgate * cell.tanh();
        (hidden, cell)
    }

    /// The normalised predictions `[c - 1, b]` from the top layer's hidden states: per time
    /// step `pred - log(Σ exp(pred) + 2)`, as in the benchmark's reference.
    fn normalised(&self, top: &Tensor) -> Tensor {
        let pred = top * &self.out_weight + &self.out_bias;
        let lse = (pred.exp().sum(&[-1], true) + 2.0).log();
        pred - lse
    }
}

/// Builds `objective` or `jacobian` for input
/// `{main_params: [2l][4b], extra_params: [3][b], state: [2l][b], sequence: [c][b]}`.
///
/// The time loop is a `scan`, so the graph does not grow with `c`; `(c - 1)·l` layer
/// steps beyond [`Limits::max_steps`] are still refused (they bound the run time).
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A small instance (`l` layers, `c` characters of `b` bits) with parameters in
    /// `[0, 1)` as GradBench draws them, from a fixed linear congruential sequence.
    fn instance(l: usize, c: usize, b: usize) -> (Lstm, Tensor, Tensor) {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut uniform = |n: usize| -> Vec<f64> {
            (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (seed >> 11) as f64 / (1u64 << 53) as f64
                })
                .collect()
        };
        let bits: Vec<f64> = uniform(c * b).into_iter().map(|u| if u < 0.5 { 0.0 } else { 1.0 }).collect();
        let state = Tensor::from_vec(uniform(2 * l * b), &[2 * l, b]);
        let main = Tensor::from_vec(uniform(2 * l * 4 * b), &[2 * l, 4 * b]);
        let extra = Tensor::from_vec(uniform(3 * b), &[3, b]);
        (Lstm::new(state, &Tensor::from_vec(bits, &[c, b])), main, extra)
    }

    #[test]
    fn scan_and_unrolled_objectives_agree() {
        let (lstm, main, extra) = instance(2, 9, 3);
        let scanned = lstm.objective(&main, &extra).item::<f64>();
        let unrolled = lstm.objective_unrolled(&main, &extra).item::<f64>();
        // The same operations in the same order: bitwise equal.
        assert_eq!(scanned.to_bits(), unrolled.to_bits(), "{scanned} vs {unrolled}");
        assert!(scanned.is_finite() && scanned > 0.0, "{scanned}");
        // Layer after layer, the same operations as step after step through all layers.
        let time_major = lstm.objective_time_major(&main, &extra).item::<f64>();
        assert_eq!(scanned.to_bits(), time_major.to_bits(), "{scanned} vs {time_major}");
        // Compiled, too.
        let lstm = std::sync::Arc::new(lstm);
        let l = lstm.clone();
        let f = jit(move |(m, e): &(Tensor, Tensor)| l.objective(m, e));
        assert_eq!(f(&(main.clone(), extra.clone())).item::<f64>().to_bits(), unrolled.to_bits());
    }

    #[test]
    fn scan_and_unrolled_gradients_agree() {
        for (l, c, b) in [(1, 2, 2), (2, 9, 3), (3, 6, 4)] {
            let (lstm, main, extra) = instance(l, c, b);
            let lstm = std::sync::Arc::new(lstm);
            let (l1, l2, l3) = (lstm.clone(), lstm.clone(), lstm.clone());
            let scanned = grad(move |(m, e): &(Tensor, Tensor)| l1.objective(m, e))(&(main.clone(), extra.clone()));
            let unrolled =
                grad(move |(m, e): &(Tensor, Tensor)| l2.objective_unrolled(m, e))(&(main.clone(), extra.clone()));
            let time_major =
                grad(move |(m, e): &(Tensor, Tensor)| l3.objective_time_major(m, e))(&(main.clone(), extra.clone()));
            let pairs = [
                (&scanned.0, &unrolled.0),
                (&scanned.1, &unrolled.1),
                (&scanned.0, &time_major.0),
                (&scanned.1, &time_major.1),
            ];
            for (s, u) in pairs {
                let (s, u) = (s.to_vec::<f64>(), u.to_vec::<f64>());
                assert_eq!(s.len(), u.len());
                assert!(u.iter().any(|&x| x != 0.0), "a non-trivial gradient");
                for (x, y) in s.iter().zip(&u) {
                    assert!((x - y).abs() <= 1e-14 * (1.0 + y.abs()), "l={l} c={c} b={b}: {x} vs {y}");
                }
            }
        }
    }
}
