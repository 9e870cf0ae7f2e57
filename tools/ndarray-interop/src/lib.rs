//! Holds no code: the tests in `tests/` exercise cotangent with its `ndarray` feature on.
