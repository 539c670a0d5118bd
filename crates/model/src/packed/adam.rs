//! Adam over stacked variables: member `k` has its own learning rate, weight decay, moments and
//! step counts, and a member without a batch at a step is left exactly as it was.
//!
//! The update is [`crate::optim::Adam`]'s (PyTorch's: L2 decay added to the gradient, `lerp`
//! moments, bias corrections from the member's step count, ε after the square root), applied to
//! every member at once and then kept only for the members that stepped. Step counts live on the
//! CPU, one per (variable, member), so the bias corrections are computed in f64 as the solo
//! optimiser computes them. A variable the loss does not reach takes no step for any member, as
//! in the solo optimiser.

use std::collections::HashMap;

use tch::{Device, Kind, Tensor};

use super::layers::Stack;
use crate::optim::{OptimStateError, SavedState, EXP_AVG, EXP_AVG_SQ, STEP};

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

struct Slot {
    name: String,
    param: Tensor,
    grad: Option<Tensor>,
    /// Steps taken, per member.
    steps: Vec<i64>,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
}

pub(super) struct PackedAdam {
    /// Per member.
    lr: Vec<f64>,
    weight_decay: Vec<f64>,
    slots: Vec<Slot>,
}

impl PackedAdam {
    pub fn new(stack: &Stack, lr: Vec<f64>, weight_decay: Vec<f64>) -> PackedAdam {
        let k = lr.len();
        let slots = stack
            .trainable()
            .into_iter()
            .map(|(name, param)| Slot {
                name: name.to_string(),
                param: param.shallow_clone(),
                grad: None,
                steps: vec![0; k],
                exp_avg: param.detach().zeros_like(),
                exp_avg_sq: param.detach().zeros_like(),
            })
            .collect();
        PackedAdam { lr, weight_decay, slots }
    }

    /// Gradients of `loss` (the sum of the members' losses), then one step for the members whose
    /// `active` entry is true.
    pub fn backward_step(&mut self, loss: &Tensor, active: &[bool]) {
        let params: Vec<&Tensor> = self.slots.iter().map(|s| &s.param).collect();
        let grads = Tensor::run_backward(&[loss], &params, false, false);
        for (slot, grad) in self.slots.iter_mut().zip(grads) {
            slot.grad = grad.defined().then_some(grad);
        }
        self.step(active);
    }

    fn step(&mut self, active: &[bool]) {
        let _guard = tch::no_grad_guard();
        let k = active.len();
        let device = self.slots.first().map_or(Device::Cpu, |s| s.param.device());
        let mask = Tensor::from_slice(&active.iter().map(|&a| a as u8).collect::<Vec<_>>())
            .to_kind(Kind::Bool)
            .to_device(device);
        let any_decay = self.weight_decay.iter().any(|&w| w != 0.0);
        let decay =
            Tensor::from_slice(&self.weight_decay.iter().map(|&w| w as f32).collect::<Vec<_>>()).to_device(device);
        let mut corrections: HashMap<Vec<i64>, (Tensor, Tensor)> = HashMap::new();
        for slot in &mut self.slots {
            let Some(mut grad) = slot.grad.take() else { continue };
            let dims = slot.param.dim();
            let lead = |t: &Tensor| t.view(per_member_shape(k, dims).as_slice());
            for (s, &a) in slot.steps.iter_mut().zip(active) {
                *s += a as i64;
            }
            if any_decay {
                // Out of place: the engine's gradient may be an expanded view.
                grad = grad.g_add(&(slot.param.detach() * lead(&decay)));
            }
            // Variables that have stepped equally share their corrections (usually all do).
            let (sqrt_bc2, neg_step_size) = corrections
                .entry(slot.steps.clone())
                .or_insert_with(|| bias_corrections(&slot.steps, &self.lr, device));
            let (sqrt_bc2, neg_step_size) = (lead(sqrt_bc2), lead(neg_step_size));
            let m = slot.exp_avg.lerp(&grad, 1.0 - BETA1);
            let v = slot.exp_avg_sq.lerp(&grad.square(), 1.0 - BETA2);
            let denom = (v.sqrt() / sqrt_bc2 + EPS) / neg_step_size;
            let updated = slot.param.detach().addcdiv(&m, &denom);
            let keep = lead(&mask);
            slot.exp_avg = m.where_self(&keep, &slot.exp_avg);
            slot.exp_avg_sq = v.where_self(&keep, &slot.exp_avg_sq);
            slot.param.detach().copy_(&updated.where_self(&keep, &slot.param.detach()));
        }
    }

    /// Member `k`'s state in [`crate::optim::Adam::state`]'s layout (only the variables it has
    /// stepped).
    pub fn member_state(&self, k: usize) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for slot in &self.slots {
            if slot.steps[k] == 0 {
                continue;
            }
            let cpu = |t: &Tensor| t.get(k as i64).to_device(Device::Cpu).copy();
            out.push((format!("{}.{EXP_AVG}", slot.name), cpu(&slot.exp_avg)));
            out.push((format!("{}.{EXP_AVG_SQ}", slot.name), cpu(&slot.exp_avg_sq)));
            out.push((format!("{}.{STEP}", slot.name), Tensor::from_slice(&[slot.steps[k]])));
        }
        out
    }

    /// Loads member `k`'s state, saved by [`crate::optim::Adam::state`] or
    /// [`PackedAdam::member_state`]; variables it does not name start fresh.
    pub fn load_member_state(&mut self, k: usize, state: &[(String, Tensor)]) -> Result<(), OptimStateError> {
        let saved = SavedState::new(state, |name| self.slots.iter().any(|s| s.name == name))?;
        let _guard = tch::no_grad_guard();
        for slot in &mut self.slots {
            let Some((m, v, step)) = saved.parts(&slot.name)? else {
                slot.steps[k] = 0;
                let _ = slot.exp_avg.get(k as i64).zero_();
                let _ = slot.exp_avg_sq.get(k as i64).zero_();
                continue;
            };
            let expected = slot.param.size()[1..].to_vec();
            for t in [m, v] {
                if t.size() != expected || t.kind() != slot.param.kind() {
                    return Err(OptimStateError::Shape { name: slot.name.clone(), found: t.size(), expected });
                }
            }
            if step.numel() != 1 || step.kind() != Kind::Int64 {
                return Err(OptimStateError::Shape {
                    name: format!("{}.{STEP}", slot.name),
                    found: step.size(),
                    expected: vec![1],
                });
            }
            slot.steps[k] = step.int64_value(&[0]);
            slot.exp_avg.get(k as i64).copy_(m);
            slot.exp_avg_sq.get(k as i64).copy_(v);
        }
        Ok(())
    }

    /// Keeps only the members at `keep` (positions), following [`Stack::keep`]: `stack` must
    /// already have dropped the others, its tensors are taken as the new parameters.
    pub fn keep(&mut self, stack: &Stack, keep: &[usize], rows: &Tensor) {
        let params = stack.trainable();
        for (slot, (_, param)) in self.slots.iter_mut().zip(params) {
            slot.param = param.shallow_clone();
            slot.exp_avg = slot.exp_avg.index_select(0, rows);
            slot.exp_avg_sq = slot.exp_avg_sq.index_select(0, rows);
            slot.steps = keep.iter().map(|&i| slot.steps[i]).collect();
        }
        self.lr = keep.iter().map(|&i| self.lr[i]).collect();
        self.weight_decay = keep.iter().map(|&i| self.weight_decay[i]).collect();
    }
}

/// Per member, `√(1 − β₂ᵗ)` and `−lr / (1 − β₁ᵗ)` for its step count `t`, computed in f64 as
/// the solo optimiser computes them. A member that has not stepped gets those of step 1 (unused:
/// its update is masked).
fn bias_corrections(steps: &[i64], lr: &[f64], device: Device) -> (Tensor, Tensor) {
    let (mut sqrt_bc2, mut neg_step_size) = (Vec::with_capacity(steps.len()), Vec::with_capacity(steps.len()));
    for (&t, &lr) in steps.iter().zip(lr) {
        let t = t.max(1) as f64;
        sqrt_bc2.push((1.0 - BETA2.powf(t)).sqrt() as f32);
        neg_step_size.push((-lr / (1.0 - BETA1.powf(t))) as f32);
    }
    (Tensor::from_slice(&sqrt_bc2).to_device(device), Tensor::from_slice(&neg_step_size).to_device(device))
}

/// `[K, 1, …, 1]` with `dims` dimensions.
fn per_member_shape(k: usize, dims: usize) -> Vec<i64> {
    let mut shape = vec![1; dims];
    shape[0] = k as i64;
    shape
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Checkpoint;
    use crate::optim::Adam;
    use tch::nn::VarStore;

    fn pattern(n: i64, phase: f64) -> Tensor {
        (Tensor::arange(n, (Kind::Float, Device::Cpu)) * 0.37 + phase).sin()
    }

    /// Member `k`'s loss: a fixed quadratic of its weight, different per member and step.
    fn loss_of(w: &Tensor, step: i64) -> Tensor {
        (w * pattern(w.size()[0], step as f64) - 0.3).square().sum(Kind::Float)
    }

    fn stack(members: &[Tensor]) -> Stack {
        let ckpts: Vec<Checkpoint> =
            members.iter().map(|t| Checkpoint { tensors: vec![("w".to_string(), t.copy())] }).collect();
        Stack::new(&ckpts, &["w".to_string()], Device::Cpu)
    }

    #[test]
    fn a_member_without_a_batch_keeps_weights_and_state_and_the_others_follow_solo_adam() {
        let init = [pattern(6, 1.0), pattern(6, 2.0)];
        let s = stack(&init);
        let mut adam = PackedAdam::new(&s, vec![1e-2, 5e-2], vec![0.0, 1e-2]);
        // The solo optimiser of member 0, for reference.
        let vs = VarStore::new(Device::Cpu);
        let solo_w = vs.root().var_copy("w", &init[0]);
        let mut solo = Adam::new(&vs, 1e-2, 0.0);
        let w = s.get("w").shallow_clone();
        for step in 0..6 {
            // Member 1 has a batch at steps 0 and 1 only.
            let active = [true, step < 2];
            let before = (w.detach().get(1).copy(), adam.member_state(1));
            let loss = loss_of(&w.get(0), step) + loss_of(&w.get(1), step + 10);
            adam.backward_step(&loss, &active);
            solo.backward_step(&loss_of(&solo_w, step));
            if !active[1] {
                assert!(w.detach().get(1).equal(&before.0), "step {step}: a skipped member's weights moved");
                let after = adam.member_state(1);
                assert_eq!(after.len(), before.1.len());
                for ((n, a), (_, b)) in after.iter().zip(&before.1) {
                    assert!(a.equal(b), "step {step}: {n} changed");
                }
            }
        }
        let steps: Vec<i64> = adam
            .member_state(1)
            .iter()
            .filter(|(n, _)| n.ends_with(".step"))
            .map(|(_, t)| t.int64_value(&[0]))
            .collect();
        assert_eq!(steps, vec![2]);
        let diff = (w.detach().get(0) - solo_w.detach()).abs().max().double_value(&[]);
        assert!(diff < 1e-6, "member 0 and the solo Adam differ by {diff}");
        // Member 0's state loads into the solo optimiser's layout.
        let mut other = Adam::new(&vs, 1e-2, 0.0);
        other.load_state(&adam.member_state(0)).unwrap();
    }

    #[test]
    fn a_member_state_moves_between_packs() {
        let s = stack(&[pattern(4, 0.5), pattern(4, 1.5), pattern(4, 2.5)]);
        let mut adam = PackedAdam::new(&s, vec![1e-2; 3], vec![0.0; 3]);
        let w = s.get("w").shallow_clone();
        let loss =
            (0..3).map(|k| loss_of(&w.get(k), k)).fold(Tensor::zeros([], (Kind::Float, Device::Cpu)), |a, b| a + b);
        adam.backward_step(&loss, &[true, true, true]);
        let state = adam.member_state(2);
        let s2 = stack(&[pattern(4, 0.0)]);
        let mut other = PackedAdam::new(&s2, vec![1e-2], vec![0.0]);
        other.load_member_state(0, &state).unwrap();
        assert_eq!(other.member_state(0).len(), state.len());
        for ((n, a), (_, b)) in other.member_state(0).iter().zip(&state) {
            assert!(a.equal(b), "{n}");
        }
        let mut bad = state;
        bad[0].1 = Tensor::zeros([5], (Kind::Float, Device::Cpu));
        assert!(matches!(other.load_member_state(0, &bad), Err(OptimStateError::Shape { .. })));
    }
}
