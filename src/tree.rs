//! Trees of tensors: how transformations take and return structured values.
//!
//! A [`Tree`] flattens to a list of [`Tensor`] leaves and rebuilds itself from
//! such a list, using `self` as the template for its structure. Tensors,
//! tuples (up to 6), arrays, `Vec`, `Option`, `BTreeMap<String, _>` and `()`
//! are trees; implement the trait by hand for your own types.
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

/// A value made of tensor leaves that transformations can flatten and rebuild.
pub trait Tree: Sized {
    /// Appends the leaves, in a fixed order, to `out`.
    fn flatten_into(&self, out: &mut Vec<Tensor>);

    /// Builds a value shaped like `self`, taking its leaves from `leaves` in order.
    fn rebuild(&self, leaves: &mut dyn Iterator<Item = Tensor>) -> Self;

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
    #[track_caller]
    fn rebuild(&self, leaves: &mut dyn Iterator<Item = Tensor>) -> Self {
        leaves.next().expect("Tree::rebuild: too few leaves")
    }
}

impl Tree for () {
    fn flatten_into(&self, _: &mut Vec<Tensor>) {}
    fn rebuild(&self, _: &mut dyn Iterator<Item = Tensor>) -> Self {}
}

impl<T: Tree> Tree for Vec<T> {
    fn flatten_into(&self, out: &mut Vec<Tensor>) {
        self.iter().for_each(|t| t.flatten_into(out));
    }
    fn rebuild(&self, leaves: &mut dyn Iterator<Item = Tensor>) -> Self {
        self.iter().map(|t| t.rebuild(leaves)).collect()
    }
}

impl<T: Tree, const N: usize> Tree for [T; N] {
    fn flatten_into(&self, out: &mut Vec<Tensor>) {
        self.iter().for_each(|t| t.flatten_into(out));
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
    fn rebuild(&self, leaves: &mut dyn Iterator<Item = Tensor>) -> Self {
        self.as_ref().map(|t| t.rebuild(leaves))
    }
}

impl<T: Tree> Tree for BTreeMap<String, T> {
    fn flatten_into(&self, out: &mut Vec<Tensor>) {
        self.values().for_each(|t| t.flatten_into(out));
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
