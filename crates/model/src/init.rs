//! Layer constructors initialised as PyTorch initialises them, so a model trained from scratch
//! here starts from the same distribution as the paper's PyTorch code (tch's own defaults
//! differ: a wider Linear bound and BatchNorm weights drawn from [0, 1]).

use tch::nn;

/// `nn.Linear`: weight and bias uniform in ±1/√fan_in (Kaiming-uniform with a = √5).
pub fn linear<'a>(vs: impl std::borrow::Borrow<nn::Path<'a>>, fan_in: i64, out: i64) -> nn::Linear {
    linear_with_bias(vs, fan_in, out, uniform_bound(fan_in))
}

/// `nn.Linear` with a zero bias, as `nn.MultiheadAttention` initialises its `out_proj`.
pub fn linear_zero_bias<'a>(vs: impl std::borrow::Borrow<nn::Path<'a>>, fan_in: i64, out: i64) -> nn::Linear {
    linear_with_bias(vs, fan_in, out, nn::Init::Const(0.0))
}

fn uniform_bound(fan_in: i64) -> nn::Init {
    let bound = 1.0 / (fan_in as f64).sqrt();
    nn::Init::Uniform { lo: -bound, up: bound }
}

fn linear_with_bias<'a>(
    vs: impl std::borrow::Borrow<nn::Path<'a>>,
    fan_in: i64,
    out: i64,
    bias: nn::Init,
) -> nn::Linear {
    let config = nn::LinearConfig { ws_init: uniform_bound(fan_in), bs_init: Some(bias), bias: true };
    nn::linear(vs, fan_in, out, config)
}

/// `nn.BatchNorm1d`: weight 1, bias 0, running statistics 0 and 1.
pub fn batch_norm1d<'a>(vs: impl std::borrow::Borrow<nn::Path<'a>>, dim: i64) -> nn::BatchNorm {
    let config =
        nn::BatchNormConfig { ws_init: nn::Init::Const(1.0), bs_init: nn::Init::Const(0.0), ..Default::default() };
    nn::batch_norm1d(vs, dim, config)
}
