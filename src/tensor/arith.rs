//! Operator overloading: `+ - * / %` and unary `-` between tensors, references and numbers.
//!
//! Numbers (`f64` literals) take the dtype of the tensor they meet; tensors broadcast like numpy.
//! Only `f64` scalars are overloaded so that a literal like `2.0` never needs a suffix.

use super::elementwise::{binary, unary};
use crate::ops::{BinaryOp, UnaryOp};
use crate::Tensor;
use std::ops::{Add, Div, Mul, Neg, Rem, Sub};

macro_rules! tensor_ops {
    ($($tr:ident $m:ident $op:ident),*) => {$(
        impl $tr<&Tensor> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $m(self, rhs: &Tensor) -> Tensor { binary(BinaryOp::$op, self, rhs) }
        }
        impl $tr<Tensor> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $m(self, rhs: Tensor) -> Tensor { binary(BinaryOp::$op, self, &rhs) }
        }
        impl $tr<&Tensor> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $m(self, rhs: &Tensor) -> Tensor { binary(BinaryOp::$op, &self, rhs) }
        }
        impl $tr<Tensor> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $m(self, rhs: Tensor) -> Tensor { binary(BinaryOp::$op, &self, &rhs) }
        }
        scalar_ops!($tr $m $op; f64);
    )*};
}

macro_rules! scalar_ops {
    ($tr:ident $m:ident $op:ident; $($t:ty),*) => {$(
        impl $tr<$t> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $m(self, rhs: $t) -> Tensor { binary(BinaryOp::$op, self, &self.scalar_like(rhs as f64)) }
        }
        impl $tr<$t> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $m(self, rhs: $t) -> Tensor { binary(BinaryOp::$op, &self, &self.scalar_like(rhs as f64)) }
        }
        impl $tr<&Tensor> for $t {
            type Output = Tensor;
            #[track_caller]
            fn $m(self, rhs: &Tensor) -> Tensor { binary(BinaryOp::$op, &rhs.scalar_like(self as f64), rhs) }
        }
        impl $tr<Tensor> for $t {
            type Output = Tensor;
            #[track_caller]
            fn $m(self, rhs: Tensor) -> Tensor { binary(BinaryOp::$op, &rhs.scalar_like(self as f64), &rhs) }
        }
    )*};
}

tensor_ops!(Add add Add, Sub sub Sub, Mul mul Mul, Div div Div, Rem rem Rem);

impl Neg for &Tensor {
    type Output = Tensor;
    #[track_caller]
    fn neg(self) -> Tensor {
        unary(UnaryOp::Neg, self)
    }
}

impl Neg for Tensor {
    type Output = Tensor;
    #[track_caller]
    fn neg(self) -> Tensor {
        unary(UnaryOp::Neg, &self)
    }
}
