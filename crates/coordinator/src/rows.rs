//! Rows shared by the writes (`ops.rs`) and the files they describe (`dataset.rs`): a leaf
//! module that imports nothing of the crate, so that `ops → checkpoints → dataset` never leads
//! back to `ops`.

/// A dataset row to insert with a new study: the file stored by hash in the data directory.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct DatasetRow {
    pub(crate) sha256: String,
    /// The file's name in the data directory.
    pub(crate) file: String,
    pub(crate) bytes: u64,
    /// Where it came from (`file:PATH`, a synthetic generator and its seed, `none`, …).
    pub(crate) source: String,
}
