//! 2-D convolution and pooling on `NCHW` tensors, built from linear primitives.
//!
//! A convolution is written as padding, strided slices (one per kernel tap)
//! and one `dot_general` that contracts channels and taps, batched over
//! groups. Every piece is linear with known transpose and batching rules, so
//! gradients with respect to the input and the weight, higher derivatives and
//! `vmap` all come from the primitives — no convolution-specific rule exists.
//! Pooling takes the same windows and reduces them with `max` or `sum`.

use super::{fans, Init};
use crate::{concatenate, dot_general, DType, Tensor, Tree};

/// Windows of `x` (`[n, c, h, w]`): `[n, c, kh·kw, ho, wo]`, tap-major, after padding with
/// `pad_value`.
#[track_caller]
fn windows(
    x: &Tensor,
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
    dilation: (usize, usize),
    pad_value: f64,
) -> (Tensor, usize, usize) {
    let s = x.shape();
    let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
    let (kh, kw) = kernel;
    let (sh, sw) = stride;
    let (ph, pw) = padding;
    let (dh, dw) = dilation;
    assert!(
        kh > 0 && kw > 0 && sh > 0 && sw > 0 && dh > 0 && dw > 0,
        "conv/pool: kernel, stride and dilation must be positive, got kernel {kernel:?}, \
         stride {stride:?}, dilation {dilation:?}"
    );
    let (hp, wp) = (h + 2 * ph, w + 2 * pw);
    let (eh, ew) = (dh * (kh - 1) + 1, dw * (kw - 1) + 1);
    assert!(hp >= eh && wp >= ew, "conv/pool: the padded input {hp}x{wp} is smaller than the dilated kernel {eh}x{ew}");
    let (ho, wo) = ((hp - eh) / sh + 1, (wp - ew) / sw + 1);
    let xp = if ph > 0 || pw > 0 {
        let p = [0, 0, ph as i64, pw as i64];
        x.pad(&p, &p, &[0; 4], pad_value)
    } else {
        x.clone()
    };
    let mut taps = Vec::with_capacity(kh * kw);
    for i in 0..kh {
        for j in 0..kw {
            let (r, q) = (i * dh, j * dw);
            let t = xp.slice(&[0, 0, r, q], &[n, c, r + (ho - 1) * sh + 1, q + (wo - 1) * sw + 1], &[1, 1, sh, sw]);
            taps.push(t.reshape_to(&[n, c, 1, ho, wo]));
        }
    }
    (concatenate(&taps, 2), ho, wo)
}

/// Adds a batch axis to a single `[c, h, w]` image, and the function to remove it again.
#[track_caller]
fn as_batch(what: &str, x: &Tensor) -> (Tensor, bool) {
    match x.rank() {
        4 => (x.clone(), false),
        3 => (x.expand_dims(0), true),
        _ => panic!("{what}: expects an NCHW input [n, c, h, w] or one image [c, h, w], got {}", x.ty()),
    }
}

/// The 2-D convolution (cross-correlation, as in every deep-learning library) of
/// `x: [n, c, h, w]` with `weight: [o, c / groups, kh, kw]`, giving `[n, o, ho, wo]` with
/// `ho = (h + 2·pad_h − dil_h·(kh − 1) − 1) / stride_h + 1` (and likewise for the width).
///
/// ```
/// use cotangent::{nn::conv2d, Tensor};
/// // A 3x3 image and a 2x2 kernel of ones: each output sums a 2x2 window.
/// let x = Tensor::from_vec((1..=9).map(|v| v as f64).collect(), &[1, 1, 3, 3]);
/// let w = Tensor::ones(&[1, 1, 2, 2], cotangent::DType::F64);
/// let y = conv2d(&x, &w, (1, 1), (0, 0), (1, 1), 1);
/// assert_eq!(y.to_vec::<f64>(), vec![12.0, 16.0, 24.0, 28.0]);
/// ```
#[track_caller]
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    stride: (usize, usize),
    padding: (usize, usize),
    dilation: (usize, usize),
    groups: usize,
) -> Tensor {
    let (x4, single) = as_batch("conv2d", x);
    let ws = weight.shape();
    assert!(ws.len() == 4, "conv2d: weight must be [out, in / groups, kh, kw], got {}", weight.ty());
    let xs = x4.shape();
    let (n, c) = (xs[0], xs[1]);
    let (o, cg, kh, kw) = (ws[0], ws[1], ws[2], ws[3]);
    assert!(
        groups > 0 && c == cg * groups && o % groups == 0,
        "conv2d: input has {c} channels and weight {}: need channels = {cg} x groups ({groups}) \
         and out channels ({o}) divisible by groups",
        weight.ty()
    );
    let (patches, ho, wo) = windows(&x4, (kh, kw), stride, padding, dilation, 0.0);
    let og = o / groups;
    let k = kh * kw;
    let patches = patches.reshape_to(&[n, groups, cg, k, ho, wo]);
    let w = weight.reshape_to(&[groups, og, cg, k]);
    // [g, n, ho, wo, og]: contract channels and taps, batch over groups.
    let y = dot_general(&patches, &w, (&[2, 3], &[2, 3]), (&[1], &[0]));
    let y = y.permute(&[1, 0, 4, 2, 3]).reshape_to(&[n, o, ho, wo]);
    if single {
        y.squeeze(&[0])
    } else {
        y
    }
}

/// A 2-D convolution layer on `NCHW` inputs (see [`conv2d`]).
///
/// ```
/// use cotangent::{nn::Conv2d, random, DType, Tensor};
/// let conv = Conv2d::new(&random::key(0), 3, 8, (3, 3), DType::F32).with_padding((1, 1));
/// let y = conv.forward(&Tensor::ones(&[2, 3, 8, 8], DType::F32));
/// assert_eq!(y.shape(), vec![2, 8, 8, 8]);
/// ```
#[derive(Clone, Debug, Tree)]
pub struct Conv2d {
    /// `[out, in / groups, kh, kw]`.
    pub weight: Tensor,
    /// `[out]`, or none.
    pub bias: Option<Tensor>,
    /// Step between windows (height, width).
    #[tree(skip)]
    pub stride: (usize, usize),
    /// Zeros added on each side (height, width).
    #[tree(skip)]
    pub padding: (usize, usize),
    /// Spacing between kernel taps (height, width).
    #[tree(skip)]
    pub dilation: (usize, usize),
    /// Channel groups: input and output channels are split into this many independent blocks.
    #[tree(skip)]
    pub groups: usize,
}

impl Conv2d {
    /// A layer with He-uniform weights, a zero bias, stride 1, no padding, no dilation, one group.
    ///
    /// ```
    /// use cotangent::{nn::Conv2d, random, DType};
    /// let c = Conv2d::new(&random::key(0), 1, 4, (3, 3), DType::F64);
    /// assert_eq!(c.weight.shape(), vec![4, 1, 3, 3]);
    /// ```
    #[track_caller]
    pub fn new(key: &Tensor, in_channels: usize, out_channels: usize, kernel: (usize, usize), dtype: DType) -> Conv2d {
        Self::with_groups(key, in_channels, out_channels, kernel, 1, Init::HeUniform, dtype)
    }

    /// A layer with `groups` channel groups and weights from `init`.
    ///
    /// ```
    /// use cotangent::{nn::{Conv2d, Init}, random, DType};
    /// // Depthwise: one group per channel.
    /// let c = Conv2d::with_groups(&random::key(0), 4, 4, (3, 3), 4, Init::HeNormal, DType::F32);
    /// assert_eq!(c.weight.shape(), vec![4, 1, 3, 3]);
    /// ```
    #[track_caller]
    pub fn with_groups(
        key: &Tensor,
        in_channels: usize,
        out_channels: usize,
        kernel: (usize, usize),
        groups: usize,
        init: Init,
        dtype: DType,
    ) -> Conv2d {
        assert!(
            groups > 0 && in_channels.is_multiple_of(groups) && out_channels.is_multiple_of(groups),
            "Conv2d: {in_channels} in and {out_channels} out channels must both divide into {groups} groups"
        );
        let shape = [out_channels, in_channels / groups, kernel.0, kernel.1];
        let (fi, fo) = fans(&shape);
        Conv2d {
            weight: init.sample(key, &shape, fi, fo, dtype),
            bias: Some(Tensor::zeros(&[out_channels], dtype)),
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            groups,
        }
    }

    /// The same layer with another stride.
    ///
    /// ```
    /// use cotangent::{nn::Conv2d, random, DType};
    /// assert_eq!(Conv2d::new(&random::key(0), 1, 1, (2, 2), DType::F32).with_stride((2, 2)).stride, (2, 2));
    /// ```
    pub fn with_stride(mut self, stride: (usize, usize)) -> Conv2d {
        self.stride = stride;
        self
    }

    /// The same layer with another zero padding.
    ///
    /// ```
    /// use cotangent::{nn::Conv2d, random, DType};
    /// assert_eq!(Conv2d::new(&random::key(0), 1, 1, (3, 3), DType::F32).with_padding((1, 1)).padding, (1, 1));
    /// ```
    pub fn with_padding(mut self, padding: (usize, usize)) -> Conv2d {
        self.padding = padding;
        self
    }

    /// The same layer with another dilation.
    ///
    /// ```
    /// use cotangent::{nn::Conv2d, random, DType};
    /// assert_eq!(Conv2d::new(&random::key(0), 1, 1, (3, 3), DType::F32).with_dilation((2, 2)).dilation, (2, 2));
    /// ```
    pub fn with_dilation(mut self, dilation: (usize, usize)) -> Conv2d {
        self.dilation = dilation;
        self
    }

    /// Applies the layer to `[n, c, h, w]` (or one image `[c, h, w]`).
    ///
    /// ```
    /// use cotangent::{nn::Conv2d, random, DType, Tensor};
    /// let c = Conv2d::new(&random::key(0), 2, 3, (3, 3), DType::F32).with_stride((2, 2));
    /// assert_eq!(c.forward(&Tensor::ones(&[2, 9, 9], DType::F32)).shape(), vec![3, 4, 4]);
    /// ```
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let y = conv2d(x, &self.weight, self.stride, self.padding, self.dilation, self.groups);
        match &self.bias {
            Some(b) => {
                let o = b.shape()[0];
                let shape = if y.rank() == 4 { vec![1, o, 1, 1] } else { vec![o, 1, 1] };
                &y + b.reshape_to(&shape)
            }
            None => y,
        }
    }
}

/// Max pooling over `kernel` windows of `NCHW` inputs (padding counts as `-∞`).
///
/// At ties the derivative is shared equally between the maximal elements.
///
/// ```
/// use cotangent::{nn::MaxPool2d, Tensor};
/// let x = Tensor::from_vec((0..16).map(|v| v as f64).collect(), &[1, 1, 4, 4]);
/// let y = MaxPool2d::new((2, 2)).forward(&x);
/// assert_eq!(y.to_vec::<f64>(), vec![5.0, 7.0, 13.0, 15.0]);
/// ```
#[derive(Clone, Debug, PartialEq, Tree)]
pub struct MaxPool2d {
    /// Window size.
    #[tree(skip)]
    pub kernel: (usize, usize),
    /// Step between windows (defaults to the window size).
    #[tree(skip)]
    pub stride: (usize, usize),
    /// Padding on each side.
    #[tree(skip)]
    pub padding: (usize, usize),
}

impl MaxPool2d {
    /// Non-overlapping windows of size `kernel`, no padding.
    ///
    /// ```
    /// use cotangent::nn::MaxPool2d;
    /// assert_eq!(MaxPool2d::new((2, 2)).stride, (2, 2));
    /// ```
    pub fn new(kernel: (usize, usize)) -> MaxPool2d {
        MaxPool2d { kernel, stride: kernel, padding: (0, 0) }
    }

    /// Applies the pooling to `[n, c, h, w]` (or `[c, h, w]`).
    ///
    /// ```
    /// use cotangent::{nn::MaxPool2d, DType, Tensor};
    /// let p = MaxPool2d { kernel: (3, 3), stride: (1, 1), padding: (1, 1) };
    /// assert_eq!(p.forward(&Tensor::ones(&[1, 2, 5, 5], DType::F32)).shape(), vec![1, 2, 5, 5]);
    /// ```
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        pool(x, self.kernel, self.stride, self.padding, true)
    }
}

/// Average pooling over `kernel` windows of `NCHW` inputs; padded zeros count in the
/// average (PyTorch's default `count_include_pad = true`).
///
/// ```
/// use cotangent::{nn::AvgPool2d, Tensor};
/// let x = Tensor::from_vec((0..16).map(|v| v as f64).collect(), &[1, 1, 4, 4]);
/// let y = AvgPool2d::new((2, 2)).forward(&x);
/// assert_eq!(y.to_vec::<f64>(), vec![2.5, 4.5, 10.5, 12.5]);
/// ```
#[derive(Clone, Debug, PartialEq, Tree)]
pub struct AvgPool2d {
    /// Window size.
    #[tree(skip)]
    pub kernel: (usize, usize),
    /// Step between windows (defaults to the window size).
    #[tree(skip)]
    pub stride: (usize, usize),
    /// Zero padding on each side.
    #[tree(skip)]
    pub padding: (usize, usize),
}

impl AvgPool2d {
    /// Non-overlapping windows of size `kernel`, no padding.
    ///
    /// ```
    /// use cotangent::nn::AvgPool2d;
    /// assert_eq!(AvgPool2d::new((3, 3)).kernel, (3, 3));
    /// ```
    pub fn new(kernel: (usize, usize)) -> AvgPool2d {
        AvgPool2d { kernel, stride: kernel, padding: (0, 0) }
    }

    /// Applies the pooling to `[n, c, h, w]` (or `[c, h, w]`).
    ///
    /// ```
    /// use cotangent::{nn::AvgPool2d, DType, Tensor};
    /// let y = AvgPool2d::new((2, 2)).forward(&Tensor::ones(&[3, 4, 4], DType::F64));
    /// assert_eq!(y.shape(), vec![3, 2, 2]);
    /// ```
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        pool(x, self.kernel, self.stride, self.padding, false)
    }
}

#[track_caller]
fn pool(x: &Tensor, kernel: (usize, usize), stride: (usize, usize), padding: (usize, usize), max: bool) -> Tensor {
    let (x4, single) = as_batch(if max { "max_pool2d" } else { "avg_pool2d" }, x);
    let pad_value = if max { f64::NEG_INFINITY } else { 0.0 };
    let (win, _, _) = windows(&x4, kernel, stride, padding, (1, 1), pad_value);
    let y = if max { win.max(&[2], false) } else { win.sum(&[2], false) / (kernel.0 * kernel.1) as f64 };
    if single {
        y.squeeze(&[0])
    } else {
        y
    }
}
