//! `#[derive(Tree)]`: flattening order, rebuilding, leaf paths, skipped fields, enums and generics.

use cotangent::{grad, io, DType, Tensor, Tree};

#[derive(Clone, Debug, Tree)]
struct Layer {
    weight: Tensor,
    bias: Option<Tensor>,
    #[tree(skip)]
    width: usize,
}

#[derive(Clone, Debug, Tree)]
struct Model {
    layers: Vec<Layer>,
    scale: Tensor,
    #[tree(skip)]
    name: String,
}

#[derive(Clone, Debug, Tree)]
struct Pair(Tensor, #[tree(skip)] f64, Tensor);

#[derive(Clone, Debug, Tree)]
struct Unit;

#[derive(Clone, Debug, Tree)]
enum Block {
    Dense(Layer),
    Scaled { factor: Tensor, inner: Layer },
    Twin(Tensor, Tensor),
    Nothing,
    Config(#[tree(skip)] u32),
}

#[derive(Clone, Debug, Tree)]
struct Wrapper<P> {
    params: P,
    step: Tensor,
}

/// `C` is only configuration: it needs Clone, not Tree.
#[derive(Clone, Debug, Tree)]
struct WithConfig<P, C> {
    params: Vec<P>,
    #[tree(skip)]
    config: C,
}

fn t(v: f64) -> Tensor {
    Tensor::scalar(v)
}

fn layer(w: f64, b: Option<f64>) -> Layer {
    Layer { weight: t(w), bias: b.map(t), width: 7 }
}

fn names<T: Tree>(x: &T) -> Vec<String> {
    x.named_leaves().into_iter().map(|(n, _)| n).collect()
}

fn values<T: Tree>(x: &T) -> Vec<f64> {
    x.leaves().iter().map(|l| l.item::<f64>()).collect()
}

#[test]
fn struct_leaves_names_and_rebuild() {
    let m = Model { layers: vec![layer(1.0, Some(2.0)), layer(3.0, None)], scale: t(4.0), name: "m".into() };
    assert_eq!(values(&m), vec![1.0, 2.0, 3.0, 4.0]);
    assert_eq!(names(&m), vec!["layers.0.weight", "layers.0.bias", "layers.1.weight", "scale"]);
    let doubled = m.map_leaves(|x| x * 2.0);
    assert_eq!(values(&doubled), vec![2.0, 4.0, 6.0, 8.0]);
    // Skipped fields are cloned into the rebuilt value.
    assert_eq!(doubled.name, "m");
    assert_eq!(doubled.layers[1].width, 7);
    assert!(doubled.layers[1].bias.is_none());
}

#[test]
fn tuple_struct_and_unit() {
    let p = Pair(t(1.0), 9.5, t(2.0));
    assert_eq!(names(&p), vec!["0", "2"]);
    let q = p.map_leaves(|x| x + 1.0);
    assert_eq!((q.0.item::<f64>(), q.1, q.2.item::<f64>()), (2.0, 9.5, 3.0));
    assert!(Unit.leaves().is_empty());
    let _: Unit = Unit.rebuild_from(vec![]);
}

#[test]
fn enum_variants() {
    let blocks = vec![
        Block::Dense(layer(1.0, Some(2.0))),
        Block::Scaled { factor: t(3.0), inner: layer(4.0, None) },
        Block::Twin(t(5.0), t(6.0)),
        Block::Nothing,
        Block::Config(3),
    ];
    // A single unnamed field is transparent; named fields by name; several unnamed by index.
    assert_eq!(names(&blocks), vec!["0.weight", "0.bias", "1.factor", "1.inner.weight", "2.0", "2.1"]);
    let back = blocks.rebuild_from(blocks.leaves().iter().map(|x| -x).collect());
    assert_eq!(values(&back), vec![-1.0, -2.0, -3.0, -4.0, -5.0, -6.0]);
    assert!(matches!(back[4], Block::Config(3)));
    assert!(matches!(back[3], Block::Nothing));
}

#[test]
fn generic_struct() {
    let w = Wrapper { params: (t(1.0), vec![t(2.0)]), step: Tensor::scalar(0i64) };
    assert_eq!(names(&w), vec!["params.0", "params.1.0", "step"]);
    let c = WithConfig { params: vec![t(1.0)], config: String::from("cfg") };
    let c2 = c.map_leaves(|x| x * 3.0);
    assert_eq!((values(&c2), c2.config.as_str()), (vec![3.0], "cfg"));
}

#[test]
fn derived_trees_work_with_grad_and_io() {
    let m = Model { layers: vec![layer(1.5, Some(-0.5))], scale: t(2.0), name: "x".into() };
    let g = grad(|m: &Model| {
        let l = &m.layers[0];
        (&l.weight * &l.weight * &m.scale + l.bias.as_ref().unwrap()).sum_all()
    })(&m);
    assert_eq!(values(&g), vec![6.0, 1.0, 2.25]);
    let bytes = io::to_bytes(&m).unwrap();
    let zero = m.map_leaves(|x| x.zeros_like());
    let back = io::from_bytes(&zero, &bytes).unwrap();
    assert_eq!(values(&back), values(&m));
    assert_eq!(back.layers[0].weight.dtype(), DType::F64);
}
