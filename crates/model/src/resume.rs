//! A trial's resumable state at an epoch boundary, and the file that holds it.
//!
//! The state is everything the epochs still to run depend on: the stage in progress and how many
//! of its epochs are done, every variable of its network (BatchNorm statistics and DEC's cluster
//! map included), the optimiser's moments and step counts, the classifier's best epoch so far,
//! DEC's target distribution P, the DEC stage's readout (its head's accuracy and the pseudo-labels
//! fine-tuning trains on), the curves so far and the reports of the finished stages. The
//! network of a stage in progress already holds what it took from the stages before it (the
//! classifier's encoders from DEC, DEC's from the AE), so a state needs nothing else. The random
//! generator is not part of it: training reseeds torch at every epoch from (seed, stage, epoch).
//!
//! File layout: `MAGIC` (8 bytes) ‖ SHA-256 of the payload (32 bytes) ‖ payload, where the payload
//! is a safetensors blob whose metadata entry `decsweep` is the JSON `Header`. Floats in the
//! header are stored as their bit patterns, so a resumed trial's curves and best epoch compare
//! bit for bit. The trial's identity (the caller's hash of dataset, pipeline, parameters and
//! seed) is in the header; [`TrialState::load`] refuses a file of another trial, of another
//! format version, with a wrong hash (corrupt or truncated) or that does not parse.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, View};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tch::{Kind, Tensor};

use decsweep_api::Stage;

use crate::checkpoint::Checkpoint;
use crate::pseudo::DecReadout;
use crate::records::{EpochRecord, StageReport};

/// Version of the file layout and header; a file of another version is refused.
pub const FORMAT_VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"DSWTRIAL";
const HASH_LEN: usize = 32;
const METADATA_KEY: &str = "decsweep";

const WEIGHTS: &str = "weights/";
const OPTIMIZER: &str = "optimizer/";
const BEST: &str = "best/";
const TARGET: &str = "dec_target";
const PSEUDO_LABELS: &str = "pseudo_labels";

/// Why a trial state file cannot be used. Every one means: discard it and start afresh.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("trial checkpoint {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("trial checkpoint {path}: {problem}")]
    Invalid { path: PathBuf, problem: StateProblem },
}

/// What is wrong with the bytes of a trial state.
#[derive(Debug, thiserror::Error)]
pub enum StateProblem {
    #[error("not a decsweep trial checkpoint (the file does not start with {:?})", std::str::from_utf8(MAGIC).unwrap_or(""))]
    NotAState,
    #[error("content hash mismatch: the file is corrupt or truncated")]
    Corrupt,
    #[error("format version {found}, this build reads version {FORMAT_VERSION}")]
    Version { found: u32 },
    #[error("it belongs to another trial (identity {found}, this trial is {expected})")]
    OtherTrial { found: String, expected: String },
    #[error("malformed: {0}")]
    Malformed(String),
}

/// The classifier's best epoch so far (highest validation accuracy, ties: lower loss).
#[derive(Debug)]
pub struct BestSoFar {
    pub accuracy: f64,
    pub loss: f64,
    /// 1-based.
    pub epoch: usize,
    pub weights: Checkpoint,
}

/// Everything needed to go on with a trial after `epoch` epochs of `stage`.
#[derive(Debug)]
pub struct TrialState {
    pub stage: Stage,
    /// Epochs of `stage` completed (1-based count; may equal the stage's total).
    pub epoch: usize,
    /// Every variable of the stage's network.
    pub weights: Checkpoint,
    /// [`crate::optim::Adam::state`] of the stage's optimiser.
    pub optimizer: Vec<(String, Tensor)>,
    /// Fine-tuning only.
    pub best: Option<BestSoFar>,
    /// DEC only: the target distribution P over the training rows, as last recomputed.
    pub target: Option<Tensor>,
    /// Every epoch of every stage so far, in order.
    pub curves: Vec<EpochRecord>,
    /// Reports of the stages finished before `stage`.
    pub finished_stages: Vec<StageReport>,
    /// How many times the trial had been resumed when this state was saved.
    pub resumes: u32,
    /// Fine-tuning of a `dec` trial: what the DEC stage handed on ([`DecReadout`]).
    pub dec_readout: Option<DecReadout>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    format: u32,
    identity: String,
    stage: Stage,
    epoch: usize,
    resumes: u32,
    curves: Vec<CurveRow>,
    finished_stages: Vec<StageRow>,
    best: Option<BestRow>,
    /// The DEC head's accuracies (bit patterns); absent in states saved before they existed.
    #[serde(default)]
    dec_head: Option<DecHeadRow>,
}

#[derive(Serialize, Deserialize)]
struct DecHeadRow {
    val_accuracy: Option<u64>,
    test_accuracy: Option<u64>,
}

/// An [`EpochRecord`] with its floats as bit patterns (`f64::to_bits`).
#[derive(Serialize, Deserialize)]
struct CurveRow {
    stage: Stage,
    epoch: usize,
    epochs: usize,
    train_loss: u64,
    val_loss: u64,
    val_accuracy: Option<u64>,
    elapsed_s: u64,
}

#[derive(Serialize, Deserialize)]
struct StageRow {
    stage: Stage,
    epochs_run: usize,
    wall_s: u64,
    cached: bool,
}

#[derive(Serialize, Deserialize)]
struct BestRow {
    accuracy: u64,
    loss: u64,
    epoch: usize,
}

impl TrialState {
    /// Writes the state for the trial `identity` to a temporary file beside `path`, syncs it and
    /// renames it over `path`, so a crash leaves either the old file or the new one.
    pub fn save(&self, path: &Path, identity: &str) -> Result<(), ResumeError> {
        let io = |source| ResumeError::Io { path: path.to_path_buf(), source };
        let bytes =
            self.to_bytes(identity).map_err(|problem| ResumeError::Invalid { path: path.to_path_buf(), problem })?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".tmp-{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let written = (|| {
            use std::io::Write;
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.map_err(io)
    }

    /// Reads a state saved by [`TrialState::save`] for the trial `identity`.
    pub fn load(path: &Path, identity: &str) -> Result<TrialState, ResumeError> {
        let bytes = std::fs::read(path).map_err(|source| ResumeError::Io { path: path.to_path_buf(), source })?;
        TrialState::from_bytes(&bytes, identity)
            .map_err(|problem| ResumeError::Invalid { path: path.to_path_buf(), problem })
    }

    pub fn to_bytes(&self, identity: &str) -> Result<Vec<u8>, StateProblem> {
        let header = Header {
            format: FORMAT_VERSION,
            identity: identity.to_string(),
            stage: self.stage,
            epoch: self.epoch,
            resumes: self.resumes,
            curves: self.curves.iter().map(CurveRow::from).collect(),
            finished_stages: self
                .finished_stages
                .iter()
                .map(|s| StageRow {
                    stage: s.stage,
                    epochs_run: s.epochs_run,
                    wall_s: s.wall_s.to_bits(),
                    cached: s.cached,
                })
                .collect(),
            best: self.best.as_ref().map(|b| BestRow {
                accuracy: b.accuracy.to_bits(),
                loss: b.loss.to_bits(),
                epoch: b.epoch,
            }),
            dec_head: self.dec_readout.as_ref().map(|r| DecHeadRow {
                val_accuracy: r.head_val_accuracy.map(f64::to_bits),
                test_accuracy: r.head_test_accuracy.map(f64::to_bits),
            }),
        };
        let mut tensors: Vec<(String, Blob)> = Vec::new();
        let mut add = |prefix: &str, named: &[(String, Tensor)]| -> Result<(), StateProblem> {
            for (name, t) in named {
                tensors.push((format!("{prefix}{name}"), Blob::of(t)?));
            }
            Ok(())
        };
        add(WEIGHTS, &self.weights.tensors)?;
        add(OPTIMIZER, &self.optimizer)?;
        if let Some(best) = &self.best {
            add(BEST, &best.weights.tensors)?;
        }
        if let Some(target) = &self.target {
            tensors.push((TARGET.to_string(), Blob::of(target)?));
        }
        if let Some(pseudo) = self.dec_readout.as_ref().and_then(|r| r.pseudo_labels.as_ref()) {
            tensors.push((PSEUDO_LABELS.to_string(), Blob::of(pseudo)?));
        }
        let metadata = HashMap::from([(
            METADATA_KEY.to_string(),
            serde_json::to_string(&header).map_err(|e| StateProblem::Malformed(e.to_string()))?,
        )]);
        let payload =
            safetensors::serialize(tensors, Some(metadata)).map_err(|e| StateProblem::Malformed(e.to_string()))?;
        let mut out = Vec::with_capacity(MAGIC.len() + HASH_LEN + payload.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&Sha256::digest(&payload));
        out.extend_from_slice(&payload);
        Ok(out)
    }

    pub fn from_bytes(bytes: &[u8], identity: &str) -> Result<TrialState, StateProblem> {
        if bytes.len() < MAGIC.len() + HASH_LEN || &bytes[..MAGIC.len()] != MAGIC {
            return Err(StateProblem::NotAState);
        }
        let (hash, payload) = bytes[MAGIC.len()..].split_at(HASH_LEN);
        if Sha256::digest(payload).as_slice() != hash {
            return Err(StateProblem::Corrupt);
        }
        let malformed = |what: String| StateProblem::Malformed(what);
        let (_, metadata) = SafeTensors::read_metadata(payload).map_err(|e| malformed(e.to_string()))?;
        let header_json = metadata
            .metadata()
            .as_ref()
            .and_then(|m| m.get(METADATA_KEY))
            .ok_or_else(|| malformed(format!("no `{METADATA_KEY}` metadata")))?;
        // The version first, so a future layout is named as such rather than as malformed.
        let version: serde_json::Value = serde_json::from_str(header_json).map_err(|e| malformed(e.to_string()))?;
        let found = version["format"].as_u64().ok_or_else(|| malformed("no format version".into()))?;
        if found != u64::from(FORMAT_VERSION) {
            return Err(StateProblem::Version { found: found as u32 });
        }
        let header: Header = serde_json::from_str(header_json).map_err(|e| malformed(format!("header: {e}")))?;
        if header.identity != identity {
            return Err(StateProblem::OtherTrial { found: header.identity, expected: identity.to_string() });
        }
        let blobs = SafeTensors::deserialize(payload).map_err(|e| malformed(e.to_string()))?;
        let mut weights = Vec::new();
        let mut optimizer = Vec::new();
        let mut best_weights = Vec::new();
        let mut target = None;
        let mut pseudo_labels = None;
        let mut names = blobs.names();
        names.sort();
        for name in names {
            let view = blobs.tensor(name).map_err(|e| malformed(e.to_string()))?;
            let tensor = to_tensor(name, view.dtype(), view.shape(), view.data())?;
            if let Some(n) = name.strip_prefix(WEIGHTS) {
                weights.push((n.to_string(), tensor));
            } else if let Some(n) = name.strip_prefix(OPTIMIZER) {
                optimizer.push((n.to_string(), tensor));
            } else if let Some(n) = name.strip_prefix(BEST) {
                best_weights.push((n.to_string(), tensor));
            } else if name == TARGET {
                target = Some(tensor);
            } else if name == PSEUDO_LABELS {
                pseudo_labels = Some(tensor);
            } else {
                return Err(malformed(format!("unexpected tensor `{name}`")));
            }
        }
        let best = match header.best {
            Some(b) => Some(BestSoFar {
                accuracy: f64::from_bits(b.accuracy),
                loss: f64::from_bits(b.loss),
                epoch: b.epoch,
                weights: Checkpoint { tensors: best_weights },
            }),
            None if best_weights.is_empty() => None,
            None => return Err(malformed("best-epoch weights without a best epoch".into())),
        };
        let dec_readout = match (header.dec_head, pseudo_labels) {
            (Some(head), pseudo_labels) => Some(DecReadout {
                head_val_accuracy: head.val_accuracy.map(f64::from_bits),
                head_test_accuracy: head.test_accuracy.map(f64::from_bits),
                pseudo_labels,
            }),
            (None, None) => None,
            (None, Some(_)) => return Err(malformed("pseudo-labels without the DEC readout".into())),
        };
        if header.epoch == 0 {
            return Err(malformed("epoch 0: a state is saved after an epoch".into()));
        }
        Ok(TrialState {
            stage: header.stage,
            epoch: header.epoch,
            weights: Checkpoint { tensors: weights },
            optimizer,
            best,
            target,
            curves: header.curves.into_iter().map(EpochRecord::from).collect(),
            finished_stages: header
                .finished_stages
                .into_iter()
                .map(|s| StageReport {
                    stage: s.stage,
                    epochs_run: s.epochs_run,
                    wall_s: f64::from_bits(s.wall_s),
                    cached: s.cached,
                })
                .collect(),
            resumes: header.resumes,
            dec_readout,
        })
    }
}

impl From<&EpochRecord> for CurveRow {
    fn from(r: &EpochRecord) -> Self {
        CurveRow {
            stage: r.stage,
            epoch: r.epoch,
            epochs: r.epochs,
            train_loss: r.train_loss.to_bits(),
            val_loss: r.val_loss.to_bits(),
            val_accuracy: r.val_accuracy.map(f64::to_bits),
            elapsed_s: r.elapsed_s.to_bits(),
        }
    }
}

impl From<CurveRow> for EpochRecord {
    fn from(r: CurveRow) -> Self {
        EpochRecord {
            stage: r.stage,
            epoch: r.epoch,
            epochs: r.epochs,
            train_loss: f64::from_bits(r.train_loss),
            val_loss: f64::from_bits(r.val_loss),
            val_accuracy: r.val_accuracy.map(f64::from_bits),
            elapsed_s: f64::from_bits(r.elapsed_s),
        }
    }
}

/// A tensor's bytes on the CPU, ready for safetensors.
struct Blob {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl Blob {
    fn of(t: &Tensor) -> Result<Blob, StateProblem> {
        let t = t.to_device(tch::Device::Cpu).contiguous();
        let dtype = match t.kind() {
            Kind::Float => Dtype::F32,
            Kind::Double => Dtype::F64,
            Kind::Int64 => Dtype::I64,
            other => return Err(StateProblem::Malformed(format!("cannot store a tensor of kind {other:?}"))),
        };
        let numel = t.numel();
        let mut bytes = vec![0u8; numel * t.kind().elt_size_in_bytes()];
        t.f_copy_data_u8(&mut bytes, numel).map_err(|e| StateProblem::Malformed(e.to_string()))?;
        Ok(Blob { dtype, shape: t.size().iter().map(|&d| d as usize).collect(), bytes })
    }
}

impl View for Blob {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        (&self.bytes[..]).into()
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn to_tensor(name: &str, dtype: Dtype, shape: &[usize], data: &[u8]) -> Result<Tensor, StateProblem> {
    let kind = match dtype {
        Dtype::F32 => Kind::Float,
        Dtype::F64 => Kind::Double,
        Dtype::I64 => Kind::Int64,
        other => return Err(StateProblem::Malformed(format!("tensor `{name}` has dtype {other:?}"))),
    };
    let size: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    Tensor::f_from_data_size(data, &size, kind).map_err(|e| StateProblem::Malformed(format!("tensor `{name}`: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn state() -> TrialState {
        let t = |v: &[f32]| Tensor::from_slice(v);
        TrialState {
            stage: Stage::Finetune,
            epoch: 2,
            weights: Checkpoint { tensors: vec![("a.weight".into(), t(&[1.0, 2.0])), ("b.bias".into(), t(&[3.0]))] },
            optimizer: vec![("a.weight.step".into(), Tensor::from_slice(&[7i64]))],
            best: Some(BestSoFar {
                accuracy: 0.1 + 0.2,
                loss: std::f64::consts::PI,
                epoch: 1,
                weights: Checkpoint { tensors: vec![("a.weight".into(), t(&[0.5, 0.25]))] },
            }),
            target: Some(Tensor::ones([3, 2], (Kind::Float, Device::Cpu))),
            curves: vec![EpochRecord {
                stage: Stage::Finetune,
                epoch: 1,
                epochs: 4,
                train_loss: 0.1 + 0.7,
                val_loss: f64::NAN,
                val_accuracy: None,
                elapsed_s: 1.5,
            }],
            finished_stages: vec![StageReport { stage: Stage::Ae, epochs_run: 3, wall_s: 0.25, cached: false }],
            resumes: 2,
            dec_readout: Some(DecReadout {
                head_val_accuracy: Some(0.1 + 0.6),
                head_test_accuracy: None,
                pseudo_labels: Some(t(&[-1.0, 1.0, 0.0])),
            }),
        }
    }

    #[test]
    fn round_trips_bit_for_bit() {
        let bytes = state().to_bytes("trial-a").unwrap();
        let back = TrialState::from_bytes(&bytes, "trial-a").unwrap();
        let s = state();
        assert_eq!((back.stage, back.epoch, back.resumes), (s.stage, s.epoch, s.resumes));
        let best = back.best.as_ref().unwrap();
        assert_eq!(best.accuracy.to_bits(), (0.1f64 + 0.2).to_bits());
        assert_eq!((best.loss, best.epoch), (std::f64::consts::PI, 1));
        assert!(best.weights.get("a.weight").unwrap().equal(&Tensor::from_slice(&[0.5f32, 0.25])));
        assert!(back.weights.get("b.bias").unwrap().equal(&Tensor::from_slice(&[3.0f32])));
        assert_eq!(back.optimizer[0].0, "a.weight.step");
        assert_eq!(back.optimizer[0].1.int64_value(&[0]), 7);
        assert!(back.target.unwrap().equal(&Tensor::ones([3, 2], (Kind::Float, Device::Cpu))));
        let (r, o) = (&back.curves[0], &s.curves[0]);
        assert_eq!(r.train_loss.to_bits(), o.train_loss.to_bits());
        assert!(r.val_loss.is_nan() && r.val_accuracy.is_none());
        assert_eq!(back.finished_stages, s.finished_stages);
        let readout = back.dec_readout.unwrap();
        assert_eq!(readout.head_val_accuracy.map(f64::to_bits), Some((0.1f64 + 0.6).to_bits()));
        assert_eq!(readout.head_test_accuracy, None);
        assert!(readout.pseudo_labels.unwrap().equal(&Tensor::from_slice(&[-1.0f32, 1.0, 0.0])));
    }

    #[test]
    fn a_state_without_a_dec_readout_round_trips_without_one() {
        let mut s = state();
        s.dec_readout = None;
        let back = TrialState::from_bytes(&s.to_bytes("trial-a").unwrap(), "trial-a").unwrap();
        assert!(back.dec_readout.is_none());
    }

    #[test]
    fn corrupt_truncated_foreign_and_other_version_files_are_refused() {
        let bytes = state().to_bytes("trial-a").unwrap();
        let problem = |b: &[u8], id: &str| TrialState::from_bytes(b, id).unwrap_err();

        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(problem(&flipped, "trial-a"), StateProblem::Corrupt));
        assert!(matches!(problem(&bytes[..bytes.len() - 10], "trial-a"), StateProblem::Corrupt));
        assert!(matches!(problem(&bytes[..20], "trial-a"), StateProblem::NotAState));
        assert!(matches!(problem(b"{\"json\": true}", "trial-a"), StateProblem::NotAState));
        match problem(&bytes, "trial-b") {
            StateProblem::OtherTrial { found, expected } => {
                assert_eq!((found.as_str(), expected.as_str()), ("trial-a", "trial-b"))
            }
            other => panic!("expected another trial, got {other}"),
        }

        // A well-formed file of a future format version: named as such.
        let mut payload = bytes[MAGIC.len() + HASH_LEN..].to_vec();
        let version = br#"\"format\":1,"#;
        let at = payload.windows(version.len()).position(|w| w == version).expect("the version in the header");
        payload[at + version.len() - 2] = b'9';
        let mut future = MAGIC.to_vec();
        future.extend_from_slice(&Sha256::digest(&payload));
        future.extend_from_slice(&payload);
        assert!(
            matches!(problem(&future, "trial-a"), StateProblem::Version { found: 9 }),
            "{}",
            problem(&future, "trial-a")
        );
    }

    #[test]
    fn save_replaces_the_file_atomically_and_load_names_it() {
        let dir = std::env::temp_dir().join(format!("decsweep-resume-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("trial.ckpt");
        state().save(&path, "trial-a").unwrap();
        state().save(&path, "trial-a").unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temporary file left behind");
        assert_eq!(TrialState::load(&path, "trial-a").unwrap().epoch, 2);
        std::fs::write(&path, b"garbage").unwrap();
        let err = TrialState::load(&path, "trial-a").unwrap_err().to_string();
        assert!(err.contains("trial.ckpt") && err.contains("not a decsweep trial checkpoint"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
