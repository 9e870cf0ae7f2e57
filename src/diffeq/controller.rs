//! The PID step-size controller of the adaptive solvers.

/// The PID step-size controller: after a step with scaled error norm `ε` (accepted when
/// `ε ≤ 1`) the next step is `dt · clamp(safety · ε⁻ᵝ¹ · ε₋₁⁻ᵝ² · ε₋₂⁻ᵝ³, factor_min, factor_max)`
/// with `β₁ = (p + i + d)/k`, `β₂ = -(p + 2d)/k`, `β₃ = d/k`, `k` = the solver's order + 1
/// (Söderlind's digital filters as diffrax writes them). The default `p = d = 0`, `i = 1` is
/// the classical controller; `p = 0.4, i = 0.3` is a good PI choice.
///
/// ```
/// use cotangent::diffeq::Pid;
/// assert_eq!(Pid::default().icoeff, 1.0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pid {
    /// Proportional coefficient.
    pub pcoeff: f64,
    /// Integral coefficient.
    pub icoeff: f64,
    /// Derivative coefficient.
    pub dcoeff: f64,
    /// Safety factor.
    pub safety: f64,
    /// Smallest factor a step may shrink by.
    pub factor_min: f64,
    /// Largest factor a step may grow by.
    pub factor_max: f64,
}

impl Default for Pid {
    fn default() -> Self {
        Pid { pcoeff: 0.0, icoeff: 1.0, dcoeff: 0.0, safety: 0.9, factor_min: 0.2, factor_max: 10.0 }
    }
}
