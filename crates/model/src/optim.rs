//! Adam with plain tensor operations, so that its state (moments and step counts) can be saved
//! and restored: tch's `nn::Adam` wraps libtorch's C++ optimiser and exposes none of it.
//!
//! Semantics are PyTorch's `torch.optim.Adam` (and libtorch's): L2 weight decay added to the
//! gradient, bias-corrected moments, `eps` added after the square root, one step count per
//! parameter, and a parameter without a gradient in a step (not reached by the loss) is left
//! alone, moments and count included. The moments are updated with `lerp`, as PyTorch's
//! single-tensor Adam does; libtorch's C++ Adam uses `mul` + `add`, which rounds differently in
//! the last bit, so the two agree to float precision rather than bit for bit (tested below).

use tch::nn::VarStore;
use tch::{Kind, Tensor};

/// A saved optimiser state that does not fit the parameters it is loaded for.
#[derive(Debug, thiserror::Error)]
pub enum OptimStateError {
    #[error("optimiser state names `{name}`, which is not a trainable variable of the model")]
    Unknown { name: String },
    #[error("optimiser state `{name}` has shape {found:?}, the variable has {expected:?}")]
    Shape { name: String, found: Vec<i64>, expected: Vec<i64> },
    #[error("optimiser state of `{name}` lacks `{part}`")]
    Incomplete { name: String, part: &'static str },
}

pub(crate) const EXP_AVG: &str = "exp_avg";
pub(crate) const EXP_AVG_SQ: &str = "exp_avg_sq";
pub(crate) const STEP: &str = "step";

/// A saved Adam state as both optimisers write it (`<variable>.exp_avg`, `.exp_avg_sq`, `.step`
/// for each variable that has taken a step), read one way by [`Adam::load_state`] and the packed
/// optimiser.
pub(crate) struct SavedState<'s> {
    state: &'s [(String, Tensor)],
}

impl<'s> SavedState<'s> {
    /// Refuses a state with an entry that is not a part of a variable `is_variable` accepts.
    pub(crate) fn new(
        state: &'s [(String, Tensor)],
        is_variable: impl Fn(&str) -> bool,
    ) -> Result<SavedState<'s>, OptimStateError> {
        for (key, _) in state {
            let known = [EXP_AVG_SQ, EXP_AVG, STEP]
                .iter()
                .any(|part| key.strip_suffix(part).and_then(|k| k.strip_suffix('.')).is_some_and(&is_variable));
            if !known {
                return Err(OptimStateError::Unknown { name: key.clone() });
            }
        }
        Ok(SavedState { state })
    }

    /// Variable `name`'s moments and step count: all three, none (it has not stepped and starts
    /// fresh), or an error naming the part that is missing.
    pub(crate) fn parts(&self, name: &str) -> Result<Option<(&'s Tensor, &'s Tensor, &'s Tensor)>, OptimStateError> {
        let find = |part: &str| {
            let key = format!("{name}.{part}");
            self.state.iter().find(|(n, _)| *n == key).map(|(_, t)| t)
        };
        match (find(EXP_AVG), find(EXP_AVG_SQ), find(STEP)) {
            (None, None, None) => Ok(None),
            (Some(m), Some(v), Some(step)) => Ok(Some((m, v, step))),
            (m, v, _) => {
                let part = if m.is_none() {
                    EXP_AVG
                } else if v.is_none() {
                    EXP_AVG_SQ
                } else {
                    STEP
                };
                Err(OptimStateError::Incomplete { name: name.to_string(), part })
            }
        }
    }
}

/// One parameter and its Adam state.
struct Slot {
    name: String,
    param: Tensor,
    /// Gradient of the last `backward`; `None` when the loss does not reach the parameter.
    grad: Option<Tensor>,
    step: i64,
    /// First and second moments, created at the parameter's first step.
    moments: Option<(Tensor, Tensor)>,
}

pub struct Adam {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    /// Sorted by name, so the state's layout does not depend on creation order.
    slots: Vec<Slot>,
}

impl Adam {
    /// Adam over every trainable variable of `vs` (β = 0.9, 0.999, ε = 1e-8, PyTorch's defaults).
    pub fn new(vs: &VarStore, lr: f64, weight_decay: f64) -> Adam {
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let slots =
            vars.into_iter().map(|(name, param)| Slot { name, param, grad: None, step: 0, moments: None }).collect();
        Adam { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay, slots }
    }

    /// Computes the gradients of `loss` with respect to the parameters (without accumulating
    /// into `.grad`, so there is nothing to zero), then takes one step.
    pub fn backward_step(&mut self, loss: &Tensor) {
        self.backward(loss);
        self.step();
    }

    /// The gradients of `loss`; a parameter the loss does not reach gets none.
    pub fn backward(&mut self, loss: &Tensor) {
        let params: Vec<&Tensor> = self.slots.iter().map(|s| &s.param).collect();
        let grads = Tensor::run_backward(&[loss], &params, false, false);
        for (slot, grad) in self.slots.iter_mut().zip(grads) {
            slot.grad = grad.defined().then_some(grad);
        }
    }

    /// One Adam step with the gradients of the last `backward`.
    pub fn step(&mut self) {
        let _guard = tch::no_grad_guard();
        let (beta1, beta2) = (self.beta1, self.beta2);
        for slot in &mut self.slots {
            let Some(mut grad) = slot.grad.take() else { continue };
            slot.step += 1;
            if self.weight_decay != 0.0 {
                // Out of place: the engine's gradient may be an expanded view.
                grad = grad.g_add(&slot.param.g_mul_scalar(self.weight_decay));
            }
            let (exp_avg, exp_avg_sq) =
                slot.moments.get_or_insert_with(|| (slot.param.zeros_like(), slot.param.zeros_like()));
            let _ = exp_avg.lerp_(&grad, 1.0 - beta1);
            let _ = exp_avg_sq.lerp_(&grad.square(), 1.0 - beta2);
            let bias_correction1 = 1.0 - beta1.powf(slot.step as f64);
            let bias_correction2 = 1.0 - beta2.powf(slot.step as f64);
            let step_size = self.lr / bias_correction1;
            // param -= step_size · m / (√v / √bc2 + ε), as param.addcdiv_(m, denom / -step_size).
            let mut denom = exp_avg_sq.sqrt();
            let _ = denom.g_div_scalar_(bias_correction2.sqrt());
            let _ = denom.g_add_scalar_(self.eps);
            let _ = denom.g_div_scalar_(-step_size);
            let _ = slot.param.addcdiv_(exp_avg, &denom);
        }
    }

    /// The state as named CPU tensors: `<variable>.exp_avg`, `<variable>.exp_avg_sq` and
    /// `<variable>.step` (int64, one element) for every parameter that has taken a step.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for slot in &self.slots {
            let Some((m, v)) = &slot.moments else { continue };
            out.push((format!("{}.{EXP_AVG}", slot.name), m.to_device(tch::Device::Cpu).copy()));
            out.push((format!("{}.{EXP_AVG_SQ}", slot.name), v.to_device(tch::Device::Cpu).copy()));
            out.push((format!("{}.{STEP}", slot.name), Tensor::from_slice(&[slot.step])));
        }
        out
    }

    /// Restores a state written by [`Adam::state`] for the same variables. Every entry must name
    /// a trainable variable and fit its shape; parameters the state does not mention start fresh.
    pub fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<(), OptimStateError> {
        let saved = SavedState::new(state, |name| self.slots.iter().any(|s| s.name == name))?;
        let device = self.slots.first().map(|s| s.param.device());
        for slot in &mut self.slots {
            let Some((m, v, step)) = saved.parts(&slot.name)? else {
                (slot.step, slot.moments) = (0, None);
                continue;
            };
            for t in [m, v] {
                if t.size() != slot.param.size() || t.kind() != slot.param.kind() {
                    return Err(OptimStateError::Shape {
                        name: slot.name.clone(),
                        found: t.size(),
                        expected: slot.param.size(),
                    });
                }
            }
            if step.numel() != 1 || step.kind() != Kind::Int64 {
                return Err(OptimStateError::Shape {
                    name: format!("{}.{STEP}", slot.name),
                    found: step.size(),
                    expected: vec![1],
                });
            }
            let device = device.expect("a slot exists");
            slot.step = step.int64_value(&[0]);
            slot.moments = Some((m.to_device(device).copy(), v.to_device(device).copy()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::{self, Module, OptimizerConfig};
    use tch::Device;

    /// Fixed values that do not come from libtorch's global generator: the other tests of this
    /// binary run on parallel threads and reseed it, so `manual_seed` then `randn` is a race.
    fn pattern(shape: &[i64], phase: f64) -> Tensor {
        let n: i64 = shape.iter().product();
        ((Tensor::arange(n, (Kind::Float, Device::Cpu)) * 0.731 + phase).sin() * 0.5).view(shape)
    }

    /// A small network with a branch the loss does not use; the same `phase`, the same weights.
    fn net(phase: f64) -> (VarStore, nn::Linear, nn::Linear) {
        let vs = VarStore::new(Device::Cpu);
        let used = nn::linear(vs.root() / "used", 5, 3, Default::default());
        let unused = nn::linear(vs.root() / "unused", 5, 3, Default::default());
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        tch::no_grad(|| {
            for (i, (_, mut t)) in vars.into_iter().enumerate() {
                t.copy_(&pattern(&t.size(), phase + i as f64));
            }
        });
        (vs, used, unused)
    }

    fn loss(layer: &nn::Linear, step: i64) -> Tensor {
        let x = pattern(&[8, 5], 100.0 + step as f64) * 2.0;
        layer.forward(&x).tanh().square().mean(Kind::Float)
    }

    fn max_abs_diff(a: &VarStore, b: &VarStore) -> f64 {
        let bv = b.variables();
        a.variables().iter().map(|(n, t)| (t - &bv[n]).abs().max().double_value(&[])).fold(0.0, f64::max)
    }

    #[test]
    fn follows_libtorch_adam_with_weight_decay_and_skips_unused_parameters() {
        let (ours_vs, ours_used, _) = net(1.0);
        let (theirs_vs, theirs_used, _) = net(1.0);
        let mut ours = Adam::new(&ours_vs, 1e-2, 1e-3);
        let mut theirs = nn::Adam { wd: 1e-3, ..Default::default() }.build(&theirs_vs, 1e-2).unwrap();
        let unused_before = ours_vs.variables()["unused.weight"].copy();
        for step in 0..30 {
            ours.backward_step(&loss(&ours_used, step));
            theirs.backward_step(&loss(&theirs_used, step));
        }
        let diff = max_abs_diff(&ours_vs, &theirs_vs);
        assert!(diff < 1e-6, "ours and libtorch's Adam differ by {diff} after 30 steps");
        assert!(ours_vs.variables()["unused.weight"].equal(&unused_before), "a parameter without gradient moved");
        assert!(ours.state().iter().all(|(n, _)| n.starts_with("used.")), "no state for the unused layer");
    }

    #[test]
    fn a_restored_state_continues_bit_identically() {
        let (a_vs, a_used, _) = net(2.0);
        let mut a = Adam::new(&a_vs, 1e-2, 0.0);
        for step in 0..5 {
            a.backward_step(&loss(&a_used, step));
        }
        // A second optimiser takes over the weights and the state, as a resumed trial does.
        let (b_vs, b_used, _) = net(3.0);
        tch::no_grad(|| {
            for (name, mut t) in b_vs.variables() {
                t.copy_(&a_vs.variables()[&name]);
            }
        });
        let mut b = Adam::new(&b_vs, 1e-2, 0.0);
        b.load_state(&a.state()).unwrap();
        for step in 5..12 {
            a.backward_step(&loss(&a_used, step));
            b.backward_step(&loss(&b_used, step));
        }
        assert_eq!(max_abs_diff(&a_vs, &b_vs), 0.0);
    }

    #[test]
    fn a_state_for_other_variables_is_refused() {
        let (vs, used, _) = net(4.0);
        let mut adam = Adam::new(&vs, 1e-2, 0.0);
        adam.backward_step(&loss(&used, 0));
        let mut state = adam.state();
        state.push(("other.weight.exp_avg".into(), Tensor::zeros([1], (Kind::Float, Device::Cpu))));
        assert!(matches!(Adam::new(&vs, 1e-2, 0.0).load_state(&state), Err(OptimStateError::Unknown { .. })));
        let mut state = adam.state();
        state[0].1 = Tensor::zeros([2, 2], (Kind::Float, Device::Cpu));
        assert!(matches!(Adam::new(&vs, 1e-2, 0.0).load_state(&state), Err(OptimStateError::Shape { .. })));
        let state: Vec<_> = adam.state().into_iter().filter(|(n, _)| !n.ends_with(".step")).collect();
        assert!(matches!(Adam::new(&vs, 1e-2, 0.0).load_state(&state), Err(OptimStateError::Incomplete { .. })));
    }
}
