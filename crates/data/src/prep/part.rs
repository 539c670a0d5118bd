//! One part (train, validation or test) of the prepared data.

/// Rows of one part, ready for the model: every array is row-major and indexed by the same row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Part {
    /// Per modality `[n, seq_len, dims[m]]`, normalised, exactly 0 at padded steps.
    pub features: [Vec<f32>; 3],
    /// Valid steps per row per modality, clamped to `seq_len`, at least 1.
    pub lengths: [Vec<i64>; 3],
    /// Binarised truth for every row: 0.0 negative, 1.0 positive.
    pub labels: Vec<f32>,
    /// Whether training may see this row's label (the labeled subset).
    pub labeled: Vec<bool>,
    /// Index of each row in the source [`crate::Dataset`], for traceability.
    pub rows: Vec<usize>,
}

impl Part {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The rows at positions `keep` (positions in this part, not dataset rows), in that order.
    ///
    /// # Panics
    /// If a position is `>= self.len()`, like slice indexing: positions come from the caller's
    /// own code, not from user input.
    pub fn select(&self, keep: &[usize]) -> Part {
        let n = self.len();
        let features = std::array::from_fn(|m| {
            let src = &self.features[m];
            // The row stride is implied by the data; an empty part has nothing to copy.
            let stride = src.len().checked_div(n).unwrap_or(0);
            let mut out = Vec::with_capacity(keep.len() * stride);
            for &i in keep {
                out.extend_from_slice(&src[i * stride..(i + 1) * stride]);
            }
            out
        });
        Part {
            features,
            lengths: std::array::from_fn(|m| keep.iter().map(|&i| self.lengths[m][i]).collect()),
            labels: keep.iter().map(|&i| self.labels[i]).collect(),
            labeled: keep.iter().map(|&i| self.labeled[i]).collect(),
            rows: keep.iter().map(|&i| self.rows[i]).collect(),
        }
    }

    /// The rows whose labels training may see.
    pub fn labeled_only(&self) -> Part {
        let keep: Vec<usize> = (0..self.len()).filter(|&i| self.labeled[i]).collect();
        self.select(&keep)
    }

    /// Number of rows whose labels training may see.
    pub fn n_labeled(&self) -> usize {
        self.labeled.iter().filter(|&&l| l).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part() -> Part {
        // 3 rows; modality 0 has 2 values per row, modality 1 one, modality 2 three.
        Part {
            features: [
                vec![0., 1., 10., 11., 20., 21.],
                vec![0., 10., 20.],
                vec![0., 1., 2., 10., 11., 12., 20., 21., 22.],
            ],
            lengths: [vec![1, 2, 1], vec![1, 1, 1], vec![3, 2, 1]],
            labels: vec![0., 1., 1.],
            labeled: vec![true, false, true],
            rows: vec![7, 8, 9],
        }
    }

    #[test]
    fn select_and_labeled_only_keep_rows_together() {
        let p = part();
        let s = p.select(&[2, 0]);
        assert_eq!(s.features[0], vec![20., 21., 0., 1.]);
        assert_eq!(s.features[2], vec![20., 21., 22., 0., 1., 2.]);
        assert_eq!(s.lengths[2], vec![1, 3]);
        assert_eq!((s.rows.clone(), s.labels.clone()), (vec![9, 7], vec![1., 0.]));
        let l = p.labeled_only();
        assert_eq!(l.rows, vec![7, 9]);
        assert_eq!(l.features[1], vec![0., 20.]);
        assert_eq!((p.n_labeled(), l.len(), l.is_empty()), (2, 2, false));
        assert!(Part::default().select(&[]).is_empty());
    }
}
