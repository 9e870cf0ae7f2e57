//! Trees of tensors: how transformations take and return structured values.
//!
//! A [`Tree`] flattens to a list of [`Tensor`] leaves and rebuilds itself from
//! such a list, using `self` as the template for its structure. Tensors,
//! tuples (up to 6), arrays, `Vec`, `Option`, `BTreeMap<String, _>` and `()`
//! are trees; for your own structs and enums, `#[derive(Tree)]` (see below) or
//! implement the trait by hand. Each leaf also has a dotted path
//! (`layers.0.weight`), which checkpoints use as its name.
//!
//! `#[derive(Tree)]` flattens fields in declaration order and names them by
//! field name (or index, for tuple structs). Enum variants contribute their
//! fields without the variant's name; a variant with one unnamed field is
//! transparent. Fields marked `#[tree(skip)]` (sizes, flags, configuration) are
//! not leaves: they are cloned into rebuilt values.
//!
//! ```
//! use cotangent::{Tensor, Tree};
//! #[derive(Clone, Tree)]
//! struct Dense {
//!     weight: Tensor,
//!     bias: Tensor,
//!     #[tree(skip)]
//!     width: usize,
//! }
//! #[derive(Clone, Tree)]
//! struct Net {
//!     layers: Vec<Dense>,
//! }
//! let d = Dense { weight: Tensor::scalar(1.0), bias: Tensor::scalar(0.0), width: 1 };
//! let net = Net { layers: vec![d.clone(), d] };
//! let names: Vec<String> = net.named_leaves().into_iter().map(|(n, _)| n).collect();
//! assert_eq!(names, ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"]);
//! ```
//!
//! ```
//! use cotangent::{Tensor, Tree};
//! let params = (Tensor::scalar(1.0), vec![Tensor::scalar(2.0), Tensor::scalar(3.0)]);
//! let leaves = params.leaves();
//! assert_eq!(leaves.len(), 3);
//! let doubled: Vec<Tensor> = leaves.iter().map(|t| t * 2.0).collect();
//! let rebuilt = params.rebuild_from(doubled);
//! assert_eq!(rebuilt.1[1].item::<f64>(), 6.0);
//! ```

use crate::Tensor;
use std::collections::BTreeMap;

/// Joins a parent path and a child name with a dot (no dot at the root).
///
/// ```
/// assert_eq!(cotangent::tree::join_path("", "w"), "w");
/// assert_eq!(cotangent::tree::join_path("layers.0", "w"), "layers.0.w");
/// ```
pub fn join_path(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// A value made of tensor leaves that transformations can flatten and rebuild.
pub trait Tree: Sized {
    /// Appends the leaves, in a fixed order, to `out`.
    fn flatten_into(&self, out: &mut Vec<Tensor>);

    /// Builds a value shaped like `self`, taking its leaves from `leaves` in order.
    fn rebuild(&self, leaves: &mut dyn Iterator<Item = Tensor>) -> Self;

    /// Appends each leaf with its path (`layers.0.weight`), in the order of
    /// [`Tree::flatten_into`]. `prefix` is the path of `self` (empty at the root).
    fn named_leaves_into(&self, prefix: &str, out: &mut Vec<(String, Tensor)>);

    /// Every leaf with its dotted path, in flattening order.
    ///
    /// ```
    /// use cotangent::{Tensor, Tree};
    /// let t = (Tensor::scalar(1.0), vec![Tensor::scalar(2.0)]);
    /// let names: Vec<String> = t.named_leaves().into_iter().map(|(n, _)| n).collect();
    /// assert_eq!(names, vec!["0", "1.0"]);
    /// ```
    fn named_leaves(&self) -> Vec<(String, Tensor)> {
        let mut v = Vec::new();
        self.named_leaves_into("", &mut v);
        v
    }

    /// The leaves as a vector.
    fn leaves(&self) -> Vec<Tensor> {
        let mut v = Vec::new();
        self.flatten_into(&mut v);
        v
    }

    /// Builds a value shaped like `self` from exactly its number of leaves.
    #[track_caller]
    fn rebuild_from(&self, leaves: Vec<Tensor>) -> Self {
        let n = leaves.len();
        let mut it = leaves.into_iter();
        let out = self.rebuild(&mut it);
        assert!(it.next().is_none(), "Tree::rebuild_from: {n} leaves given, the tree takes fewer");
        out
    }

    /// Applies `f` to every leaf.
    ///
    /// ```
    /// use cotangent::{Tensor, Tree};
    /// let t = (Tensor::scalar(1.0), Tensor::scalar(2.0)).map_leaves(|x| x * 10.0);
    /// assert_eq!(t.1.item::<f64>(), 20.0);
    /// ```
    fn map_leaves(&self, f: impl FnMut(&Tensor) -> Tensor) -> Self {
        self.rebuild_from(self.leaves().iter().map(f).collect())
    }
}

impl Tree for Tensor {
    fn flatten_into(&self, out: &mut Vec<Tensor>) {
        out.push(self.clone());
    }
    fn named_leaves_into(&self, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        out.push((prefix.to_string(), self.clone()));
    }
    #[track_caller]
    fn rebuild(&self, leaves: &mut dyn Iterator<Item = Tensor>) -> Self {
        leaves.next().expect("Tree::rebuild: too few leaves")
    }
}

impl Tree for () {
    fn flatten_into(&self, _: &mut Vec<Tensor>) {}
    fn named_leaves_into(&self, _: &str, _: &mut Vec<(String, Tensor)>) {}
    fn rebuild(&self, _: &mut dyn Iterator<Item = Tensor>) -> Self {}
}

/// Leaves of a sequence, in order.
fn flatten_seq<T: Tree>(items: &[T], out: &mut Vec<Tensor>) {
    items.iter().for_each(|t| t.flatten_into(out));
}

/// Named leaves of a sequence: element `i` is at `prefix.i`.
fn named_seq<T: Tree>(items: &[T], prefix: &str, out: &mut Vec<(String, Tensor)>) {
    for (i, t) in items.iter().enumerate() {
        t.named_leaves_into(&join_path(prefix, &i.to_string()), out);
    }
}

impl<T: Tree> Tree for Vec<T> {
    fn flatten_into(&self, out: &mut Vec<Tensor>) {
        flatten_seq(self, out);
    }
    fn named_leaves_into(&self, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        named_seq(self, prefix, out);
    }
    fn rebuild(&self, leaves: &mut dyn Iterator<Item = Tensor>) -> Self {
        self.iter().map(|t| t.rebuild(leaves)).collect()
    }
}

impl<T: Tree, const N: usize> Tree for [T; N] {
    fn flatten_into(&self, out: &mut Vec<Tensor>) {
        flatten_seq(self, out);
    }
    fn named_leaves_into(&self, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        named_seq(self, prefix, out);
    }
    fn rebuild(&self, leaves: &mut dyn Iterator<Item = Tensor>) -> Self {
        std::array::from_fn(|i| self[i].rebuild(leaves))
    }
}

impl<T: Tree> Tree for Option<T> {
    fn flatten_into(&self, out: &mut Vec<Tensor>) {
        if let Some(t) = self {
            t.flatten_into(out);
        }
    }
    fn named_leaves_into(&self, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        if let Some(t) = self {
            t.named_leaves_into(prefix, out);
        }
    }
    fn rebuild(&self, leaves: &mut dyn Iterator<Item = Tensor>) -> Self {
        self.as_ref().map(|t| t.rebuild(leaves))
    }
}

impl<T: Tree> Tree for BTreeMap<String, T> {
    fn flatten_into(&self, out: &mut Vec<Tensor>) {
        self.values().for_each(|t| t.flatten_into(out));
    }
    fn named_leaves_into(&self, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        for (k, t) in self {
            t.named_leaves_into(&join_path(prefix, k), out);
        }
    }
    fn rebuild(&self, leaves: &mut dyn Iterator<Item = Tensor>) -> Self {
        self.iter().map(|(k, t)| (k.clone(), t.rebuild(leaves))).collect()
    }
}

macro_rules! tuple_tree {
    ($($name:ident $idx:tt),+) => {
        impl<$($name: Tree),+> Tree for ($($name,)+) {
            fn flatten_into(&self, out: &mut Vec<Tensor>) {
                $(self.$idx.flatten_into(out);)+
            }
            fn named_leaves_into(&self, prefix: &str, out: &mut Vec<(String, Tensor)>) {
                $(self.$idx.named_leaves_into(&join_path(prefix, stringify!($idx)), out);)+
            }
            fn rebuild(&self, leaves: &mut dyn Iterator<Item = Tensor>) -> Self {
                ($(self.$idx.rebuild(leaves),)+)
            }
        }
    };
}
tuple_tree!(A 0);
tuple_tree!(A 0, B 1);
tuple_tree!(A 0, B 1, C 2);
tuple_tree!(A 0, B 1, C 2, D 3);
tuple_tree!(A 0, B 1, C 2, D 3, E 4);
tuple_tree!(A 0, B 1, C 2, D 3, E 4, F 5);

/// Flattens every leaf of a tree into one 1-d tensor (JAX's `ravel_pytree`), and returns the
/// function that rebuilds a tree of the same structure from such a vector. With it, the
/// tensor-to-tensor transformations (`jacfwd`, `jacrev`, `hessian`) apply to functions of
/// whole parameter trees. All leaves must share one dtype.
///
/// ```
/// use cotangent::{hessian, tree::ravel, Tensor};
/// let params = (Tensor::scalar(1.0), Tensor::from_vec(vec![2.0, 3.0], &[2]));
/// let (flat, unravel) = ravel(&params);
/// assert_eq!(flat.to_vec::<f64>(), vec![1.0, 2.0, 3.0]);
/// // The Hessian of a function of the tree, as a 3×3 matrix.
/// let f = |(a, b): &(Tensor, Tensor)| (a * b).sum_all();
/// let h = hessian(|v: &Tensor| f(&unravel(v)))(&flat);
/// assert_eq!(h.to_vec::<f64>(), vec![0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
/// ```
#[track_caller]
pub fn ravel<T: Tree>(tree: &T) -> (Tensor, impl Fn(&Tensor) -> T) {
    let leaves = tree.leaves();
    let template = tree.rebuild_from(leaves.clone());
    let shapes: Vec<Vec<usize>> = leaves.iter().map(|t| t.shape()).collect();
    if let Some(first) = leaves.first() {
        if let Some(bad) = leaves.iter().find(|t| t.dtype() != first.dtype()) {
            panic!("ravel: every leaf must have one dtype, got {} and {}", first.ty(), bad.ty());
        }
    }
    let flat = match leaves.len() {
        0 => Tensor::zeros(&[0], crate::DType::F64),
        _ => crate::concatenate(&leaves.iter().map(|t| t.flatten()).collect::<Vec<_>>(), 0),
    };
    let unravel = move |v: &Tensor| {
        let sizes: Vec<usize> = shapes.iter().map(|s| s.iter().product()).collect();
        let parts = if sizes.is_empty() { vec![] } else { v.split(&sizes, 0) };
        template.rebuild_from(parts.iter().zip(&shapes).map(|(p, s)| p.reshape_to(s)).collect())
    };
    (flat, unravel)
}
