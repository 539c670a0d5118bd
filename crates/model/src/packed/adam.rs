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

use super::layers::{Span, Stack};
use crate::optim::{OptimStateError, SavedState, EXP_AVG, EXP_AVG_SQ, STEP};

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

struct Slot {
    name: String,
    param: Tensor,
    span: Span,
    grad: Option<Tensor>,
    /// Steps taken, per member.
    steps: Vec<i64>,
}

pub(super) struct PackedAdam {
    /// Per member.
    lr: Vec<f64>,
    weight_decay: Vec<f64>,
    slots: Vec<Slot>,
    /// `[K, P]` (the layout of [`Stack::flat`]): the parameters, and the first and second
    /// moments.
    params: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
}

impl PackedAdam {
    pub fn new(stack: &Stack, lr: Vec<f64>, weight_decay: Vec<f64>) -> PackedAdam {
        let k = lr.len();
        let slots = stack
            .trainable()
            .into_iter()
            .map(|(name, param, span)| Slot {
                name: name.to_string(),
                param: param.shallow_clone(),
                span,
                grad: None,
                steps: vec![0; k],
            })
            .collect();
        let params = stack.flat().shallow_clone();
        let (exp_avg, exp_avg_sq) = (params.zeros_like(), params.zeros_like());
        PackedAdam { lr, weight_decay, slots, params, exp_avg, exp_avg_sq }
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
        let all_active = active.iter().all(|&a| a);
        let device = self.params.device();
        let mask = Tensor::from_slice(&active.iter().map(|&a| a as u8).collect::<Vec<_>>())
            .to_kind(Kind::Bool)
            .to_device(device);
        let decay = self.weight_decay.iter().any(|&w| w != 0.0).then(|| {
            Tensor::from_slice(&self.weight_decay.iter().map(|&w| w as f32).collect::<Vec<_>>()).to_device(device)
        });
        for slot in self.slots.iter_mut().filter(|s| s.grad.is_some()) {
            for (s, &a) in slot.steps.iter_mut().zip(active) {
                *s += a as i64;
            }
        }
        // Usually every variable has a gradient and all have stepped alike: one update of the
        // flat `[K, P]` tensors. Otherwise (a loss term off for every member leaves variables
        // without a gradient, which take no step, as in the solo optimiser) variable by variable.
        let uniform = self.slots.iter().all(|s| s.grad.is_some() && s.steps == self.slots[0].steps);
        if uniform && !self.slots.is_empty() {
            let grads: Vec<Tensor> =
                self.slots.iter_mut().map(|s| s.grad.take().expect("checked").reshape([k as i64, -1])).collect();
            let (sqrt_bc2, neg_step_size) = bias_corrections(&self.slots[0].steps, &self.lr, device);
            let column = |t: &Tensor| t.view([k as i64, 1]);
            let decay = decay.as_ref().map(column);
            let update = Update {
                mask: &column(&mask),
                decay: decay.as_ref(),
                sqrt_bc2: &column(&sqrt_bc2),
                neg_step_size: &column(&neg_step_size),
            };
            update.apply(&Tensor::cat(&grads, 1), &self.params, &self.exp_avg, &self.exp_avg_sq, all_active);
            return;
        }
        let mut corrections: HashMap<Vec<i64>, (Tensor, Tensor)> = HashMap::new();
        for slot in &mut self.slots {
            let Some(grad) = slot.grad.take() else { continue };
            let lead = |t: &Tensor| t.view(per_member_shape(k, slot.span.shape.len() + 1).as_slice());
            // Variables that have stepped equally share their corrections.
            let (sqrt_bc2, neg_step_size) = corrections
                .entry(slot.steps.clone())
                .or_insert_with(|| bias_corrections(&slot.steps, &self.lr, device));
            let decay = decay.as_ref().map(lead);
            let update = Update {
                mask: &lead(&mask),
                decay: decay.as_ref(),
                sqrt_bc2: &lead(sqrt_bc2),
                neg_step_size: &lead(neg_step_size),
            };
            update.apply(&grad, &slot.param, &slot.span.of(&self.exp_avg), &slot.span.of(&self.exp_avg_sq), all_active);
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
            let cpu = |flat: &Tensor| slot.span.of(flat).get(k as i64).to_device(Device::Cpu).copy();
            out.push((format!("{}.{EXP_AVG}", slot.name), cpu(&self.exp_avg)));
            out.push((format!("{}.{EXP_AVG_SQ}", slot.name), cpu(&self.exp_avg_sq)));
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
                let _ = slot.span.of(&self.exp_avg).get(k as i64).zero_();
                let _ = slot.span.of(&self.exp_avg_sq).get(k as i64).zero_();
                continue;
            };
            let expected = slot.span.shape.clone();
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
            slot.span.of(&self.exp_avg).get(k as i64).copy_(m);
            slot.span.of(&self.exp_avg_sq).get(k as i64).copy_(v);
        }
        Ok(())
    }

    /// Keeps only the members at `keep` (positions), following [`Stack::keep`]: `stack` must
    /// already have dropped the others, its tensors are taken as the new parameters.
    pub fn keep(&mut self, stack: &Stack, keep: &[usize], rows: &Tensor) {
        for (slot, (_, param, _)) in self.slots.iter_mut().zip(stack.trainable()) {
            slot.param = param.shallow_clone();
            slot.steps = keep.iter().map(|&i| slot.steps[i]).collect();
        }
        self.params = stack.flat().shallow_clone();
        self.exp_avg = self.exp_avg.index_select(0, rows);
        self.exp_avg_sq = self.exp_avg_sq.index_select(0, rows);
        self.lr = keep.iter().map(|&i| self.lr[i]).collect();
        self.weight_decay = keep.iter().map(|&i| self.weight_decay[i]).collect();
    }
}

/// One Adam update of parameters and moments (in place), with per-member factors shaped to
/// broadcast over them (`[K, 1]` for the flat tensors, `[K, 1, …]` for one variable's).
struct Update<'a> {
    /// Members that step; the others keep their parameters and moments.
    mask: &'a Tensor,
    decay: Option<&'a Tensor>,
    sqrt_bc2: &'a Tensor,
    neg_step_size: &'a Tensor,
}

impl Update<'_> {
    /// `all_active`: no member is masked out, so the tensors are updated in place (the same
    /// kernels, without the copies the mask needs).
    fn apply(&self, grad: &Tensor, param: &Tensor, exp_avg: &Tensor, exp_avg_sq: &Tensor, all_active: bool) {
        let mut param = param.detach();
        let grad = match self.decay {
            // Out of place: the engine's gradient may be an expanded view.
            Some(decay) => grad + &param * decay,
            None => grad.shallow_clone(),
        };
        let denom = |v: &Tensor| (v.sqrt() / self.sqrt_bc2 + EPS) / self.neg_step_size;
        if all_active {
            let (mut m, mut v) = (exp_avg.shallow_clone(), exp_avg_sq.shallow_clone());
            let _ = m.lerp_(&grad, 1.0 - BETA1);
            let _ = v.lerp_(&grad.square(), 1.0 - BETA2);
            let _ = param.addcdiv_(&m, &denom(&v));
            return;
        }
        let m = exp_avg.lerp(&grad, 1.0 - BETA1);
        let v = exp_avg_sq.lerp(&grad.square(), 1.0 - BETA2);
        let updated = param.addcdiv(&m, &denom(&v));
        for (mut target, new) in [(exp_avg.shallow_clone(), m), (exp_avg_sq.shallow_clone(), v), (param, updated)] {
            let kept = new.where_self(self.mask, &target);
            target.copy_(&kept);
        }
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

    #[test]
    fn a_variable_the_loss_does_not_reach_takes_no_step_and_the_pack_still_follows_solo_adam() {
        // Two variables per member, "a" [2, 3] and "b" [5]; at odd steps the loss reaches "a"
        // only, so those steps go variable by variable and "b" neither moves nor counts a step.
        let members: Vec<Checkpoint> = (0..2)
            .map(|k| Checkpoint {
                tensors: vec![
                    ("a".to_string(), pattern(6, k as f64).view([2, 3])),
                    ("b".to_string(), pattern(5, 3.0 + k as f64)),
                ],
            })
            .collect();
        let names = ["a".to_string(), "b".to_string()];
        let mut s = Stack::new(&members, &names, Device::Cpu);
        let mut adam = PackedAdam::new(&s, vec![1e-2, 3e-2], vec![1e-3, 0.0]);
        // Member 1 alone, in the solo optimiser.
        let vs = VarStore::new(Device::Cpu);
        let solo_a = vs.root().var_copy("a", &members[1].get("a").unwrap().copy());
        let solo_b = vs.root().var_copy("b", &members[1].get("b").unwrap().copy());
        let mut solo = Adam::new(&vs, 3e-2, 0.0);
        let loss = |a: &Tensor, b: &Tensor, step: i64| {
            let reach_a = loss_of(&a.view([-1]), step);
            match step % 2 {
                0 => reach_a + loss_of(b, step + 1),
                _ => reach_a,
            }
        };
        for step in 0..6 {
            let (a, b) = (s.get("a").shallow_clone(), s.get("b").shallow_clone());
            let b_before = b.detach().copy();
            let total = loss(&a.get(0), &b.get(0), step) + loss(&a.get(1), &b.get(1), step);
            adam.backward_step(&total, &[true, true]);
            solo.backward_step(&loss(&solo_a, &solo_b, step));
            if step % 2 == 1 {
                assert!(b.detach().equal(&b_before), "step {step}: a variable without a gradient moved");
            }
        }
        let steps = |k: usize| -> Vec<(String, i64)> {
            adam.member_state(k)
                .into_iter()
                .filter(|(n, _)| n.ends_with(".step"))
                .map(|(n, t)| (n, t.int64_value(&[0])))
                .collect()
        };
        assert_eq!(steps(1), vec![("a.step".to_string(), 6), ("b.step".to_string(), 3)]);
        for (name, solo) in [("a", &solo_a), ("b", &solo_b)] {
            let diff = (s.get(name).detach().get(1) - solo.detach()).abs().max().double_value(&[]);
            assert!(diff < 1e-6, "{name}: member 1 and the solo Adam differ by {diff}");
        }
        // The pack shrinks to member 1; its state and the flat tensors follow.
        let before = adam.member_state(1);
        let rows = Tensor::from_slice(&[1i64]);
        s.keep(&rows);
        adam.keep(&s, &[1], &rows);
        for ((n, a), (_, b)) in adam.member_state(0).iter().zip(&before) {
            assert!(a.equal(b), "{n} changed when the pack shrank");
        }
        let (a, b) = (s.get("a").shallow_clone(), s.get("b").shallow_clone());
        adam.backward_step(&loss(&a.get(0), &b.get(0), 7), &[true]);
        solo.backward_step(&loss(&solo_a, &solo_b, 7));
        let diff = (s.get("a").detach().get(0) - solo_a.detach()).abs().max().double_value(&[]);
        assert!(diff < 1e-6, "after shrinking, member 1 and the solo Adam differ by {diff}");
    }
}
