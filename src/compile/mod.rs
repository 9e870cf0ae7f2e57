//! Compilation: optimisation passes on a [`Graph`](crate::ir::Graph) and lowering to a
//! [`Plan`] that the CPU backend runs with fused loops.

mod columns;
mod contract;
mod diagonal;
pub(crate) mod fxhash;
mod inline;
mod pads;
mod passes;
mod plan;
mod schedule;
mod single_iteration;
mod sink_transpose;

pub use passes::{dce, optimize};
pub use plan::Plan;
