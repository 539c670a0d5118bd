//! The stacked variables of a pack and the per-member layers that read them.
//!
//! A [`Stack`] holds, for every variable of a stage's solo network, one `[K, …]` tensor whose
//! slice `k` is member `k`'s variable under its solo name; members are added from and given
//! back as solo [`Checkpoint`]s. Layers take `x [K, …, in]` and apply member `k`'s weights to
//! slice `k`.

use std::collections::HashMap;

use tch::{Device, Kind, Tensor};

use crate::checkpoint::Checkpoint;

/// BatchNorm's running-statistics momentum and epsilon (PyTorch's defaults, as the solo
/// network's `nn::batch_norm1d`).
const BN_MOMENTUM: f64 = 0.1;
const BN_EPS: f64 = 1e-5;
const LN_EPS: f64 = 1e-5;

pub(super) struct Stack {
    /// Sorted by name (the order of [`Checkpoint::of`]).
    names: Vec<String>,
    tensors: Vec<Tensor>,
    trainable: Vec<bool>,
    index: HashMap<String, usize>,
    /// `[K, P]`: every trainable variable of a member, flattened in name order. The trainable
    /// entries of `tensors` are leaves that share its storage (`[K, …]` views of a column
    /// range), so the optimiser updates all of them with a few operations on this one tensor
    /// instead of a dozen per variable: the per-operator overhead, not the arithmetic, is what a
    /// small model's optimiser step costs, most of all in kernel launches on a GPU.
    flat: Tensor,
}

/// Where a trainable variable lies in [`Stack::flat`]: columns `offset..offset + len`, one
/// member's variable of shape `shape`.
#[derive(Clone, Debug)]
pub(super) struct Span {
    pub offset: i64,
    pub len: i64,
    pub shape: Vec<i64>,
}

impl Span {
    /// The `[K, …]` view of this span of a `[K, P]` tensor.
    pub fn of(&self, flat: &Tensor) -> Tensor {
        let mut shape = Vec::with_capacity(self.shape.len() + 1);
        shape.push(flat.size()[0]);
        shape.extend_from_slice(&self.shape);
        flat.narrow(1, self.offset, self.len).view(shape.as_slice())
    }
}

impl Stack {
    /// Stacks the members' checkpoints (each naming the same variables with the same shapes);
    /// `trainable` names the variables the optimiser updates.
    pub fn new(members: &[Checkpoint], trainable: &[String], device: Device) -> Stack {
        let first = &members[0];
        let names: Vec<String> = first.tensors.iter().map(|(n, _)| n.clone()).collect();
        let stacked: Vec<Tensor> = names
            .iter()
            .map(|name| {
                let parts: Vec<Tensor> =
                    members.iter().map(|m| m.get(name).expect("members share variables").shallow_clone()).collect();
                Tensor::stack(&parts, 0).to_device(device)
            })
            .collect();
        let trainable: Vec<bool> = names.iter().map(|n| trainable.contains(n)).collect();
        let k = members.len() as i64;
        let columns: Vec<Tensor> =
            stacked.iter().zip(&trainable).filter(|(_, &t)| t).map(|(t, _)| t.reshape([k, -1])).collect();
        let flat = match columns.is_empty() {
            true => Tensor::zeros([k, 0], (Kind::Float, device)),
            false => Tensor::cat(&columns, 1),
        };
        let index = names.iter().enumerate().map(|(i, n)| (n.clone(), i)).collect();
        let mut stack = Stack { names, tensors: stacked, trainable, index, flat };
        stack.share_flat();
        stack
    }

    /// Points the trainable entries of `tensors` at their spans of `flat`, as leaves.
    fn share_flat(&mut self) {
        let spans = self.spans();
        for ((t, &trainable), span) in self.tensors.iter_mut().zip(&self.trainable).zip(spans) {
            if trainable {
                *t = span.of(&self.flat).detach().set_requires_grad(true);
            }
        }
    }

    /// Every variable's span of [`Stack::flat`], in name order (`len` 0 for a non-trainable
    /// one).
    fn spans(&self) -> Vec<Span> {
        let mut offset = 0;
        self.tensors
            .iter()
            .zip(&self.trainable)
            .map(|(t, &trainable)| {
                let shape = t.size()[1..].to_vec();
                let len = if trainable { shape.iter().product::<i64>() } else { 0 };
                let span = Span { offset, len, shape };
                offset += len;
                span
            })
            .collect()
    }

    pub fn get(&self, name: &str) -> &Tensor {
        &self.tensors[*self.index.get(name).unwrap_or_else(|| panic!("no stacked variable `{name}`"))]
    }

    /// The trainable variables, in name order, with their names and spans of [`Stack::flat`].
    pub fn trainable(&self) -> Vec<(&str, &Tensor, Span)> {
        self.names
            .iter()
            .zip(&self.tensors)
            .zip(self.spans())
            .zip(&self.trainable)
            .filter(|(_, &t)| t)
            .map(|(((n, t), span), _)| (n.as_str(), t, span))
            .collect()
    }

    /// `[K, P]`: the trainable variables' storage (see the field).
    pub fn flat(&self) -> &Tensor {
        &self.flat
    }

    /// Member `k`'s variables as a solo checkpoint (detached CPU copies).
    pub fn member(&self, k: i64) -> Checkpoint {
        let tensors = self
            .names
            .iter()
            .zip(&self.tensors)
            .map(|(n, t)| (n.clone(), t.detach().get(k).to_device(Device::Cpu).copy()))
            .collect();
        Checkpoint { tensors }
    }

    /// Keeps only the members at `rows` (int64 on the stack's device), in that order.
    pub fn keep(&mut self, rows: &Tensor) {
        self.flat = self.flat.index_select(0, rows);
        for (t, &trainable) in self.tensors.iter_mut().zip(&self.trainable) {
            if !trainable {
                *t = t.index_select(0, rows);
            }
        }
        self.share_flat();
    }

    /// Overwrites a non-trainable variable (BatchNorm statistics) in place.
    fn set(&self, name: &str, value: &Tensor) {
        let mut t = self.get(name).shallow_clone();
        tch::no_grad(|| t.copy_(value));
    }

    /// `x [K, …, in]` → `[K, …, out]` with member `k`'s `{prefix}.weight [out, in]` and
    /// `{prefix}.bias [out]`.
    pub fn linear(&self, prefix: &str, x: &Tensor) -> Tensor {
        let w = self.get(&format!("{prefix}.weight"));
        let b = self.get(&format!("{prefix}.bias"));
        let size = x.size();
        let (k, inner) = (size[0], size[size.len() - 1]);
        let out = w.size()[1];
        let flat = x.reshape([k, -1, inner]);
        let y = b.unsqueeze(1).baddbmm(&flat, &w.transpose(1, 2), 1.0, 1.0);
        let mut shape = size;
        *shape.last_mut().expect("a last dimension") = out;
        y.view(shape.as_slice())
    }

    /// LayerNorm over the last dimension with member `k`'s `{prefix}.weight` and `.bias`.
    pub fn layer_norm(&self, prefix: &str, x: &Tensor) -> Tensor {
        let d = *x.size().last().expect("a last dimension");
        let normed = x.layer_norm([d], None::<&Tensor>, None::<&Tensor>, LN_EPS, false);
        let lead = broadcast_shape(x.dim(), x.size()[0], d);
        normed * self.get(&format!("{prefix}.weight")).view(lead.as_slice())
            + self.get(&format!("{prefix}.bias")).view(lead.as_slice())
    }

    /// BatchNorm1d over `x [K, B, C]`. In training, each member normalises by the mean and
    /// (biased) variance of its real rows (`rows [K, B]` float, 1 for a real row), and updates its
    /// running statistics as PyTorch does (unbiased variance, momentum 0.1) unless it has no row
    /// in this batch. In evaluation, the running statistics.
    pub fn batch_norm(&self, prefix: &str, x: &Tensor, rows: &Tensor, train: bool) -> Tensor {
        let (k, _, c) = x.size3().expect("BatchNorm input is [K, B, C]");
        let name = |part: &str| format!("{prefix}.{part}");
        let (running_mean, running_var) = (self.get(&name("running_mean")), self.get(&name("running_var")));
        let (mean, var) = if train {
            let w = rows.unsqueeze(-1);
            let n = w.sum_dim_intlist(1, true, Kind::Float); // [K, 1, 1]
            let mean = (x * &w).sum_dim_intlist(1, true, Kind::Float) / n.clamp_min(1.0);
            let centred = (x - &mean) * &w;
            let sum_sq = centred.square().sum_dim_intlist(1, true, Kind::Float);
            let var = &sum_sq / n.clamp_min(1.0);
            tch::no_grad(|| {
                let present = n.gt(0.0).view([k, 1]);
                let unbiased = (&sum_sq / (&n - 1.0).clamp_min(1.0)).view([k, c]);
                let new_mean = running_mean * (1.0 - BN_MOMENTUM) + mean.detach().view([k, c]) * BN_MOMENTUM;
                let new_var = running_var * (1.0 - BN_MOMENTUM) + unbiased * BN_MOMENTUM;
                self.set(&name("running_mean"), &new_mean.where_self(&present, running_mean));
                self.set(&name("running_var"), &new_var.where_self(&present, running_var));
            });
            (mean, var)
        } else {
            (running_mean.unsqueeze(1), running_var.unsqueeze(1))
        };
        let normed = (x - mean) / (var + BN_EPS).sqrt();
        normed * self.get(&name("weight")).unsqueeze(1) + self.get(&name("bias")).unsqueeze(1)
    }
}

/// `[K, 1, …, 1, d]` with `dims` dimensions in all.
fn broadcast_shape(dims: usize, k: i64, d: i64) -> Vec<i64> {
    let mut shape = vec![1; dims];
    shape[0] = k;
    shape[dims - 1] = d;
    shape
}
