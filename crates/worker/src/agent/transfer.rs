//! Moving a trial's files between the coordinator and this machine: datasets (downloaded once
//! per machine and verified), trial checkpoints (a model child's state file, a program's packed
//! checkpoint directory) down before a trial and up as it saves them.
//!
//! It knows files, hashes and the coordinator's routes for them; it does not know how a trial
//! runs or when it saves.

use std::collections::HashSet;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context};
use decsweep_api::wire::{CheckpointInfo, CheckpointUpload, DatasetRef, Lease};
use decsweep_api::Stage;
use reqwest::blocking::Response;
use sha2::{Digest, Sha256};

use crate::protocol::SavedCheckpoint;
use decsweep_connect::Client;

/// The transfers of one worker, shared by its slots.
#[derive(Clone)]
pub(crate) struct Transfer {
    client: Client,
    /// Where `datasets/` and `checkpoints/` are.
    home: PathBuf,
    /// The hashes of the datasets whose file in `datasets/` this process has checked (hash and
    /// content). Locked for a whole fetch: one dataset download at a time on this machine, so
    /// slots wanting the same file fetch it once.
    checked_datasets: Arc<Mutex<HashSet<String>>>,
}

/// Why a trial has no dataset file.
#[derive(Debug)]
pub(crate) enum DatasetFailure {
    /// Fetching it failed (network, disk): another attempt may succeed.
    Transfer(anyhow::Error),
    /// The coordinator's own copy is not a dataset (stored by an older coordinator that did not
    /// check it): no attempt will do better.
    Invalid(String),
}

impl std::fmt::Display for DatasetFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatasetFailure::Transfer(e) => write!(f, "{e:#}"),
            DatasetFailure::Invalid(reason) => f.write_str(reason),
        }
    }
}

/// The study's dataset as its user knows it, for messages: "the dataset of study `x`
/// (file:/home/u/mosi.safetensors, sha256 233d48…)".
fn describe_dataset(study: &str, dataset: &DatasetRef) -> String {
    let sha = dataset.sha256.get(..12).unwrap_or(&dataset.sha256);
    match &dataset.source {
        Some(source) => format!("the dataset of study `{study}` ({source}, sha256 {sha}…)"),
        None => format!("the dataset of study `{study}` (sha256 {sha}…)"),
    }
}

impl Transfer {
    pub(crate) fn new(client: Client, home: PathBuf) -> Self {
        Transfer { client, home, checked_datasets: Arc::new(Mutex::new(HashSet::new())) }
    }

    /// The trial's checkpoint file on this machine: the coordinator's copy when the lease says
    /// there is one (downloaded and verified), else none (a stale local file is removed, so the
    /// coordinator's record is the only truth). A download that fails is logged and the trial
    /// starts from scratch.
    pub(crate) fn prepare_checkpoint(&self, lease: &Lease) -> PathBuf {
        let path = self.home.join("checkpoints").join(format!("{}.ckpt", lease.trial_id));
        let _ = fs::remove_file(&path);
        if let Some(stored) = &lease.resume {
            match self.download_checkpoint(lease, stored, &path) {
                Ok(()) => tracing::info!(trial = lease.trial_id, stage = %stored.stage, epoch = stored.epoch,
                    bytes = stored.bytes, "resuming from the stored checkpoint"),
                Err(e) => {
                    let _ = fs::remove_file(&path);
                    tracing::warn!(trial = lease.trial_id, error = %format!("{e:#}"),
                        "could not fetch the trial's checkpoint; starting it from scratch");
                }
            }
        }
        path
    }

    fn download_checkpoint(&self, lease: &Lease, stored: &CheckpointInfo, path: &Path) -> anyhow::Result<()> {
        self.download_verified(self.client.download_checkpoint(&lease.lease_id)?, &stored.sha256, path, "checkpoint")
    }

    /// Saves a download (`response`) to `path` through a temporary file, keeping it only when its
    /// SHA-256 is `sha256`.
    fn download_verified(&self, mut response: Response, sha256: &str, path: &Path, what: &str) -> anyhow::Result<()> {
        let tmp = path.with_extension(format!("part-{}", std::process::id()));
        let mut file = fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = response.read(&mut buf).with_context(|| format!("downloading the {what}"))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n]).with_context(|| format!("writing {}", tmp.display()))?;
        }
        file.sync_all()?;
        let got = hex(&hasher.finalize());
        if got != sha256 {
            let _ = fs::remove_file(&tmp);
            bail!("the downloaded {what} has SHA-256 {got}, expected {sha256}");
        }
        fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        Ok(())
    }

    /// Uploads the state the trial just saved. Failures are logged and training goes on: the
    /// trial then resumes from an older state, or starts over, if it is preempted.
    pub(crate) fn upload_checkpoint(&self, lease: &Lease, saved: &SavedCheckpoint) -> bool {
        let uploaded = (|| -> anyhow::Result<u64> {
            let bytes = fs::read(&saved.path).with_context(|| format!("reading {}", saved.path.display()))?;
            let sha256 = hex(&Sha256::digest(&bytes));
            let upload = CheckpointUpload { stage: saved.stage, epoch: saved.epoch, sha256 };
            let size = bytes.len() as u64;
            self.client.upload_checkpoint(&lease.lease_id, &upload, bytes)?;
            Ok(size)
        })();
        match uploaded {
            Ok(bytes) => {
                tracing::info!(trial = lease.trial_id, stage = %saved.stage, epoch = saved.epoch, bytes, "checkpoint uploaded");
                true
            }
            Err(e) => {
                tracing::warn!(trial = lease.trial_id, error = %format!("{e:#}"), "checkpoint not uploaded; the trial goes on");
                false
            }
        }
    }

    /// An empty `DECSWEEP_CHECKPOINT_DIR`, filled with the coordinator's copy of the trial's
    /// checkpoint when `restore` and the lease has one (a copy that cannot be fetched or unpacked is logged and
    /// the program starts afresh).
    pub(crate) fn prepare_state_dir(&self, lease: &Lease, dir: &Path, restore: bool) -> anyhow::Result<()> {
        if dir.exists() {
            fs::remove_dir_all(dir).with_context(|| format!("emptying {}", dir.display()))?;
        }
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let Some(stored) = lease.resume.as_ref().filter(|_| restore) else { return Ok(()) };
        let archive = dir.with_extension("download");
        let restored = self
            .download_checkpoint(lease, stored, &archive)
            .and_then(|()| fs::read(&archive).context("reading the downloaded checkpoint"))
            .and_then(|bytes| crate::dirpack::unpack(&bytes, dir));
        let _ = fs::remove_file(&archive);
        match restored {
            Ok(files) => {
                tracing::info!(trial = lease.trial_id, files, step = stored.epoch, "checkpoint directory restored")
            }
            Err(e) => {
                tracing::warn!(trial = lease.trial_id, error = %format!("{e:#}"),
                    "could not restore the checkpoint directory; the program starts afresh");
                fs::remove_dir_all(dir)?;
                fs::create_dir_all(dir)?;
            }
        }
        Ok(())
    }

    /// Uploads the program's checkpoint directory, unless it is empty or unchanged since the
    /// last upload (`uploaded`).
    pub(crate) fn upload_state_dir(
        &self,
        lease: &Lease,
        dir: &Path,
        step: Option<u32>,
        uploaded: &mut Option<Vec<u8>>,
    ) {
        let packed = match crate::dirpack::pack(dir) {
            Ok(Some(p)) => p,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(trial = lease.trial_id, error = %format!("{e:#}"), "could not pack the checkpoint directory");
                return;
            }
        };
        if uploaded.as_ref() == Some(&packed) {
            return;
        }
        let archive = dir.with_extension("upload");
        if let Err(e) = fs::write(&archive, &packed) {
            tracing::warn!(trial = lease.trial_id, error = %e, "could not write the checkpoint archive");
            return;
        }
        let saved = SavedCheckpoint { path: archive.clone(), stage: Stage::Finetune, epoch: step.unwrap_or(0) };
        if self.upload_checkpoint(lease, &saved) {
            *uploaded = Some(packed);
        }
        let _ = fs::remove_file(&archive);
    }

    /// The study's dataset file on this machine, downloaded once per machine. Each process
    /// checks a cached copy once before trusting it: a copy whose hash is not the dataset's (a
    /// disk error, an edit) is downloaded again, and a copy that is not a dataset fails the
    /// trial with both the study's dataset and the cache file named, instead of every trial's
    /// child saying only that some file under the cache is broken.
    pub(crate) fn fetch_dataset(&self, study: &str, dataset: &DatasetRef) -> Result<PathBuf, DatasetFailure> {
        let sha256 = dataset.sha256.as_str();
        let named = describe_dataset(study, dataset);
        if sha256.len() != 64 || !sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(DatasetFailure::Invalid(format!("{named}: `{sha256}` is not a SHA-256 hex digest")));
        }
        let path = self.home.join("datasets").join(format!("{sha256}.safetensors"));
        let mut checked = self.checked_datasets.lock().unwrap_or_else(|p| p.into_inner());
        if checked.contains(sha256) && path.is_file() {
            return Ok(path);
        }
        if path.exists() {
            match decsweep_data::content_hash(&path) {
                Ok(got) if got == sha256 => {}
                found => {
                    let found = found.map_or_else(|e| e.to_string(), |got| format!("its SHA-256 is {got}"));
                    tracing::warn!(cache_file = %path.display(), "the cached copy of {named} is not that dataset ({found}); downloading it again");
                    fs::remove_file(&path)
                        .with_context(|| format!("removing the stale cache file {}", path.display()))
                        .map_err(DatasetFailure::Transfer)?;
                }
            }
        }
        if !path.exists() {
            self.client
                .download_dataset(sha256)
                .map_err(anyhow::Error::from)
                .and_then(|response| self.download_verified(response, sha256, &path, "dataset"))
                .with_context(|| format!("fetching {named} into {}", path.display()))
                .map_err(DatasetFailure::Transfer)?;
        }
        if let Err(e) = decsweep_data::load(&path) {
            let _ = fs::remove_file(&path);
            return Err(DatasetFailure::Invalid(format!("{named} is not a usable dataset; its cached copy says: {e}")));
        }
        checked.insert(sha256.to_string());
        Ok(path)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
