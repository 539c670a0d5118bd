//! The members' rows of one stage in one set of tensors, and the stacked batches cut from it.
//!
//! Every member's rows are concatenated once per stage, followed by one padding row (zeros,
//! length 1, unlabeled). A stacked batch is then one `index_select` of `K · width` rows: member
//! `k`'s rows of this step, then the padding row up to `width`. `rows [K, width]` marks the real
//! rows; every loss, statistic and metric of the pack counts only those.

use tch::{Device, Kind, Tensor};

use crate::batch::Batch;

/// The rows of every member of a stage, concatenated.
pub(super) struct PackedRows {
    all: Batch,
    /// Where each member's rows start in `all`.
    offsets: Vec<i64>,
    pub counts: Vec<i64>,
    /// The index of the padding row.
    padding: i64,
}

/// A batch of `width` rows per member: features `[K, width, T, D_m]`, lengths, labels and the
/// labeled flags `[K, width]`, and `rows [K, width]` (float, 1 for a real row).
pub(super) struct Stacked {
    pub x: [Tensor; 3],
    pub lengths: [Tensor; 3],
    pub y: Tensor,
    pub labeled: Tensor,
    pub rows: Tensor,
    /// The concatenated row index of every position (the padding row's where there is none).
    pub index: Tensor,
    /// Real rows per member.
    pub counts: Vec<i64>,
}

impl PackedRows {
    pub fn new(parts: &[&Batch]) -> PackedRows {
        let device = parts[0].y.device();
        let padding_row = Batch {
            x: std::array::from_fn(|m| {
                let mut shape = parts[0].x[m].size();
                shape[0] = 1;
                Tensor::zeros(shape.as_slice(), (parts[0].x[m].kind(), device))
            }),
            lengths: std::array::from_fn(|_| Tensor::ones([1], (Kind::Int64, device))),
            y: Tensor::zeros([1], (Kind::Float, device)),
            labeled: Tensor::zeros([1], (Kind::Bool, device)),
        };
        let with_padding: Vec<&Batch> = parts.iter().copied().chain(std::iter::once(&padding_row)).collect();
        let cat =
            |f: &dyn Fn(&Batch) -> &Tensor| Tensor::cat(&with_padding.iter().map(|b| f(b)).collect::<Vec<_>>(), 0);
        let all = Batch {
            x: std::array::from_fn(|m| cat(&|b: &Batch| &b.x[m])),
            lengths: std::array::from_fn(|m| cat(&|b: &Batch| &b.lengths[m])),
            y: cat(&|b: &Batch| &b.y),
            labeled: cat(&|b: &Batch| &b.labeled),
        };
        let counts: Vec<i64> = parts.iter().map(|b| b.len()).collect();
        let mut offsets = Vec::with_capacity(counts.len());
        let mut at = 0;
        for &n in &counts {
            offsets.push(at);
            at += n;
        }
        PackedRows { all, offsets, counts, padding: at }
    }

    pub fn device(&self) -> Device {
        self.all.y.device()
    }

    /// Member `m`'s labels `[N_m]`.
    pub fn labels(&self, member: usize) -> Tensor {
        self.all.y.narrow(0, self.offsets[member], self.counts[member])
    }

    /// One stacked batch: `picks[p]` are the local row indices of the member at position `p` of
    /// the pack (`members[p]` indexes this set's members), padded to `width`.
    pub fn gather(&self, members: &[usize], picks: &[&[i64]], width: i64) -> Stacked {
        let k = members.len() as i64;
        let mut index = Vec::with_capacity((k * width) as usize);
        let mut counts = Vec::with_capacity(members.len());
        let mut rows = Vec::with_capacity((k * width) as usize);
        for (&m, pick) in members.iter().zip(picks) {
            let offset = self.offsets[m];
            index.extend(pick.iter().map(|&i| offset + i));
            index.extend(std::iter::repeat_n(self.padding, width as usize - pick.len()));
            rows.extend(std::iter::repeat_n(1f32, pick.len()));
            rows.extend(std::iter::repeat_n(0f32, width as usize - pick.len()));
            counts.push(pick.len() as i64);
        }
        let device = self.device();
        let index = Tensor::from_slice(&index).to_device(device);
        let b = self.all.select(&index);
        let member_rows = |t: Tensor| {
            let mut shape = t.size();
            shape[0] = width;
            shape.insert(0, k);
            t.view(shape.as_slice())
        };
        Stacked {
            x: b.x.map(member_rows),
            lengths: b.lengths.map(member_rows),
            y: member_rows(b.y),
            labeled: member_rows(b.labeled),
            rows: Tensor::from_slice(&rows).to_device(device).view([k, width]),
            index: index.view([k, width]),
            counts,
        }
    }

    /// Chunks of `chunk` consecutive rows of every member in `members`, in order: chunk `j`
    /// holds each member's rows `j·chunk ..`, padded to the longest. For evaluation.
    pub fn chunks(&self, members: &[usize], chunk: i64) -> Vec<Stacked> {
        let longest = members.iter().map(|&m| self.counts[m]).max().unwrap_or(0);
        let mut out = Vec::new();
        let mut start = 0;
        while start < longest {
            let picks: Vec<Vec<i64>> =
                members.iter().map(|&m| (start..(start + chunk).min(self.counts[m])).collect()).collect();
            let width = picks.iter().map(Vec::len).max().unwrap_or(0) as i64;
            let refs: Vec<&[i64]> = picks.iter().map(Vec::as_slice).collect();
            out.push(self.gather(members, &refs, width));
            start += chunk;
        }
        out
    }
}

/// A member's shuffled batches of an epoch as CPU index lists (from [`Batch::batch_indices`],
/// which draws the shuffle from torch's generator: seed it first).
pub(super) fn epoch_batches(data: &Batch, batch_size: i64) -> Vec<Vec<i64>> {
    data.batch_indices(batch_size, true)
        .into_iter()
        .map(|idx| Vec::<i64>::try_from(idx.to_device(Device::Cpu)).expect("int64 row indices"))
        .collect()
}
