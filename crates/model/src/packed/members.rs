//! The members of a pack: the check that they share one pack key, and what each carries through
//! the pipeline (its curves, stage reports, the outputs of its finished stages, its result).

use decsweep_api::{Params, Stage};

use super::{PackError, PackMember};
use crate::checkpoint::Checkpoint;
use crate::records::{EpochRecord, StageReport};
use crate::resume::TrialState;
use crate::train::{PipelineOutcome, TrainError};
use crate::ModelConfig;

/// Parameters every member of a pack must share: the shapes of the stacked tensors and the
/// schedule of the steps. The others (rates, weights, `dof`, `dropout`, the data split and
/// labeled subset, the seed) may differ.
pub const SHARED_PARAMS: [&str; 11] = [
    "d_model",
    "n_heads",
    "n_layers",
    "ff_dim",
    "latent_dim",
    "n_clusters",
    "batch_size",
    "epochs_ae",
    "epochs_dec",
    "epochs_ft",
    "p_update",
];

/// Refuses a pack whose members disagree on a shared parameter or on the shape of their data
/// (sequence length and feature dimensions).
pub fn check_members(members: &[PackMember<'_>]) -> Result<(), PackError> {
    let Some(first) = members.first() else { return Err(PackError::Empty) };
    let value = |p: &Params, name: &'static str| p.get(name).expect("a registered parameter");
    for (i, m) in members.iter().enumerate().skip(1) {
        for name in SHARED_PARAMS {
            let (a, b) = (value(first.params, name), value(m.params, name));
            if a != b {
                return Err(mismatch(name, i, a.to_string(), b.to_string()));
            }
        }
        let (a, b) = (data_shape(first), data_shape(m));
        if a != b {
            return Err(mismatch("seq_len and feature dimensions", i, format!("{a:?}"), format!("{b:?}")));
        }
    }
    Ok(())
}

fn mismatch(param: &'static str, other: usize, first_value: String, other_value: String) -> PackError {
    PackError::Mismatch { param, first: 0, other, first_value, other_value }
}

/// `[T, D_m]` of each modality of the member's training rows.
pub(super) fn data_shape(m: &PackMember<'_>) -> Vec<i64> {
    m.data.train.x.iter().flat_map(|x| x.size().into_iter().skip(1)).collect()
}

/// A member on its way through the pipeline.
pub(super) struct Trial<'a> {
    /// Position in the caller's list (its result goes there).
    pub index: usize,
    pub member: PackMember<'a>,
    pub config: ModelConfig,
    /// Every epoch reported so far, those of a resumed state included.
    pub curves: Vec<EpochRecord>,
    /// Reports of the finished stages.
    pub stages: Vec<StageReport>,
    /// How many times the trial has been resumed, this run included.
    pub resumes: u32,
    /// The checkpoint of the last finished stage (AE or DEC), which the next stage starts from.
    pub upstream: Option<Checkpoint>,
    /// Set when the member ends; it then trains no further.
    pub result: Option<Result<PipelineOutcome, TrainError>>,
}

impl<'a> Trial<'a> {
    pub fn new(index: usize, mut member: PackMember<'a>) -> Trial<'a> {
        let dims = {
            let d = data_shape(&member);
            [d[1] as usize, d[3] as usize, d[5] as usize]
        };
        let config = ModelConfig::new(member.params, dims);
        let resume = member.resume.take();
        let (curves, stages, resumes) = match &resume {
            Some(s) => (s.curves.clone(), s.finished_stages.clone(), s.resumes + 1),
            None => (Vec::new(), Vec::new(), 0),
        };
        member.resume = resume;
        Trial { index, member, config, curves, stages, resumes, upstream: None, result: None }
    }

    pub fn is_done(&self) -> bool {
        self.result.is_some()
    }

    pub fn resume_stage(&self) -> Option<Stage> {
        self.member.resume.as_ref().map(|r| r.stage)
    }

    /// The resumed state, if it is `stage`'s.
    pub fn take_resume(&mut self, stage: Stage) -> Option<TrialState> {
        self.member.resume.take_if(|r| r.stage == stage)
    }

    pub fn fail(&mut self, error: TrainError) {
        tracing::info!(member = self.index, seed = self.member.seed, %error, "pack member ends");
        self.result = Some(Err(error));
    }
}
