//! Backends that execute primitives on concrete data.

pub mod cpu;
