//! What anyone may read: studies, trials, curves, the report's input, the workers seen, the
//! `/metrics` text. Every read runs on the store's read pool, never on a tokio worker thread.

use decsweep_api::wire::{StudyInfo, TrialCurvePoint, TrialInfo, TrialStatus};

use crate::{read, workers, Coordinator, Result, StorageFault, WorkerInfo};

impl Coordinator {
    /// Every study, oldest first.
    pub async fn studies(&self) -> Result<Vec<StudyInfo>> {
        self.inner.store.read(read::studies).await
    }

    pub async fn study(&self, name: &str) -> Result<StudyInfo> {
        let name = name.to_string();
        self.inner.store.read(move |c| read::study(c, &name)).await
    }

    /// A study's trials in id order, optionally only those in `status`.
    pub async fn trials(&self, study: &str, status: Option<TrialStatus>) -> Result<Vec<TrialInfo>> {
        let study = study.to_string();
        self.inner.store.read(move |c| read::trials(c, &study, status)).await
    }

    pub async fn trial(&self, id: i64) -> Result<TrialInfo> {
        self.inner.store.read(move |c| read::trial(c, id)).await
    }

    /// Every epoch a trial's attempts reported, in the order recorded.
    pub async fn curves(&self, trial_id: i64) -> Result<Vec<TrialCurvePoint>> {
        self.inner.store.read(move |c| read::curves(c, trial_id)).await
    }

    /// A study's rows mapped for [`decsweep_report::write_all`].
    pub async fn report_input(
        &self,
        study: &str,
    ) -> Result<(Vec<decsweep_report::TrialRow>, Vec<decsweep_report::CurvePoint>)> {
        let study = study.to_string();
        self.inner.store.read(move |c| read::report_input(c, &study)).await
    }

    /// A page of [`Coordinator::report_input`] for `GET /v1/studies/{name}/export`: up to
    /// `limit` trials with ids above `after`, each with its latest attempt's curve.
    pub async fn export_page(&self, study: &str, after: i64, limit: u32) -> Result<decsweep_api::wire::StudyExport> {
        let study = study.to_string();
        self.inner.store.read(move |c| read::export_page(c, &study, after, limit)).await
    }

    /// Every worker process seen, most recently heard from first.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        self.inner.store.read(workers::list).await
    }

    /// The clock's now, in Unix milliseconds (what [`WorkerInfo::last_seen_ms`] is measured by).
    pub fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// What is wrong with the database's disk (full, read-only, failing), from the last write
    /// it refused until a write succeeds again. Meanwhile every request that must write answers
    /// 503 with the same words, and reads keep working.
    pub fn storage_fault(&self) -> Option<StorageFault> {
        self.inner.store.storage_fault()
    }

    /// The `/metrics` text.
    pub async fn metrics_text(&self) -> Result<String> {
        let gauges = self.inner.metrics.gauges(|| self.inner.store.read(read::status_gauges)).await?;
        Ok(self.inner.metrics.render(&gauges))
    }
}
