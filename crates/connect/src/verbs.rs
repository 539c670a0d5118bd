//! One typed verb per call of the `/v1` API, over [`Client`]'s transport. Outcome calls
//! (complete, fail, prune, return) are retried ([`Client::post_retrying`]); every other call
//! is tried once, and its caller decides what a failure means.

use std::time::Duration;

use decsweep_api::wire::{
    AddSeeds, CancelOutcome, CheckpointUpload, CompleteTrial, CreateStudy, DatasetStored, EpochProgress, ExportedTrial,
    FailByUser, FailTrial, FailedByUser, HeartbeatReply, ProgressReply, PruneTrial, Recorded, Resumed, Retried,
    RetryTrials, ReturnTrial, SeedsAdded, StudyExport, StudyInfo, TrialCurvePoint, TrialInfo, TrialStatus,
    WorkerGoodbye,
};
use reqwest::blocking::Response;

use crate::{ApiCallError, Client};

/// How many trials [`Client::export`] asks for per page (the coordinator's own default).
pub const EXPORT_PAGE: u32 = 500;

/// The lease calls of a worker.
impl Client {
    /// `POST /v1/leases/{id}/heartbeat`: extends the lease; `stop` when the user ended the trial.
    pub fn heartbeat(&self, lease_id: &str) -> Result<HeartbeatReply, ApiCallError> {
        self.post(&format!("leases/{lease_id}/heartbeat"), &serde_json::json!({}))
    }

    /// `POST /v1/leases/{id}/progress`: one epoch; the answer says whether to go on.
    pub fn progress(&self, lease_id: &str, epoch: &EpochProgress) -> Result<ProgressReply, ApiCallError> {
        self.post(&format!("leases/{lease_id}/progress"), epoch)
    }

    /// `POST /v1/leases/{id}/complete`, retried.
    pub fn complete(&self, lease_id: &str, body: &CompleteTrial) -> Result<(), ApiCallError> {
        self.post_retrying(&format!("leases/{lease_id}/complete"), body)
    }

    /// `POST /v1/leases/{id}/fail`, retried.
    pub fn fail(&self, lease_id: &str, body: &FailTrial) -> Result<(), ApiCallError> {
        self.post_retrying(&format!("leases/{lease_id}/fail"), body)
    }

    /// `POST /v1/leases/{id}/prune`, retried.
    pub fn prune(&self, lease_id: &str, body: &PruneTrial) -> Result<(), ApiCallError> {
        self.post_retrying(&format!("leases/{lease_id}/prune"), body)
    }

    /// `POST /v1/leases/{id}/return`: the trial goes back to the queue unfinished; retried.
    pub fn give_back(&self, lease_id: &str, body: &ReturnTrial) -> Result<(), ApiCallError> {
        self.post_retrying(&format!("leases/{lease_id}/return"), body)
    }

    /// `POST /v1/workers/goodbye`: the worker process `name` exits cleanly (the dashboard lists
    /// it as stopped). One try: a worker on its way out does not wait out an outage for it.
    /// `false`: the coordinator never saw that name.
    pub fn goodbye(&self, name: &str) -> Result<bool, ApiCallError> {
        let answer: Recorded = self.post("workers/goodbye", &WorkerGoodbye { name: name.to_string() })?;
        Ok(answer.recorded)
    }

    /// `PUT /v1/leases/{id}/checkpoint`: the trial's saved state, `bytes` hashing to
    /// `upload.sha256`.
    pub fn upload_checkpoint(
        &self,
        lease_id: &str,
        upload: &CheckpointUpload,
        bytes: Vec<u8>,
    ) -> Result<(), ApiCallError> {
        let path = format!(
            "leases/{lease_id}/checkpoint?stage={}&epoch={}&sha256={}",
            upload.stage, upload.epoch, upload.sha256
        );
        self.put_bytes(&path, bytes)
    }

    /// `GET /v1/leases/{id}/checkpoint`: the stored state to resume from, as a stream.
    pub fn download_checkpoint(&self, lease_id: &str) -> Result<Response, ApiCallError> {
        self.get_raw(&format!("leases/{lease_id}/checkpoint"))
    }
}

/// Datasets.
impl Client {
    /// `GET /v1/datasets/{sha256}` as a stream.
    pub fn download_dataset(&self, sha256: &str) -> Result<Response, ApiCallError> {
        self.get_raw(&format!("datasets/{sha256}"))
    }

    /// `HEAD /v1/datasets/{sha256}`: whether the coordinator has it.
    pub fn has_dataset(&self, sha256: &str) -> Result<bool, ApiCallError> {
        self.exists(&format!("datasets/{sha256}"))
    }

    /// `PUT /v1/datasets/{sha256}`: the file, streamed, allowed `timeout`.
    pub fn upload_dataset(
        &self,
        sha256: &str,
        body: reqwest::blocking::Body,
        timeout: Duration,
    ) -> Result<DatasetStored, ApiCallError> {
        self.put_body(&format!("datasets/{sha256}"), body, timeout)
    }
}

/// Studies and trials: what a person's commands and reports read and change.
impl Client {
    /// `POST /v1/studies`.
    pub fn create_study(&self, request: &CreateStudy) -> Result<StudyInfo, ApiCallError> {
        self.post("studies", request)
    }

    /// `GET /v1/studies`.
    pub fn studies(&self) -> Result<Vec<StudyInfo>, ApiCallError> {
        self.get("studies")
    }

    /// `GET /v1/studies/{name}`.
    pub fn study(&self, name: &str) -> Result<StudyInfo, ApiCallError> {
        self.get(&format!("studies/{name}"))
    }

    /// `GET /v1/studies/{name}/trials`, optionally only those in `status`.
    pub fn trials(&self, study: &str, status: Option<TrialStatus>) -> Result<Vec<TrialInfo>, ApiCallError> {
        match status {
            Some(s) => self.get(&format!("studies/{study}/trials?status={}", s.name())),
            None => self.get(&format!("studies/{study}/trials")),
        }
    }

    /// `GET /v1/trials/{id}`.
    pub fn trial(&self, id: i64) -> Result<TrialInfo, ApiCallError> {
        self.get(&format!("trials/{id}"))
    }

    /// `GET /v1/trials/{id}/curves`: every attempt's points.
    pub fn curves(&self, trial_id: i64) -> Result<Vec<TrialCurvePoint>, ApiCallError> {
        self.get(&format!("trials/{trial_id}/curves"))
    }

    /// `GET /v1/studies/{name}/export`: up to `limit` trials with ids above `after`, with their
    /// latest attempt's curves.
    pub fn export_page(&self, study: &str, after: i64, limit: u32) -> Result<StudyExport, ApiCallError> {
        self.get(&format!("studies/{study}/export?after={after}&limit={limit}"))
    }

    /// Every trial of the study with its latest attempt's curve, page after page.
    pub fn export(&self, study: &str) -> Result<Vec<ExportedTrial>, ApiCallError> {
        let mut trials = Vec::new();
        let mut after = 0;
        loop {
            let page = self.export_page(study, after, EXPORT_PAGE)?;
            trials.extend(page.trials);
            match page.next_after {
                // A cursor that does not move would loop forever.
                Some(next) if next > after => after = next,
                _ => return Ok(trials),
            }
        }
    }

    /// `POST /v1/studies/{name}/cancel`.
    pub fn cancel_study(&self, name: &str) -> Result<CancelOutcome, ApiCallError> {
        self.post(&format!("studies/{name}/cancel"), &serde_json::json!({}))
    }

    /// `POST /v1/studies/{name}/resume`: a cancelled study's trials back in the queue.
    pub fn resume_study(&self, name: &str) -> Result<Resumed, ApiCallError> {
        self.post(&format!("studies/{name}/resume"), &serde_json::json!({}))
    }

    /// `POST /v1/studies/{name}/retry`: the failed trials (or one) back in the queue.
    pub fn retry_trials(&self, name: &str, body: &RetryTrials) -> Result<Retried, ApiCallError> {
        self.post(&format!("studies/{name}/retry"), body)
    }

    /// `POST /v1/studies/{name}/seeds`.
    pub fn add_seeds(&self, name: &str, body: &AddSeeds) -> Result<SeedsAdded, ApiCallError> {
        self.post(&format!("studies/{name}/seeds"), body)
    }

    /// `POST /v1/trials/{id}/fail`: a user's verdict on a pending or running trial.
    pub fn fail_trial(&self, id: i64, body: &FailByUser) -> Result<FailedByUser, ApiCallError> {
        self.post(&format!("trials/{id}/fail"), body)
    }
}

#[cfg(test)]
mod tests {
    use crate::client::tests::fake;
    use crate::Client;

    #[test]
    fn an_export_follows_its_cursor_to_the_last_page() {
        let trial = |id: i64| {
            format!(
                r#"{{"trial": {{"id": {id}, "study": "s", "pipeline": "command", "params": {{}}, "seed": 0,
                   "config_id": "c", "label": null, "status": "completed", "attempts": 1, "worker": null,
                   "error": null, "metrics": {{}}}},
                   "curve": [{{"attempt": 1, "stage": "finetune", "epoch": 1, "epochs": 1,
                               "train_loss": 0.5, "val_loss": null, "val_accuracy": null}}]}}"#
            )
        };
        let first: &'static str =
            Box::leak(format!(r#"{{"trials": [{}, {}], "next_after": 2}}"#, trial(1), trial(2)).into_boxed_str());
        let last: &'static str =
            Box::leak(format!(r#"{{"trials": [{}], "next_after": null}}"#, trial(3)).into_boxed_str());
        let (url, seen) = fake(vec![(200, first), (200, last)]);
        let trials = Client::new(&url, None).unwrap().export("s").unwrap();
        assert_eq!(trials.iter().map(|t| t.trial.id).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(trials[0].curve[0].train_loss, Some(0.5));
        let asked: Vec<String> = seen.try_iter().map(|(line, _)| line).collect();
        assert_eq!(asked, ["GET /v1/studies/s/export?after=0&limit=500", "GET /v1/studies/s/export?after=2&limit=500"]);
    }
}
