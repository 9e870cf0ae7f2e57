//! Structural primitives on known values: reshape, broadcast, transpose,
//! expand/squeeze, slice, index, pad, concatenate/stack/split, flip, iota, cast.

mod common;
use common::*;
use cotangent::{concatenate, stack, DType, Tensor};

const ALL: [DType; 5] = [DType::F32, DType::F64, DType::I32, DType::I64, DType::Bool];
const NUMERIC: [DType; 4] = [DType::F32, DType::F64, DType::I32, DType::I64];

/// `0..n` in `shape`, as `dtype`.
fn iota_t(shape: &[usize], dtype: DType) -> Tensor {
    iota64(shape).cast(dtype)
}

fn vals(t: &Tensor) -> Vec<f64> {
    t.to_f64_vec()
}

fn range(n: usize) -> Vec<f64> {
    (0..n).map(|i| i as f64).collect()
}

#[test]
fn reshape_and_flatten() {
    for dtype in NUMERIC {
        let x = iota_t(&[2, 3, 4], dtype);
        for (spec, shape) in [
            (vec![6, 4], vec![6, 4]),
            (vec![-1], vec![24]),
            (vec![4, -1], vec![4, 6]),
            (vec![2, -1, 3], vec![2, 4, 3]),
            (vec![1, 24, 1], vec![1, 24, 1]),
        ] {
            let y = x.reshape(&spec);
            assert_exact("reshape", &y, dtype, &shape, &range(24));
        }
        assert_exact("flatten", &x.flatten(), dtype, &[24], &range(24));
        assert_exact("reshape_to", &x.reshape_to(&[3, 8]), dtype, &[3, 8], &range(24));
    }
    // 0-d <-> [1] <-> [1, 1].
    let s = Tensor::scalar(5i32);
    assert_eq!(s.reshape(&[1, 1]).shape(), vec![1, 1]);
    assert_eq!(s.reshape(&[-1]).shape(), vec![1]);
    assert_eq!(s.reshape(&[1, 1]).reshape(&[]).shape(), Vec::<usize>::new());
    assert_eq!(s.flatten().to_vec::<i32>(), vec![5]);
    // Empty tensors.
    let e = f64t(&[], &[0, 3]);
    assert_eq!(e.reshape(&[3, 0]).shape(), vec![3, 0]);
    assert_eq!(e.reshape(&[-1, 3]).shape(), vec![0, 3]);
    assert_eq!(e.flatten().shape(), vec![0]);
    let b = Tensor::from_vec(vec![true, false, true, true], &[4]);
    assert_eq!(b.reshape(&[2, -1]).to_vec::<bool>(), vec![true, false, true, true]);
}

#[test]
fn broadcast_to_and_broadcast_in_dim() {
    for dtype in ALL {
        let x = iota_t(&[3], dtype);
        let v = vals(&x);
        let y = x.broadcast_to(&[2, 3]);
        assert_exact("[3]->[2,3]", &y, dtype, &[2, 3], &[v.clone(), v.clone()].concat());
        let col = x.reshape(&[3, 1]);
        let want: Vec<f64> = v.iter().flat_map(|&a| [a; 4]).collect();
        assert_exact("[3,1]->[3,4]", &col.broadcast_to(&[3, 4]), dtype, &[3, 4], &want);
        let want2: Vec<f64> = [want.clone(), want.clone()].concat();
        assert_exact("[3,1]->[2,3,4]", &col.broadcast_to(&[2, 3, 4]), dtype, &[2, 3, 4], &want2);
        // 0-d to anything.
        let s = x.index(1);
        assert_exact("0-d->[2,2]", &s.broadcast_to(&[2, 2]), dtype, &[2, 2], &[v[1]; 4]);
        assert_exact("0-d->[]", &s.broadcast_to(&[]), dtype, &[], &[v[1]]);
        // Extent 1 to extent 0.
        assert_exact("[1]->[0]", &x.index(0).reshape(&[1]).broadcast_to(&[0]), dtype, &[0], &[]);
        assert_exact("[3]->[0,3]", &x.broadcast_to(&[0, 3]), dtype, &[0, 3], &[]);
        // broadcast_in_dim places operand axes anywhere.
        let y = x.broadcast_in_dim(&[3, 2], &[0]);
        let want: Vec<f64> = v.iter().flat_map(|&a| [a; 2]).collect();
        assert_exact("bid [3]->[3,2] dims [0]", &y, dtype, &[3, 2], &want);
        let y = x.broadcast_in_dim(&[2, 3, 2], &[1]);
        let one: Vec<f64> = v.iter().flat_map(|&a| [a; 2]).collect();
        assert_exact("bid [3]->[2,3,2] dims [1]", &y, dtype, &[2, 3, 2], &[one.clone(), one].concat());
    }
    let m = iota64(&[2, 3]);
    // [2,3] -> [2,4,3] with dims [0,2].
    let y = m.broadcast_in_dim(&[2, 4, 3], &[0, 2]);
    let mut want = vec![];
    for i in 0..2 {
        for _ in 0..4 {
            for k in 0..3 {
                want.push((i * 3 + k) as f64);
            }
        }
    }
    assert_exact("bid [2,3]->[2,4,3]", &y, DType::F64, &[2, 4, 3], &want);
    // [2,1] -> [2,5] with dims [0,1]: the extent-1 axis repeats.
    let y = f64t(&[7.0, 8.0], &[2, 1]).broadcast_in_dim(&[2, 5], &[0, 1]);
    assert_exact("bid [2,1]->[2,5]", &y, DType::F64, &[2, 5], &[[7.0; 5], [8.0; 5]].concat());
    // Identity.
    assert_exact("bid id", &m.broadcast_in_dim(&[2, 3], &[0, 1]), DType::F64, &[2, 3], &range(6));
}

/// `x[i,j,k]` of an iota [2,3,4] tensor.
fn at234(i: usize, j: usize, k: usize) -> f64 {
    (i * 12 + j * 4 + k) as f64
}

#[test]
fn permutations() {
    for dtype in ALL {
        let x = iota_t(&[2, 3, 4], dtype);
        let conv = |v: f64| {
            if dtype == DType::Bool {
                (v != 0.0) as u8 as f64
            } else {
                v
            }
        };
        // permute [2, 0, 1]: y[k, i, j] = x[i, j, k].
        let mut want = vec![];
        for k in 0..4 {
            for i in 0..2 {
                for j in 0..3 {
                    want.push(conv(at234(i, j, k)));
                }
            }
        }
        assert_exact("permute", &x.permute(&[2, 0, 1]), dtype, &[4, 2, 3], &want);
        assert_exact("permute neg", &x.permute(&[-1, -3, 1]), dtype, &[4, 2, 3], &want);
        // t: y[k, j, i] = x[i, j, k].
        let mut want = vec![];
        for k in 0..4 {
            for j in 0..3 {
                for i in 0..2 {
                    want.push(conv(at234(i, j, k)));
                }
            }
        }
        assert_exact("t", &x.t(), dtype, &[4, 3, 2], &want);
        assert_exact("swap 0,-1", &x.swap_axes(0, -1), dtype, &[4, 3, 2], &want);
        // swap_axes(1, 2): y[i, k, j].
        let mut want = vec![];
        for i in 0..2 {
            for k in 0..4 {
                for j in 0..3 {
                    want.push(conv(at234(i, j, k)));
                }
            }
        }
        assert_exact("swap 1,2", &x.swap_axes(1, 2), dtype, &[2, 4, 3], &want);
        assert_exact("moveaxis -1,1", &x.moveaxis(-1, 1), dtype, &[2, 4, 3], &want);
        // moveaxis(0, -1): y[j, k, i].
        let mut want = vec![];
        for j in 0..3 {
            for k in 0..4 {
                for i in 0..2 {
                    want.push(conv(at234(i, j, k)));
                }
            }
        }
        assert_exact("moveaxis 0,-1", &x.moveaxis(0, -1), dtype, &[3, 4, 2], &want);
        assert_exact("permute id", &x.permute(&[0, 1, 2]), dtype, &[2, 3, 4], &vals(&x));
    }
    // 2-d transpose, 1-d and 0-d t.
    let m = iota64(&[2, 3]);
    assert_exact("t 2-d", &m.t(), DType::F64, &[3, 2], &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    assert_exact("t 1-d", &iota64(&[3]).t(), DType::F64, &[3], &range(3));
    assert_exact("t 0-d", &Tensor::scalar(1.0).t(), DType::F64, &[], &[1.0]);
    // Empty.
    assert_eq!(f64t(&[], &[2, 0, 3]).permute(&[2, 0, 1]).shape(), vec![3, 2, 0]);
    assert_eq!(f64t(&[], &[0, 3]).t().shape(), vec![3, 0]);
}

#[test]
fn expand_dims_and_squeeze() {
    let x = iota64(&[2, 3]);
    for (axis, shape) in [
        (0, vec![1, 2, 3]),
        (1, vec![2, 1, 3]),
        (2, vec![2, 3, 1]),
        (-1, vec![2, 3, 1]),
        (-2, vec![2, 1, 3]),
        (-3, vec![1, 2, 3]),
    ] {
        assert_exact("expand_dims", &x.expand_dims(axis), DType::F64, &shape, &range(6));
    }
    assert_eq!(Tensor::scalar(1.0).expand_dims(0).shape(), vec![1]);
    assert_eq!(Tensor::scalar(1.0).expand_dims(-1).shape(), vec![1]);
    assert_eq!(f64t(&[], &[0]).expand_dims(0).shape(), vec![1, 0]);
    let y = iota64(&[1, 2, 1, 3, 1]);
    assert_exact("squeeze all", &y.squeeze(&[]), DType::F64, &[2, 3], &range(6));
    assert_exact("squeeze 0", &y.squeeze(&[0]), DType::F64, &[2, 1, 3, 1], &range(6));
    assert_exact("squeeze -1,2", &y.squeeze(&[-1, 2]), DType::F64, &[1, 2, 3], &range(6));
    assert_exact("squeeze to 0-d", &f64t(&[4.0], &[1, 1]).squeeze(&[]), DType::F64, &[], &[4.0]);
    assert_eq!(f64t(&[], &[1, 0]).squeeze(&[]).shape(), vec![0]);
    let b = Tensor::from_vec(vec![true], &[1]);
    assert!(b.squeeze(&[0]).item::<bool>());
}

#[test]
fn strided_slices() {
    for dtype in NUMERIC {
        let x = iota_t(&[4, 5], dtype);
        // Rows 1..4 step 2, columns 0..5 step 2.
        let y = x.slice(&[1, 0], &[4, 5], &[2, 2]);
        assert_exact("slice strided", &y, dtype, &[2, 3], &[5.0, 7.0, 9.0, 15.0, 17.0, 19.0]);
        // Stride larger than the extent.
        let y = x.slice(&[0, 1], &[4, 5], &[10, 3]);
        assert_exact("slice big stride", &y, dtype, &[1, 2], &[1.0, 4.0]);
        // Empty windows.
        assert_exact("slice empty", &x.slice(&[2, 0], &[2, 5], &[1, 1]), dtype, &[0, 5], &[]);
        assert_exact("slice at end", &x.slice(&[4, 5], &[4, 5], &[1, 1]), dtype, &[0, 0], &[]);
        // Whole tensor.
        assert_exact("slice all", &x.slice(&[0, 0], &[4, 5], &[1, 1]), dtype, &[4, 5], &range(20));
    }
    // 3-d with strides on every axis.
    let x = iota64(&[2, 3, 4]);
    let y = x.slice(&[1, 0, 1], &[2, 3, 4], &[1, 2, 2]);
    assert_exact("slice 3-d", &y, DType::F64, &[1, 2, 2], &[13.0, 15.0, 21.0, 23.0]);
    // 0-d: the only slice is the whole tensor.
    assert_exact("slice 0-d", &Tensor::scalar(3.0).slice(&[], &[], &[]), DType::F64, &[], &[3.0]);
    let b = Tensor::from_vec(vec![true, false, true, false], &[4]);
    assert_eq!(b.slice(&[0], &[4], &[2]).to_vec::<bool>(), vec![true, true]);
}

#[test]
fn slice_axis_is_python_style() {
    let x = iota64(&[6]);
    let cases: [(isize, isize, usize, &[f64]); 9] = [
        (1, 4, 1, &[1.0, 2.0, 3.0]),
        (1, -1, 1, &[1.0, 2.0, 3.0, 4.0]),
        (-3, 6, 1, &[3.0, 4.0, 5.0]),
        (0, 6, 2, &[0.0, 2.0, 4.0]),
        (1, 6, 2, &[1.0, 3.0, 5.0]),
        (-100, 100, 3, &[0.0, 3.0]),
        (4, 2, 1, &[]),
        (6, 6, 1, &[]),
        (-1, 6, 1, &[5.0]),
    ];
    for (start, stop, step, want) in cases {
        let y = x.slice_axis(0, start, stop, step);
        assert_exact(&format!("slice_axis {start}..{stop}:{step}"), &y, DType::F64, &[want.len()], want);
    }
    let m = iota64(&[3, 4]);
    let y = m.slice_axis(-1, 1, 3, 1);
    assert_exact("slice_axis -1", &y, DType::F64, &[3, 2], &[1.0, 2.0, 5.0, 6.0, 9.0, 10.0]);
    let y = m.slice_axis(0, -2, 3, 1).to_vec::<f64>();
    assert_eq!(y, vec![4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0]);
}

#[test]
fn index_and_split() {
    let x = iota64(&[3, 2]);
    assert_exact("index 0", &x.index(0), DType::F64, &[2], &[0.0, 1.0]);
    assert_exact("index -1", &x.index(-1), DType::F64, &[2], &[4.0, 5.0]);
    assert_exact("index 1-d", &iota64(&[4]).index(2), DType::F64, &[], &[2.0]);
    let y = iota64(&[2, 3, 4]).index(1).index(-1);
    assert_exact("index twice", &y, DType::F64, &[4], &[20.0, 21.0, 22.0, 23.0]);
    let i = Tensor::from_vec(vec![5i64, 6, 7], &[3]);
    assert_eq!(i.index(-3).item::<i64>(), 5);
    // split: sizes along an axis.
    for dtype in ALL {
        let m = iota_t(&[2, 5], dtype);
        let v = vals(&m);
        let parts = m.split(&[2, 0, 3], -1);
        assert_eq!(parts.len(), 3);
        assert_exact("split a", &parts[0], dtype, &[2, 2], &[v[0], v[1], v[5], v[6]]);
        assert_exact("split b", &parts[1], dtype, &[2, 0], &[]);
        assert_exact("split c", &parts[2], dtype, &[2, 3], &[v[2], v[3], v[4], v[7], v[8], v[9]]);
        let rows = m.split(&[1, 1], 0);
        assert_exact("split rows", &rows[1], dtype, &[1, 5], &v[5..]);
        // And concatenate undoes it.
        assert_exact("concat(split)", &concatenate(&parts, 1), dtype, &[2, 5], &v);
    }
}

#[test]
fn pad_low_high_interior() {
    for dtype in NUMERIC {
        let x = iota_t(&[3], dtype).add(1.0); // [1, 2, 3]
        let p = |lo: i64, hi: i64, int: usize| x.pad(&[lo], &[hi], &[int], 9.0);
        assert_exact("pad 2,1", &p(2, 1, 0), dtype, &[6], &[9.0, 9.0, 1.0, 2.0, 3.0, 9.0]);
        assert_exact("pad 0,0", &p(0, 0, 0), dtype, &[3], &[1.0, 2.0, 3.0]);
        assert_exact("pad interior", &p(0, 0, 2), dtype, &[7], &[1.0, 9.0, 9.0, 2.0, 9.0, 9.0, 3.0]);
        assert_exact("pad all", &p(1, 2, 1), dtype, &[8], &[9.0, 1.0, 9.0, 2.0, 9.0, 3.0, 9.0, 9.0]);
        // Negative padding crops.
        assert_exact("crop low", &p(-1, 0, 0), dtype, &[2], &[2.0, 3.0]);
        assert_exact("crop high", &p(0, -2, 0), dtype, &[1], &[1.0]);
        assert_exact("crop both", &p(-1, -1, 0), dtype, &[1], &[2.0]);
        assert_exact("crop all", &p(-2, -1, 0), dtype, &[0], &[]);
        // Crop into the interior padding.
        assert_exact("crop interior", &p(-1, -1, 1), dtype, &[3], &[9.0, 2.0, 9.0]);
        assert_exact("crop + pad", &p(-2, 2, 1), dtype, &[5], &[2.0, 9.0, 3.0, 9.0, 9.0]);
        assert_exact("pad + crop", &p(1, -3, 1), dtype, &[3], &[9.0, 1.0, 9.0]);
    }
    // 2-d, different padding per axis.
    let x = iota64(&[2, 2]).add(1.0); // [[1, 2], [3, 4]]
    let y = x.pad(&[1, 0], &[0, 1], &[0, 1], 0.0);
    assert_exact("pad 2-d", &y, DType::F64, &[3, 4], &[0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 2.0, 0.0, 3.0, 0.0, 4.0, 0.0]);
    let y = x.pad(&[-1, 1], &[1, -1], &[0, 0], -1.0);
    assert_exact("pad 2-d crop", &y, DType::F64, &[2, 2], &[-1.0, 3.0, -1.0, -1.0]);
    // Padding empty and 0-d tensors.
    assert_exact("pad empty", &f64t(&[], &[0]).pad(&[1], &[2], &[3], 5.0), DType::F64, &[3], &[5.0; 3]);
    let y = f32t(&[], &[2, 0]).pad(&[0, 1], &[0, 1], &[0, 0], 1.0);
    assert_exact("pad [2,0]", &y, DType::F32, &[2, 2], &[1.0; 4]);
    assert_exact("pad 0-d", &Tensor::scalar(2.0).pad(&[], &[], &[], 0.0), DType::F64, &[], &[2.0]);
    // Bool, and a tensor-valued padding value.
    let b = Tensor::from_vec(vec![true, true], &[2]);
    assert_eq!(b.pad(&[1], &[0], &[1], 0.0).to_vec::<bool>(), vec![false, true, false, true]);
    let y = f64t(&[1.0, 2.0], &[2]).pad_with(&[0], &[1], &[0], &Tensor::scalar(7.5));
    assert_exact("pad_with", &y, DType::F64, &[3], &[1.0, 2.0, 7.5]);
}

#[test]
fn concatenate_and_stack() {
    for dtype in ALL {
        let a = iota_t(&[2, 2], dtype);
        let b = iota_t(&[2, 3], dtype);
        let (va, vb) = (vals(&a), vals(&b));
        let y = concatenate(&[a.clone(), b.clone()], 1);
        let want = [&va[0..2], &vb[0..3], &va[2..4], &vb[3..6]].concat();
        assert_exact("concat 1", &y, dtype, &[2, 5], &want);
        assert_exact("concat -1", &concatenate(&[a.clone(), b.clone()], -1), dtype, &[2, 5], &want);
        let c = iota_t(&[1, 2], dtype);
        let y = concatenate(&[a.clone(), c.clone(), a.clone()], 0);
        let want = [va.clone(), vals(&c), va.clone()].concat();
        assert_exact("concat 0", &y, dtype, &[5, 2], &want);
        // Empty operands contribute nothing.
        let e = iota_t(&[0, 2], dtype);
        assert_exact("concat empty", &concatenate(&[e.clone(), a.clone(), e.clone()], 0), dtype, &[2, 2], &va);
        assert_exact("concat all empty", &concatenate(&[e.clone(), e], 0), dtype, &[0, 2], &[]);
        // A single operand.
        assert_exact("concat one", &concatenate(std::slice::from_ref(&a), 0), dtype, &[2, 2], &va);
        // stack: a new axis.
        let s0 = stack(&[a.clone(), a.clone()], 0);
        assert_exact("stack 0", &s0, dtype, &[2, 2, 2], &[va.clone(), va.clone()].concat());
        let p = iota_t(&[3], dtype);
        let q = iota_t(&[3], dtype).flip(&[0]);
        let (vp, vq) = (vals(&p), vals(&q));
        let want: Vec<f64> = (0..3).flat_map(|i| [vp[i], vq[i]]).collect();
        assert_exact("stack 1", &stack(&[p.clone(), q.clone()], 1), dtype, &[3, 2], &want);
        assert_exact("stack -1", &stack(&[p.clone(), q.clone()], -1), dtype, &[3, 2], &want);
        assert_exact("stack -2", &stack(&[p.clone(), q.clone()], -2), dtype, &[2, 3], &[vp, vq].concat());
    }
    // 0-d tensors stack into a vector.
    let s = stack(&[Tensor::scalar(1.0), Tensor::scalar(2.0), Tensor::scalar(3.0)], 0);
    assert_exact("stack 0-d", &s, DType::F64, &[3], &[1.0, 2.0, 3.0]);
    // Middle axis of a 3-d concatenation.
    let a = iota64(&[2, 1, 2]);
    let b = iota64(&[2, 2, 2]).add(100.0);
    let y = concatenate(&[a, b], 1);
    let want = [0.0, 1.0, 100.0, 101.0, 102.0, 103.0, 2.0, 3.0, 104.0, 105.0, 106.0, 107.0];
    assert_exact("concat mid", &y, DType::F64, &[2, 3, 2], &want);
}

#[test]
fn flip_axes() {
    for dtype in ALL {
        let x = iota_t(&[2, 3], dtype);
        let v = vals(&x);
        let pick = |idx: &[usize]| idx.iter().map(|&i| v[i]).collect::<Vec<_>>();
        assert_exact("flip 0", &x.flip(&[0]), dtype, &[2, 3], &pick(&[3, 4, 5, 0, 1, 2]));
        assert_exact("flip -1", &x.flip(&[-1]), dtype, &[2, 3], &pick(&[2, 1, 0, 5, 4, 3]));
        assert_exact("flip both", &x.flip(&[1, 0]), dtype, &[2, 3], &pick(&[5, 4, 3, 2, 1, 0]));
        assert_exact("flip none", &x.flip(&[]), dtype, &[2, 3], &v);
    }
    assert_exact("flip empty", &f64t(&[], &[0, 2]).flip(&[0, 1]), DType::F64, &[0, 2], &[]);
    assert_exact("flip len 1", &f64t(&[3.0], &[1]).flip(&[0]), DType::F64, &[1], &[3.0]);
    let y = iota64(&[2, 2, 2]).flip(&[1]);
    assert_exact("flip 3-d", &y, DType::F64, &[2, 2, 2], &[2.0, 3.0, 0.0, 1.0, 6.0, 7.0, 4.0, 5.0]);
}

#[test]
fn iota_in_every_numeric_dtype() {
    for dtype in NUMERIC {
        assert_exact("iota 1-d", &Tensor::iota(&[4], 0, dtype), dtype, &[4], &range(4));
        let y = Tensor::iota(&[2, 3], 0, dtype);
        assert_exact("iota dim 0", &y, dtype, &[2, 3], &[0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
        let y = Tensor::iota(&[2, 3], 1, dtype);
        assert_exact("iota dim 1", &y, dtype, &[2, 3], &[0.0, 1.0, 2.0, 0.0, 1.0, 2.0]);
        let y = Tensor::iota(&[2, 2, 2], 1, dtype);
        assert_exact("iota 3-d", &y, dtype, &[2, 2, 2], &[0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]);
        assert_exact("iota empty", &Tensor::iota(&[0, 3], 1, dtype), dtype, &[0, 3], &[]);
        assert_exact("iota empty dim", &Tensor::iota(&[2, 0], 1, dtype), dtype, &[2, 0], &[]);
    }
}

#[test]
fn cast_between_all_dtypes() {
    let src = [-2.7, -1.0, -0.5, 0.0, 0.5, 1.0, 2.7, 300.0];
    // Expected per target dtype, from the f64 source: `as` semantics.
    let expect = |to: DType, v: f64| -> f64 {
        match to {
            DType::F32 => v as f32 as f64,
            DType::F64 => v,
            DType::I32 => v as i32 as f64,
            DType::I64 => v as i64 as f64,
            DType::Bool => (v != 0.0) as u8 as f64,
        }
    };
    for from in ALL {
        let x = f64t(&src, &[2, 4]).cast(from);
        let xv = vals(&x);
        for to in ALL {
            let y = x.cast(to);
            let want: Vec<f64> = xv.iter().map(|&v| expect(to, v)).collect();
            assert_exact(&format!("cast {from} -> {to}"), &y, to, &[2, 4], &want);
            // 0-d and empty casts keep their shape.
            assert_eq!(x.index(0).index(0).cast(to).shape(), Vec::<usize>::new());
            assert_eq!(x.slice_axis(0, 0, 0, 1).cast(to).shape(), vec![0, 4]);
        }
    }
    // Specific values: truncation toward zero, bools as 0/1, rounding to f32,
    // i64 -> i32 wraps, NaN is true as bool, float -> int saturates.
    assert_eq!(f64t(&[-2.7, 2.7], &[2]).cast(DType::I32).to_vec::<i32>(), vec![-2, 2]);
    assert_eq!(Tensor::from_vec(vec![true, false], &[2]).cast(DType::F32).to_vec::<f32>(), vec![1.0, 0.0]);
    assert_eq!(Tensor::scalar(0.1).cast(DType::F32).item::<f32>(), 0.1f32);
    assert_eq!(Tensor::scalar(0.1f32).cast(DType::F64).item::<f64>(), 0.1f32 as f64);
    assert_eq!(Tensor::scalar((1i64 << 32) + 5).cast(DType::I32).item::<i32>(), 5);
    assert_eq!(Tensor::scalar(-1i32).cast(DType::I64).item::<i64>(), -1);
    assert_eq!(Tensor::scalar(i64::MAX).cast(DType::F64).item::<f64>(), 9.223372036854776e18);
    assert!(Tensor::scalar(f64::NAN).cast(DType::Bool).item::<bool>());
    assert!(!Tensor::scalar(-0.0f32).cast(DType::Bool).item::<bool>());
    assert_eq!(Tensor::scalar(1e20).cast(DType::I32).item::<i32>(), i32::MAX);
    assert_eq!(Tensor::scalar(f64::NEG_INFINITY).cast(DType::I64).item::<i64>(), i64::MIN);
    assert!(Tensor::scalar(2i32).cast(DType::Bool).item::<bool>());
    assert_eq!(Tensor::scalar(1e40).cast(DType::F32).item::<f32>(), f32::INFINITY);
}

#[test]
fn constructors() {
    assert_exact("arange", &Tensor::arange(0.0, 5.0, 2.0, DType::I32), DType::I32, &[3], &[0.0, 2.0, 4.0]);
    assert_exact("arange neg", &Tensor::arange(3.0, 0.0, -1.0, DType::F64), DType::F64, &[3], &[3.0, 2.0, 1.0]);
    assert_exact("arange empty", &Tensor::arange(3.0, 0.0, 1.0, DType::F32), DType::F32, &[0], &[]);
    assert_exact(
        "linspace",
        &Tensor::linspace(-1.0, 1.0, 5, DType::F32),
        DType::F32,
        &[5],
        &[-1.0, -0.5, 0.0, 0.5, 1.0],
    );
    assert_exact("linspace 1", &Tensor::linspace(2.0, 3.0, 1, DType::F64), DType::F64, &[1], &[2.0]);
    assert_exact("eye", &Tensor::eye(2, DType::I64), DType::I64, &[2, 2], &[1.0, 0.0, 0.0, 1.0]);
    assert_exact("full", &Tensor::full(&[2, 0], 3.0, DType::F32), DType::F32, &[2, 0], &[]);
    assert_exact("ones 0-d", &Tensor::ones(&[], DType::Bool), DType::Bool, &[], &[1.0]);
    let x = f32t(&[1.0, 2.0], &[2]);
    assert_exact("zeros_like", &x.zeros_like(), DType::F32, &[2], &[0.0, 0.0]);
    assert_exact("ones_like", &x.ones_like(), DType::F32, &[2], &[1.0, 1.0]);
    assert_exact("scalar_like", &x.scalar_like(2.5), DType::F32, &[], &[2.5]);
    assert!(Tensor::try_from_vec(vec![1.0; 6], &[2, 3]).is_ok());
    assert!(Tensor::try_from_vec(vec![0i32; 0], &[2, 0]).is_ok());
}
