//! Request bodies of the JSON routes, in bytes: every JSON body has a stated bound. Uploads
//! (checkpoints, datasets) stream to disk under the core's own byte limits instead
//! (`CoordinatorOptions::max_checkpoint_bytes`, `max_dataset_bytes`).

/// Bounds per route, named in the 413 a body over one gets.
pub(crate) mod body_limit {
    /// `POST /v1/studies`: a spec's TOML text (specs are kilobytes; a large `[[configs]]` list
    /// stays well below this).
    pub(crate) const CREATE_STUDY: usize = 4 << 20;
    /// `complete`, `prune`, `fail`: a trial's metrics and its run manifest.
    pub(crate) const RESULT: usize = 4 << 20;
    /// `progress`: one epoch's losses and accuracy.
    pub(crate) const PROGRESS: usize = 64 << 10;
    /// Every other JSON body (leases, controls, seeds): small objects.
    pub(crate) const SMALL: usize = 64 << 10;
}
