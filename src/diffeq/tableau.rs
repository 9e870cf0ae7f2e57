//! Butcher tableaus of the explicit Runge–Kutta methods and of the implicit (ESDIRK) pairs.

/// A Runge–Kutta method. The first four take fixed steps (`Options::dt0` is required); the
/// others are embedded pairs with error control: three explicit ones and two implicit ones
/// for stiff problems ([`Solver::Kvaerno3`], [`Solver::Kvaerno5`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Solver {
    /// Explicit Euler, order 1.
    Euler,
    /// Heun's method (explicit trapezoid), order 2.
    Heun,
    /// Explicit midpoint, order 2.
    Midpoint,
    /// The classical Runge–Kutta method, order 4.
    Rk4,
    /// Bogacki–Shampine 3(2), adaptive.
    Bosh3,
    /// Dormand–Prince 5(4), adaptive.
    Dopri5,
    /// Tsitouras 5(4), adaptive.
    Tsit5,
    /// Kværnø's ESDIRK 3(2) (4 stages, explicit first stage, L-stable, stiffly accurate),
    /// adaptive and implicit: for stiff problems. Each implicit stage is solved by Newton
    /// iterations with the field's Jacobian (taken by `jacfwd` once per step) and an LU
    /// factorisation; a stage whose Newton iteration fails rejects the step (see the
    /// [module documentation](super)).
    ///
    /// ```
    /// use cotangent::diffeq::{solve, Options, Solver};
    /// use cotangent::Tensor;
    /// // y' = -1000 (y - cos t): stiff; the implicit solver takes large steps anyway.
    /// let f = |t: &Tensor, y: &Tensor, _: &()| (y - t.cos()) * -1000.0;
    /// let opts = Options { rtol: 1e-4, atol: 1e-6, ..Options::default() };
    /// let sol = solve(f, Solver::Kvaerno3, 0.0, 2.0, &Tensor::scalar(0.0), &(), &[], &opts);
    /// sol.expect_success();
    /// let exact = (1e6 * 2f64.cos() + 1e3 * 2f64.sin()) / (1e6 + 1.0);
    /// assert!((sol.ys[0].item::<f64>() - exact).abs() < 1e-4);
    /// // An explicit pair is held near its stability limit h ≈ 3.3/1000 instead.
    /// let explicit = solve(f, Solver::Dopri5, 0.0, 2.0, &Tensor::scalar(0.0), &(), &[], &opts);
    /// let steps = |s: &Tensor| s.item::<i64>();
    /// assert!(steps(&explicit.stats.accepted) > 5 * steps(&sol.stats.accepted));
    /// ```
    Kvaerno3,
    /// Kværnø's ESDIRK 5(4) (7 stages, explicit first stage, L-stable, stiffly accurate),
    /// adaptive and implicit: for stiff problems at tight tolerances. Newton iterations as
    /// [`Solver::Kvaerno3`].
    ///
    /// ```
    /// use cotangent::diffeq::{solve, Options, Solver};
    /// use cotangent::Tensor;
    /// // A stiff linear system: one fast mode (-1000) and one slow mode (-1).
    /// let f = |_t: &Tensor, (u, v): &(Tensor, Tensor), _: &()| (u * -1000.0 + v, -v);
    /// let opts = Options { rtol: 1e-8, atol: 1e-10, ..Options::default() };
    /// let y0 = (Tensor::scalar(1.0), Tensor::scalar(1.0));
    /// let sol = solve(f, Solver::Kvaerno5, 0.0, 1.0, &y0, &(), &[], &opts);
    /// sol.expect_success();
    /// // v = e^{-t}; u = e^{-t}/999 + (1 - 1/999) e^{-1000 t}.
    /// let e = (-1f64).exp();
    /// assert!((sol.ys[0].1.item::<f64>() - e).abs() < 1e-8);
    /// assert!((sol.ys[0].0.item::<f64>() - e / 999.0).abs() < 1e-8);
    /// ```
    Kvaerno5,
}

/// A Butcher tableau: `c`, the lower `a` rows, weights `b`, for embedded pairs the error
/// weights `e = b - b̂`, and for the explicit adaptive methods a continuous extension
/// `dense`. Explicit methods hold the strictly lower triangle (row `i` holds `a[i][0..i]`);
/// the implicit ones (ESDIRK: explicit first stage, diagonal `γ` after it) hold the diagonal
/// too (row `i > 0` holds `a[i][0..=i]`, `a[i][i] = γ`).
#[derive(Clone, Debug)]
pub struct Tableau {
    /// Stage times.
    pub c: Vec<f64>,
    /// Row `i` holds `a[i][0..i]` (explicit methods) or `a[i][0..=i]` (implicit ones, `i > 0`).
    pub a: Vec<Vec<f64>>,
    /// Solution weights.
    pub b: Vec<f64>,
    /// Error weights `b - b̂` (adaptive methods only).
    pub e: Option<Vec<f64>>,
    /// Order of the solution.
    pub order: usize,
    /// The continuous extension (dense output) of the adaptive methods: inside a step,
    /// `y(t + θh) = y + h Σᵢ bᵢ(θ) kᵢ` with `bᵢ(θ) = Σₘ dense[i][m] θᵐ` (`bᵢ(0) = 0`,
    /// `bᵢ(1) = bᵢ`). Dopri5: Shampine's order-4 extension (Hairer–Nørsett–Wanner II.6);
    /// Tsit5: Tsitouras' order-4 polynomials; Bosh3: the cubic Hermite interpolant of
    /// `(y, f(t, y), y₁, f(t + h, y₁))` (order 3), written in the stages (both derivatives are
    /// stages of this first-same-as-last method).
    pub dense: Option<Vec<Vec<f64>>>,
}

/// Polynomials in θ as ascending coefficient vectors.
fn padd(a: &[f64], b: &[f64]) -> Vec<f64> {
    (0..a.len().max(b.len())).map(|i| a.get(i).unwrap_or(&0.0) + b.get(i).unwrap_or(&0.0)).collect()
}

fn pmul(a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; a.len() + b.len() - 1];
    for (i, x) in a.iter().enumerate() {
        for (j, y) in b.iter().enumerate() {
            out[i + j] += x * y;
        }
    }
    out
}

fn pscale(a: &[f64], k: f64) -> Vec<f64> {
    a.iter().map(|x| x * k).collect()
}

fn delta(i: usize, j: usize) -> f64 {
    if i == j {
        1.0
    } else {
        0.0
    }
}

/// Shampine's continuous extension of Dopri5 as `bᵢ(θ)`:
/// `θbᵢ + θ(1-θ)(δᵢ₀ - bᵢ) + θ²(1-θ)(2bᵢ - δᵢ₀ - δᵢ₆) + θ²(1-θ)²dᵢ`.
fn dopri5_dense(b: &[f64]) -> Vec<Vec<f64>> {
    let d = [
        -12715105075.0 / 11282082432.0,
        0.0,
        87487479700.0 / 32700410799.0,
        -10690763975.0 / 1880347072.0,
        701980252875.0 / 199316789632.0,
        -1453857185.0 / 822651844.0,
        69997945.0 / 29380423.0,
    ];
    let th = [0.0, 1.0];
    let om = [1.0, -1.0];
    let t_om = pmul(&th, &om);
    let t2_om = pmul(&th, &t_om);
    let t2_om2 = pmul(&t_om, &t_om);
    (0..7)
        .map(|i| {
            let mut p = pscale(&th, b[i]);
            p = padd(&p, &pscale(&t_om, delta(i, 0) - b[i]));
            p = padd(&p, &pscale(&t2_om, 2.0 * b[i] - delta(i, 0) - delta(i, 6)));
            padd(&p, &pscale(&t2_om2, d[i]))
        })
        .collect()
}

/// Tsitouras' interpolation polynomials for Tsit5, expanded from their factored forms.
// The published digits, kept as printed.
#[allow(clippy::excessive_precision)]
fn tsit5_dense() -> Vec<Vec<f64>> {
    let t = [0.0, 1.0];
    let t2 = [0.0, 0.0, 1.0];
    let lin = |r: f64| [-r, 1.0];
    let quad = |p: f64, q: f64| [q, p, 1.0];
    vec![
        pscale(
            &pmul(&pmul(&t, &lin(1.3299890189751412)), &quad(-1.4364028541716351, 0.7139816917074209)),
            -1.0530884977290216,
        ),
        pscale(&pmul(&t2, &quad(-2.1966568338249754, 1.2949852507374631)), 0.1017),
        pscale(&pmul(&t2, &quad(-2.38535645472061657, 1.57803468208092486)), 2.490627285651252793),
        pscale(&pmul(&pmul(&t2, &lin(1.21712927295533244)), &lin(0.61620406037800089)), -16.54810288924490272),
        pscale(&pmul(&pmul(&t2, &lin(1.203071208372362603)), &lin(0.658047292653547382)), 47.37952196281928122),
        pscale(&pmul(&pmul(&t2, &lin(1.2)), &lin(0.666666666666666667)), -34.87065786149660974),
        pscale(&pmul(&pmul(&t2, &lin(1.0)), &lin(0.6)), 2.5),
    ]
}

/// The cubic Hermite interpolant of `(y, f₀, y₁, f₁)` for a first-same-as-last tableau with
/// `s` stages: `y₁ - y = hΣbᵢkᵢ`, `f₀ = k₀`, `f₁ = k_{s-1}`.
fn hermite_dense(b: &[f64]) -> Vec<Vec<f64>> {
    let h01 = [0.0, 0.0, 3.0, -2.0];
    let h10 = [0.0, 1.0, -2.0, 1.0];
    let h11 = [0.0, 0.0, -1.0, 1.0];
    let last = b.len() - 1;
    (0..b.len())
        .map(|i| padd(&padd(&pscale(&h01, b[i]), &pscale(&h10, delta(i, 0))), &pscale(&h11, delta(i, last))))
        .collect()
}

impl Solver {
    /// Whether the solver controls its step size.
    ///
    /// ```
    /// use cotangent::diffeq::Solver;
    /// assert!(Solver::Tsit5.is_adaptive() && !Solver::Rk4.is_adaptive());
    /// ```
    pub fn is_adaptive(self) -> bool {
        matches!(self, Solver::Bosh3 | Solver::Dopri5 | Solver::Tsit5 | Solver::Kvaerno3 | Solver::Kvaerno5)
    }

    /// Whether the solver is implicit (its stages solve nonlinear equations by Newton
    /// iterations): the choice for stiff problems.
    ///
    /// ```
    /// use cotangent::diffeq::Solver;
    /// assert!(Solver::Kvaerno5.is_implicit() && !Solver::Dopri5.is_implicit());
    /// // Its tableau holds the diagonal γ of each implicit stage.
    /// let t = Solver::Kvaerno3.tableau();
    /// assert_eq!(t.a[1].len(), 2);
    /// assert_eq!(t.a[1][1], t.a[3][3]);
    /// ```
    pub fn is_implicit(self) -> bool {
        matches!(self, Solver::Kvaerno3 | Solver::Kvaerno5)
    }

    /// The solver's Butcher tableau.
    ///
    /// ```
    /// use cotangent::diffeq::Solver;
    /// let t = Solver::Rk4.tableau();
    /// assert_eq!(t.order, 4);
    /// assert!((t.b.iter().sum::<f64>() - 1.0).abs() < 1e-15);
    /// ```
    pub fn tableau(self) -> Tableau {
        let sub = |b: &[f64], bh: &[f64]| Some(b.iter().zip(bh).map(|(x, y)| x - y).collect());
        match self {
            Solver::Euler => Tableau { c: vec![0.0], a: vec![vec![]], b: vec![1.0], e: None, order: 1, dense: None },
            Solver::Heun => Tableau {
                c: vec![0.0, 1.0],
                a: vec![vec![], vec![1.0]],
                b: vec![0.5, 0.5],
                e: None,
                order: 2,
                dense: None,
            },
            Solver::Midpoint => Tableau {
                c: vec![0.0, 0.5],
                a: vec![vec![], vec![0.5]],
                b: vec![0.0, 1.0],
                e: None,
                order: 2,
                dense: None,
            },
            Solver::Rk4 => Tableau {
                c: vec![0.0, 0.5, 0.5, 1.0],
                a: vec![vec![], vec![0.5], vec![0.0, 0.5], vec![0.0, 0.0, 1.0]],
                b: vec![1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0],
                e: None,
                order: 4,
                dense: None,
            },
            Solver::Bosh3 => {
                let b = [2.0 / 9.0, 1.0 / 3.0, 4.0 / 9.0, 0.0];
                Tableau {
                    c: vec![0.0, 0.5, 0.75, 1.0],
                    a: vec![vec![], vec![0.5], vec![0.0, 0.75], b[..3].to_vec()],
                    b: b.to_vec(),
                    e: sub(&b, &[7.0 / 24.0, 0.25, 1.0 / 3.0, 0.125]),
                    order: 3,
                    dense: Some(hermite_dense(&b)),
                }
            }
            Solver::Dopri5 => {
                let b = [35.0 / 384.0, 0.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0, 0.0];
                let bh = [
                    5179.0 / 57600.0,
                    0.0,
                    7571.0 / 16695.0,
                    393.0 / 640.0,
                    -92097.0 / 339200.0,
                    187.0 / 2100.0,
                    1.0 / 40.0,
                ];
                Tableau {
                    c: vec![0.0, 0.2, 0.3, 0.8, 8.0 / 9.0, 1.0, 1.0],
                    a: vec![
                        vec![],
                        vec![0.2],
                        vec![3.0 / 40.0, 9.0 / 40.0],
                        vec![44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0],
                        vec![19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0],
                        vec![9017.0 / 3168.0, -355.0 / 33.0, 46732.0 / 5247.0, 49.0 / 176.0, -5103.0 / 18656.0],
                        b[..6].to_vec(),
                    ],
                    b: b.to_vec(),
                    e: sub(&b, &bh),
                    order: 5,
                    dense: Some(dopri5_dense(&b)),
                }
            }
            Solver::Tsit5 => {
                let b = [
                    0.09646076681806523,
                    0.01,
                    0.4798896504144996,
                    1.379008574103742,
                    -3.290069515436081,
                    2.324710524099774,
                    0.0,
                ];
                Tableau {
                    c: vec![0.0, 0.161, 0.327, 0.9, 0.9800255409045097, 1.0, 1.0],
                    a: vec![
                        vec![],
                        vec![0.161],
                        vec![-0.008480655492356989, 0.335480655492357],
                        vec![2.897153057105493, -6.359448489975075, 4.3622954328695815],
                        vec![5.325864828439257, -11.748883564062828, 7.4955393428898365, -0.09249506636175525],
                        vec![
                            5.86145544294642,
                            -12.92096931784711,
                            8.159367898576159,
                            -0.071584973281401,
                            -0.028269050394068383,
                        ],
                        b[..6].to_vec(),
                    ],
                    b: b.to_vec(),
                    e: Some(vec![
                        -0.001_780_011_052_225_777,
                        -0.0008164344596567469,
                        0.007880878010261995,
                        -0.1447110071732629,
                        0.5823571654525552,
                        -0.45808210592918697,
                        1.0 / 66.0,
                    ]),
                    order: 5,
                    dense: Some(tsit5_dense()),
                }
            }
            Solver::Kvaerno3 => {
                // Kværnø (2004), in terms of γ, the root of 6γ³ - 18γ² + 9γ - 1 near 0.436.
                let g: f64 = 0.435_866_521_508_459;
                let a31 = (-4.0 * g * g + 6.0 * g - 1.0) / (4.0 * g);
                let a32 = (-2.0 * g + 1.0) / (4.0 * g);
                let a41 = (6.0 * g - 1.0) / (12.0 * g);
                let a42 = -1.0 / ((24.0 * g - 12.0) * g);
                let a43 = (-6.0 * g * g + 6.0 * g - 1.0) / (6.0 * g - 3.0);
                let b = [a41, a42, a43, g];
                Tableau {
                    c: vec![0.0, 2.0 * g, 1.0, 1.0],
                    a: vec![vec![], vec![g, g], vec![a31, a32, g], b.to_vec()],
                    b: b.to_vec(),
                    // The embedded solution is the third stage.
                    e: sub(&b, &[a31, a32, g, 0.0]),
                    order: 3,
                    dense: None,
                }
            }
            Solver::Kvaerno5 => {
                let g = 0.26;
                let r6 = [0.13855640231268224, 0.0, -0.04245337201752043, 0.02446657898003141, 0.6194303907248068, g];
                let b = [
                    0.13659751177640292,
                    0.0,
                    -0.05496908796538376,
                    -0.04118626728321046,
                    0.629933048990164,
                    0.06962479448202728,
                    g,
                ];
                Tableau {
                    c: vec![0.0, 0.52, 1.230333209967908, 0.8957659843500759, 0.43639360985864756, 1.0, 1.0],
                    a: vec![
                        vec![],
                        vec![g, g],
                        vec![0.13, 0.8403332099679081, g],
                        vec![0.22371961478320504, 0.476755323197997, -0.06470895363112615, g],
                        vec![0.16648564323248322, 0.1045001884159172, 0.03631482272098715, -0.13090704451073998, g],
                        r6.to_vec(),
                        b.to_vec(),
                    ],
                    b: b.to_vec(),
                    // The embedded solution is the sixth stage.
                    e: sub(&b, &[r6[0], r6[1], r6[2], r6[3], r6[4], r6[5], 0.0]),
                    order: 5,
                    dense: None,
                }
            }
        }
    }
}
