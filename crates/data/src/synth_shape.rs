//! What both synthetic generators share: the dataset's shape and MOSI's split. A leaf, so the
//! plain generator (`synth`) can dispatch to the clustered one without the two importing each
//! other.

use crate::rng::DetRng;

/// What to generate. `Default` is CMU-MOSI's shape: 2199 utterances, GloVe 300 / COVAREP 74 /
/// FACET 47 features, up to 50 steps.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthConfig {
    pub n: usize,
    pub seed: u64,
    /// Features per modality: text, audio, vision.
    pub dims: [usize; 3],
    /// Steps per row in the file (T); the longest length.
    pub max_len: usize,
    /// The shortest length.
    pub min_len: usize,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig { n: 2199, seed: 0, dims: [300, 74, 47], max_len: 50, min_len: 5 }
    }
}

/// MOSI's standard split sizes: train, valid, test.
pub(crate) const MOSI_SPLIT: [usize; 3] = [1284, 229, 686];

/// MOSI's split proportions scaled to `n`, in shuffled order.
pub(crate) fn split_tensor(rng: &mut DetRng, n: usize) -> Vec<u8> {
    let total: usize = MOSI_SPLIT.iter().sum();
    let valid = (n * MOSI_SPLIT[1] + total / 2) / total;
    let test = (n * MOSI_SPLIT[2] + total / 2) / total;
    let train = n.saturating_sub(valid + test);
    let mut split: Vec<u8> =
        [(0u8, train), (1, valid), (2, test)].iter().flat_map(|&(v, k)| std::iter::repeat_n(v, k)).collect();
    rng.shuffle(&mut split);
    split
}
