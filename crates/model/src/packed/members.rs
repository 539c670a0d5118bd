//! The members of a pack: the check that they share one pack key, and what each carries through
//! the pipeline (its curves, stage reports, the outputs of its finished stages, its result).

use decsweep_api::pack::PackKey;
use decsweep_api::{Pipeline, Stage};

use super::{PackError, PackMember};
use crate::checkpoint::Checkpoint;
use crate::pseudo::DecReadout;
use crate::records::{EpochRecord, StageReport};
use crate::resume::TrialState;
use crate::train::{PipelineOutcome, TrainError};
use crate::ModelConfig;

/// Refuses a pack whose members disagree on the pack key ([`PackKey`], the registry's one
/// definition of what may train together) or on the shape of their data (sequence length and
/// feature dimensions), or that asks for what only the solo trainer does.
pub fn check_members(pipeline: Pipeline, members: &[PackMember<'_>]) -> Result<(), PackError> {
    let Some(first) = members.first() else { return Err(PackError::Empty) };
    // Pseudo-labels change the fine-tuning rows per member; the packed engine does not train them.
    if let Some((i, m)) = members.iter().enumerate().find(|(_, m)| m.params.pseudo_threshold > 0.0) {
        return Err(PackError::Unsupported {
            member: i,
            what: format!("pseudo_threshold = {} (DEC pseudo-labels train solo only)", m.params.pseudo_threshold),
        });
    }
    // The data is checked by shape below, so the key's dataset part is left empty.
    let key = PackKey::of(pipeline, "", first.params);
    for (i, m) in members.iter().enumerate().skip(1) {
        if let Some(difference) = key.difference(&PackKey::of(pipeline, "", m.params)) {
            return Err(PackError::Mismatch { first: 0, other: i, difference });
        }
        let (a, b) = (data_shape(first), data_shape(m));
        if a != b {
            let difference = format!("seq_len and feature dimensions: {a:?} ≠ {b:?}");
            return Err(PackError::Mismatch { first: 0, other: i, difference });
        }
    }
    Ok(())
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
    /// `dec` only: the DEC stage's readout (the head's accuracies), read once the DEC checkpoint
    /// is known, or taken over from a resumed fine-tuning state.
    pub dec_readout: Option<DecReadout>,
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
        let dec_readout = resume.as_ref().and_then(|s| s.dec_readout.as_ref()).map(DecReadout::shallow_clone);
        member.resume = resume;
        Trial { index, member, config, curves, stages, resumes, upstream: None, dec_readout, result: None }
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
