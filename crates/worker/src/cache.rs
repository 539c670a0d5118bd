//! Stage checkpoints shared between trials, stored under a directory by content key.
//!
//! The key of a stage is the SHA-256 of the dataset's hash, the seed, the pipeline's stage and
//! every parameter that stage and its upstream stages read (`Params::stage_inputs`), so two
//! trials that differ only downstream (e.g. in `lr_ft`, or `beta` for the AE stage) share it, and
//! of [`decsweep_model::TRAINER_REVISION`], so a stage an older build trained is never reused.

use std::path::{Path, PathBuf};

use decsweep_api::{Params, Pipeline, Stage};
use decsweep_model::{Checkpoint, StageCache};
use sha2::{Digest, Sha256};

pub struct DirCache {
    dir: PathBuf,
    dataset_hash: String,
    params: Params,
    pipeline: Pipeline,
    seed: u64,
    /// How many stages were loaded instead of trained.
    pub reuses: usize,
}

impl DirCache {
    pub fn new(
        dir: &Path,
        dataset_hash: &str,
        params: &Params,
        pipeline: Pipeline,
        seed: u64,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(DirCache {
            dir: dir.to_path_buf(),
            dataset_hash: dataset_hash.to_string(),
            params: params.clone(),
            pipeline,
            seed,
            reuses: 0,
        })
    }

    pub fn key(&self, stage: Stage) -> String {
        let inputs = serde_json::json!({
            "trainer": decsweep_model::TRAINER_REVISION,
            "dataset": self.dataset_hash,
            "seed": self.seed,
            "stage": stage,
            "params": self.params.stage_inputs(self.pipeline, stage),
        });
        let digest = Sha256::digest(inputs.to_string().as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn path(&self, stage: Stage) -> PathBuf {
        self.dir.join(format!("{stage}-{}.safetensors", self.key(stage)))
    }
}

impl StageCache for DirCache {
    fn load(&mut self, stage: Stage) -> Option<Checkpoint> {
        let path = self.path(stage);
        if !path.exists() {
            return None;
        }
        match Checkpoint::load(&path) {
            Ok(ckpt) => {
                self.reuses += 1;
                Some(ckpt)
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "unreadable cached checkpoint; training the stage again");
                None
            }
        }
    }

    fn store(&mut self, stage: Stage, checkpoint: &Checkpoint) {
        let path = self.path(stage);
        if let Err(e) = checkpoint.save(&path) {
            tracing::warn!(path = %path.display(), error = %e, "could not cache the stage checkpoint");
        }
    }
}
