//! Butcher tableaus of the explicit Runge–Kutta methods.

/// A Runge–Kutta method. The first four take fixed steps (`Options::dt0` is required); the
/// last three are embedded pairs with error control.
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
}

/// A Butcher tableau: `c`, the strictly lower `a` rows, weights `b`, and for embedded pairs
/// the error weights `e = b - b̂`.
#[derive(Clone, Debug)]
pub struct Tableau {
    /// Stage times.
    pub c: Vec<f64>,
    /// Row `i` holds `a[i][0..i]`.
    pub a: Vec<Vec<f64>>,
    /// Solution weights.
    pub b: Vec<f64>,
    /// Error weights `b - b̂` (adaptive methods only).
    pub e: Option<Vec<f64>>,
    /// Order of the solution.
    pub order: usize,
}

impl Solver {
    /// Whether the solver controls its step size.
    ///
    /// ```
    /// use cotangent::diffeq::Solver;
    /// assert!(Solver::Tsit5.is_adaptive() && !Solver::Rk4.is_adaptive());
    /// ```
    pub fn is_adaptive(self) -> bool {
        matches!(self, Solver::Bosh3 | Solver::Dopri5 | Solver::Tsit5)
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
            Solver::Euler => Tableau { c: vec![0.0], a: vec![vec![]], b: vec![1.0], e: None, order: 1 },
            Solver::Heun => {
                Tableau { c: vec![0.0, 1.0], a: vec![vec![], vec![1.0]], b: vec![0.5, 0.5], e: None, order: 2 }
            }
            Solver::Midpoint => {
                Tableau { c: vec![0.0, 0.5], a: vec![vec![], vec![0.5]], b: vec![0.0, 1.0], e: None, order: 2 }
            }
            Solver::Rk4 => Tableau {
                c: vec![0.0, 0.5, 0.5, 1.0],
                a: vec![vec![], vec![0.5], vec![0.0, 0.5], vec![0.0, 0.0, 1.0]],
                b: vec![1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0],
                e: None,
                order: 4,
            },
            Solver::Bosh3 => {
                let b = [2.0 / 9.0, 1.0 / 3.0, 4.0 / 9.0, 0.0];
                Tableau {
                    c: vec![0.0, 0.5, 0.75, 1.0],
                    a: vec![vec![], vec![0.5], vec![0.0, 0.75], b[..3].to_vec()],
                    b: b.to_vec(),
                    e: sub(&b, &[7.0 / 24.0, 0.25, 1.0 / 3.0, 0.125]),
                    order: 3,
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
                }
            }
        }
    }
}
