//! New studies and their datasets, and who may name a file.
//!
//! The rule: **the coordinator never opens a path a remote client names.** A study created over
//! HTTP ([`Coordinator::create_study_remote`]) whose spec names a dataset file gets it one of
//! two ways:
//!
//! - uploaded first with `PUT /v1/datasets/{sha256}` ([`Coordinator::upload_dataset`]) and named
//!   by `CreateStudy::dataset_sha256` (what `decsweep submit` does);
//! - read from below `serve --data-root DIR` only, its path canonicalised (symlinks resolved),
//!   with the same answer for a missing file and one outside the root.
//!
//! [`Coordinator::create_study`] is the in-process caller's (`decsweep run`): the user's own
//! spec on the user's own machine, whose paths are read as written.
//!
//! Every dataset file that enters the data directory is validated as a decsweep dataset first
//! (`decsweep_data`'s reader), and `GET /v1/datasets/{sha256}` serves only validated ones.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use decsweep_api::wire::{CreateStudy, DatasetStored, StudyInfo};
use decsweep_search::{Dataset, LoadOptions};
use futures_util::Stream;

use crate::dataset::{self, is_sha256};
use crate::error::{Error, Result};
use crate::ops::Inserted;
use crate::rows::DatasetRow;
use crate::{blocking, read, study, upload, Coordinator};

/// Who asked for a study, and so which paths its spec may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Caller {
    /// In-process (`decsweep run`): the spec's paths are read as written.
    Local,
    /// Over HTTP: uploaded datasets, or files below the data root.
    Remote,
}

/// Dataset intake settings and which stored datasets have been validated.
#[derive(Debug)]
pub(crate) struct Datasets {
    /// `serve --data-root`, canonical.
    root: Option<PathBuf>,
    max_bytes: u64,
    /// Hashes whose stored file passed validation (since start-up).
    validated: Mutex<HashSet<String>>,
    /// Validation reads a whole file into memory: one at a time.
    validating: tokio::sync::Semaphore,
}

impl Datasets {
    /// Canonicalises the data root, which must be a folder.
    pub(crate) fn new(root: Option<&Path>, max_bytes: u64) -> Result<Datasets> {
        let root = match root {
            None => None,
            Some(dir) => {
                let real = std::fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?;
                if !real.is_dir() {
                    return Err(Error::BadRequest(format!("the data root {} is not a folder", dir.display())));
                }
                Some(real)
            }
        };
        Ok(Datasets {
            root,
            max_bytes,
            validated: Mutex::new(HashSet::new()),
            validating: tokio::sync::Semaphore::new(1),
        })
    }

    fn is_validated(&self, sha256: &str) -> bool {
        self.validated.lock().unwrap_or_else(|p| p.into_inner()).contains(sha256)
    }

    fn note_validated(&self, sha256: &str) {
        self.validated.lock().unwrap_or_else(|p| p.into_inner()).insert(sha256.to_string());
    }
}

/// Refuses a `sha256` that is not lowercase hex (400); `field` prefixes the message, e.g.
/// "`dataset_sha256` ".
fn require_sha256(sha256: &str, field: &str) -> Result<()> {
    if is_sha256(sha256) {
        return Ok(());
    }
    Err(Error::BadRequest(format!("{field}`{sha256}` is not a sha256 in lowercase hex")))
}

/// The answer to a study naming a file it may not read: the same for a missing file and one
/// outside the root.
fn unreadable_path(written: &str, root: Option<&Path>) -> Error {
    let rule = match root {
        Some(_) => "is not a file below this coordinator's --data-root",
        None => "cannot be read by this coordinator, which reads no dataset files named by clients",
    };
    Error::Unprocessable(format!(
        "dataset `{written}` {rule}: upload it with `decsweep submit` (PUT /v1/datasets/{{sha256}}, then \
         `dataset_sha256` in the request), or start the coordinator with `serve --data-root DIR` and name a \
         file below DIR"
    ))
}

impl Coordinator {
    /// Creates a study from a spec: validates it, stores its dataset by hash and inserts every
    /// trial. The same name with the same spec text returns the existing study (`created:
    /// false`); with a different spec it is [`Error::StudyConflict`].
    ///
    /// For the in-process caller only (`decsweep run`): a dataset file is read at the path the
    /// spec names, relative to `spec_path`. The HTTP API uses
    /// [`Coordinator::create_study_remote`].
    pub async fn create_study(&self, req: CreateStudy) -> Result<StudyInfo> {
        self.create(req, Caller::Local).await
    }

    /// [`Coordinator::create_study`] for a request from a client (`POST /v1/studies`): a
    /// dataset file must have been uploaded (`dataset_sha256`) or lie below the data root.
    pub async fn create_study_remote(&self, req: CreateStudy) -> Result<StudyInfo> {
        self.create(req, Caller::Remote).await
    }

    async fn create(&self, req: CreateStudy, caller: Caller) -> Result<StudyInfo> {
        let req = Arc::new(req);
        // Only the local caller's spec is checked against this machine's files.
        let options = LoadOptions { check_dataset: caller == Caller::Local && req.dataset_sha256.is_none() };
        let spec = {
            let req = req.clone();
            Arc::new(blocking(move || study::parse(&req, &options)).await?)
        };
        let name = spec.name().to_string();
        if let Some(existing) = self.existing_study(&name, &req.spec).await? {
            return Ok(existing);
        }
        let data_dir = self.inner.data_dir.clone();
        let dataset = match (spec.dataset().clone(), req.dataset_sha256.as_deref()) {
            (Dataset::File { written, .. }, Some(sha)) => self.uploaded_dataset(sha, &written).await?,
            (Dataset::File { path, .. }, None) if caller == Caller::Local => self.store_dataset_file(path).await?,
            (Dataset::File { written, path }, None) => {
                let root = self.inner.datasets.root.clone();
                let readable = root.as_deref().and_then(|root| dataset::below_root(root, &path));
                match readable {
                    Some(path) => self.store_dataset_file(path).await?,
                    None => return Err(unreadable_path(&written, root.as_deref())),
                }
            }
            (_, Some(_)) => {
                return Err(Error::Unprocessable(
                    "`dataset_sha256` names an uploaded dataset, but the spec's `dataset` is not a file".into(),
                ))
            }
            (Dataset::Synthetic { seed, n, generator }, None) => {
                let source = dataset::synthetic_source(seed, n, &generator);
                let known = self.inner.store.read(move |c| read::dataset_by_source(c, &source)).await?;
                match known.filter(|row| data_dir.join(&row.file).is_file()) {
                    Some(row) => row,
                    None => {
                        let row = blocking(move || dataset::store_synthetic(seed, n, &generator, &data_dir)).await?;
                        self.inner.datasets.note_validated(&row.sha256);
                        row
                    }
                }
            }
            (Dataset::None, None) => blocking(move || dataset::store_empty(&data_dir)).await?,
        };
        let new = {
            let (req, spec) = (req.clone(), spec.clone());
            blocking(move || study::new_study(&req, &spec, dataset)).await?
        };
        let n_trials = new.trials.len();
        let inserted = self.inner.store.write(move |ctx| ctx.insert_study(&new)).await?;
        let mut info = self.study(&name).await?;
        if inserted == Inserted::Created {
            info.created = true;
            tracing::info!(study = %name, trials = n_trials, dataset = %info.dataset_sha256, "study created");
            self.inner.work.notify_waiters();
        }
        Ok(info)
    }

    async fn existing_study(&self, name: &str, spec: &str) -> Result<Option<StudyInfo>> {
        let owned = name.to_string();
        match self.inner.store.read(move |c| read::study_spec(c, &owned)).await? {
            Some((_, text)) if text == spec => Ok(Some(self.study(name).await?)),
            Some(_) => Err(Error::StudyConflict { name: name.to_string() }),
            None => Ok(None),
        }
    }

    /// Copies a file the caller may read into the data directory, validated.
    async fn store_dataset_file(&self, path: PathBuf) -> Result<DatasetRow> {
        let _one = self.inner.datasets.validating.acquire().await.map_err(|_| Error::Closed)?;
        let data_dir = self.inner.data_dir.clone();
        let row = blocking(move || dataset::store_file(&path, &data_dir)).await?;
        self.inner.datasets.note_validated(&row.sha256);
        Ok(row)
    }

    /// The stored upload `sha256`, for a spec whose dataset was `written`.
    async fn uploaded_dataset(&self, sha256: &str, written: &str) -> Result<DatasetRow> {
        require_sha256(sha256, "`dataset_sha256` ")?;
        let Some((path, bytes)) = self.stored_dataset_file(sha256).await? else {
            return Err(Error::Unprocessable(format!(
                "dataset {sha256} (`{written}`) has not been uploaded: PUT /v1/datasets/{sha256} first \
                 (`decsweep submit` does)"
            )));
        };
        self.ensure_validated(sha256, &path).await?;
        Ok(DatasetRow {
            file: dataset::file_name(sha256),
            sha256: sha256.to_string(),
            bytes,
            source: format!("upload:{written}"),
        })
    }

    /// The file of `sha256` in the data directory and its size, if there is one.
    async fn stored_dataset_file(&self, sha256: &str) -> Result<Option<(PathBuf, u64)>> {
        let path = self.inner.data_dir.join(dataset::file_name(sha256));
        match tokio::fs::metadata(&path).await {
            Ok(meta) if meta.is_file() => Ok(Some((path, meta.len()))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    /// Validates a stored dataset once per start-up (files stored by an older coordinator were
    /// not checked; the empty file of a study of programs is not a dataset).
    async fn ensure_validated(&self, sha256: &str, path: &Path) -> Result<()> {
        if self.inner.datasets.is_validated(sha256) {
            return Ok(());
        }
        let _one = self.inner.datasets.validating.acquire().await.map_err(|_| Error::Closed)?;
        let (owned, shown) = (path.to_path_buf(), format!("dataset {sha256}"));
        blocking(move || dataset::validate(&owned, &shown)).await?;
        self.inner.datasets.note_validated(sha256);
        Ok(())
    }

    /// `PUT /v1/datasets/{sha256}`: stores an uploaded dataset under its hash. The body is
    /// streamed to a temporary file (at most [`crate::CoordinatorOptions::max_dataset_bytes`],
    /// else 413), its hash must be the one named (422) and it must be a decsweep dataset (422);
    /// only then does it take its content address. A hash already stored answers at once,
    /// `created: false`, without reading the body.
    pub async fn upload_dataset<B, E>(
        &self,
        sha256: &str,
        body: impl Stream<Item = std::result::Result<B, E>> + Send,
    ) -> Result<DatasetStored>
    where
        B: AsRef<[u8]> + Send,
        E: std::fmt::Display + Send,
    {
        require_sha256(sha256, "")?;
        if let Some((path, bytes)) = self.stored_dataset_file(sha256).await? {
            self.ensure_validated(sha256, &path).await?;
            return Ok(DatasetStored { sha256: sha256.to_string(), bytes, created: false });
        }
        let limit = self.inner.datasets.max_bytes;
        let too_large =
            || Error::TooLarge(format!("the dataset is over this coordinator's upload limit of {limit} bytes"));
        let received = upload::receive(body, &self.inner.data_dir, limit, "dataset", too_large).await?;
        if received.sha256 != sha256 {
            return Err(Error::Unprocessable(format!(
                "the uploaded bytes have SHA-256 {}, not the {sha256} named in the path ({} bytes arrived): \
                 truncated or another file",
                received.sha256, received.bytes
            )));
        }
        let bytes = received.bytes;
        {
            let _one = self.inner.datasets.validating.acquire().await.map_err(|_| Error::Closed)?;
            let (data_dir, sha) = (self.inner.data_dir.clone(), sha256.to_string());
            // The temporary file goes with `received` on every error.
            blocking(move || {
                dataset::validate(&received.temp, "the upload")?;
                let temp = received.temp.keep().map_err(|e| Error::io(&data_dir, e.error))?;
                dataset::settle(&temp, &data_dir, &sha).map(drop)
            })
            .await?;
        }
        self.inner.datasets.note_validated(sha256);
        tracing::info!(sha256, bytes, "stored an uploaded dataset");
        Ok(DatasetStored { sha256: sha256.to_string(), bytes, created: true })
    }

    /// Path and size of a stored, validated dataset: one a study uses, or an upload.
    pub async fn dataset_path(&self, sha256: &str) -> Result<(PathBuf, u64)> {
        require_sha256(sha256, "")?;
        let sha = sha256.to_string();
        let row = self.inner.store.read(move |c| read::dataset(c, &sha)).await?;
        let (path, bytes) = match row {
            Some((file, bytes)) => (self.inner.data_dir.join(file), bytes),
            None => self.stored_dataset_file(sha256).await?.ok_or_else(|| Error::DatasetNotFound(sha256.into()))?,
        };
        if !path.is_file() {
            return Err(Error::DatasetNotFound(sha256.into()));
        }
        self.ensure_validated(sha256, &path).await.map_err(|e| match e {
            Error::Unprocessable(reason) => Error::Unprocessable(format!("{reason}; it is not served")),
            other => other,
        })?;
        Ok((path, bytes))
    }
}
