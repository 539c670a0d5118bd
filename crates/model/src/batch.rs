//! Prepared data as device tensors, and mini-batches cut from it.

use tch::{Device, Kind, Tensor};

use decsweep_data::Part;

/// A set of rows as tensors: features `[N, T, D_m]`, lengths `[N]` (int64), binary labels `[N]`
/// (float) and whether each label may be used for training `[N]` (bool).
#[derive(Debug)]
pub struct Batch {
    pub x: [Tensor; 3],
    pub lengths: [Tensor; 3],
    pub y: Tensor,
    pub labeled: Tensor,
}

impl Batch {
    /// Moves a prepared part onto `device` once; batches are then cut on the device.
    pub fn from_part(part: &Part, seq_len: usize, dims: [usize; 3], device: Device) -> Batch {
        let n = part.len() as i64;
        let x = std::array::from_fn(|m| {
            Tensor::from_slice(&part.features[m]).view([n, seq_len as i64, dims[m] as i64]).to_device(device)
        });
        let lengths = std::array::from_fn(|m| Tensor::from_slice(&part.lengths[m]).to_device(device));
        let labeled: Vec<u8> = part.labeled.iter().map(|&b| b as u8).collect();
        Batch {
            x,
            lengths,
            y: Tensor::from_slice(&part.labels).to_device(device),
            labeled: Tensor::from_slice(&labeled).to_kind(Kind::Bool).to_device(device),
        }
    }

    pub fn len(&self) -> i64 {
        self.y.size()[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows at `index` (int64 tensor on the same device).
    pub fn select(&self, index: &Tensor) -> Batch {
        Batch {
            x: std::array::from_fn(|m| self.x[m].index_select(0, index)),
            lengths: std::array::from_fn(|m| self.lengths[m].index_select(0, index)),
            y: self.y.index_select(0, index),
            labeled: self.labeled.index_select(0, index),
        }
    }

    /// Only the rows whose label training may use.
    pub fn labeled_rows(&self) -> Batch {
        self.select(&self.labeled.nonzero().squeeze_dim(1))
    }

    /// Row indices in batches of `size`: shuffled with torch's generator when `shuffle`.
    /// A trailing batch of one row is dropped when shuffling, because BatchNorm cannot
    /// normalise a single sample in training mode.
    pub fn batch_indices(&self, size: i64, shuffle: bool) -> Vec<Tensor> {
        let n = self.len();
        let device = self.y.device();
        let order = if shuffle {
            Tensor::randperm(n, (Kind::Int64, Device::Cpu)).to_device(device)
        } else {
            Tensor::arange(n, (Kind::Int64, device))
        };
        let mut out = Vec::new();
        let mut start = 0;
        while start < n {
            let len = size.min(n - start);
            if !(shuffle && len == 1 && n > 1) {
                out.push(order.narrow(0, start, len));
            }
            start += len;
        }
        out
    }
}

/// The prepared rows on the training device.
pub struct TrainSet {
    /// Every training row; `labeled` marks those whose label may be used.
    pub train: Batch,
    /// Every validation row.
    pub val: Batch,
    pub test: Option<Batch>,
}

impl TrainSet {
    pub fn from_prepared(p: &decsweep_data::Prepared, device: Device) -> TrainSet {
        let to = |part| Batch::from_part(part, p.seq_len, p.dims, device);
        TrainSet { train: to(&p.train), val: to(&p.val), test: p.test.as_ref().map(to) }
    }
}
