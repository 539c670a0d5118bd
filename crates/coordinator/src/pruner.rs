//! The hook that decides, after each epoch a worker reports, whether its trial goes on, and the
//! two pruners a spec's `[pruner]` section chooses: [`MedianPruner`] and [`AshaPruner`].
//!
//! The coordinator calls [`Pruner::decide`] inside the transaction that records the epoch, so a
//! pruner sees every point recorded before it, including this one. Each study gets the pruner of
//! its own spec; a study whose spec has no `[pruner]` gets [`crate::CoordinatorOptions::pruner`]
//! ([`NoPruner`] by default: every trial runs to the end).
//!
//! # What is compared
//!
//! Pruners read the stored curves through [`Curves`]: the per-epoch points workers report, of each trial's latest
//! attempt, in one stage (the spec's `stage`, default `finetune`; points of other stages never
//! count and never prune). The value compared is a per-epoch proxy of the study's objective
//! ([`Proxy::for_objective`]):
//!
//! | objective metric | proxy | better |
//! | --- | --- | --- |
//! | contains `loss` | `val_loss` | lower |
//! | `accuracy`, `acc*`, `f1*` | `val_accuracy` | higher |
//! | anything else, maximised | `val_accuracy` | higher |
//! | anything else, minimised | `val_loss` | lower |
//!
//! An epoch whose proxy is missing (no validation accuracy reported, a non-finite loss) is never
//! pruned on. The step of Optuna's formulas is the epoch number as the worker reports it (1-based).
//! Both pruners keep no state of their own: every decision is recomputed from the table, so a
//! restarted coordinator decides exactly as the old one would have.

use decsweep_api::wire::{EpochProgress, ProgressAction};
use decsweep_api::Stage;

use crate::error::Result;

/// Decides whether a trial is stopped early.
pub trait Pruner: Send + Sync + std::fmt::Debug + 'static {
    fn decide(&self, ctx: &PruneContext<'_>) -> Result<ProgressAction>;
}

/// Never prunes.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoPruner;

impl Pruner for NoPruner {
    fn decide(&self, _ctx: &PruneContext<'_>) -> Result<ProgressAction> {
        Ok(ProgressAction::Continue)
    }
}

/// The stored curves a pruner reads: the seam between the pruners, which decide, and the store,
/// which keeps the points (`SqlCurves` in `src/curves.rs`, over SQLite). Every method reads the
/// points of one stage, and a trial's points are those of its latest attempt (`attempts`)
/// unless an attempt is named; values are finite or `None`.
pub trait Curves {
    /// The points other trials of `q`'s study recorded at `q`'s stage and `epoch`, by trial id.
    fn peers(&self, q: &CurveQuery, epoch: u32) -> Result<Vec<PeerPoint>>;
    /// `q`'s own points (of `q.attempt`) up to `epoch`, by epoch: `(epoch, epochs, proxy value)`.
    fn own_points(&self, q: &CurveQuery, proxy: Proxy, epoch: u32) -> Result<Vec<(u32, u32, Option<f64>)>>;
    /// For every trial comparable with `q` (same study, pipeline and configuration label; leased
    /// at least once; `q`'s own excluded), by trial id: whether its last point in the stage is
    /// the stage's last epoch, and its proxy value at `epoch`.
    fn peers_at_epoch(&self, q: &CurveQuery, proxy: Proxy, epoch: u32) -> Result<Vec<(i64, bool, Option<f64>)>>;
    /// For every comparable trial with one: its proxy value at its first point at or after `epoch`.
    fn rung_values(&self, q: &CurveQuery, proxy: Proxy, epoch: u32) -> Result<Vec<f64>>;
}

/// The trial a pruner asks about: its study, attempt and the stage of the reported epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CurveQuery {
    pub study_id: i64,
    pub trial_id: i64,
    pub attempt: u32,
    pub stage: Stage,
}

/// What a pruner may look at: the epoch just reported and the study it belongs to.
pub struct PruneContext<'a> {
    pub curves: &'a dyn Curves,
    pub study_id: i64,
    pub trial_id: i64,
    pub attempt: u32,
    pub progress: &'a EpochProgress,
    /// The study's objective metric and whether larger is better.
    pub objective_metric: &'a str,
    pub maximize: bool,
}

/// Another trial's point at the same stage and epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerPoint {
    pub trial_id: i64,
    pub train_loss: f64,
    pub val_loss: f64,
    pub val_accuracy: Option<f64>,
}

/// The per-epoch column a pruner compares, and which way is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proxy {
    /// `val_accuracy`, higher is better.
    ValAccuracy,
    /// `val_loss`, lower is better.
    ValLoss,
}

impl Proxy {
    /// The proxy of an objective (see the module docs for the table).
    pub fn for_objective(metric: &str, maximize: bool) -> Proxy {
        let m = metric.to_ascii_lowercase();
        let accuracy_like = m.starts_with("acc") || m.starts_with("f1");
        if m.contains("loss") || (!accuracy_like && !maximize) {
            Proxy::ValLoss
        } else {
            Proxy::ValAccuracy
        }
    }

    /// The `curves` column that holds it.
    pub(crate) fn column(self) -> &'static str {
        match self {
            Proxy::ValAccuracy => "val_accuracy",
            Proxy::ValLoss => "val_loss",
        }
    }

    pub fn maximize(self) -> bool {
        self == Proxy::ValAccuracy
    }

    pub(crate) fn of(self, p: &EpochProgress) -> Option<f64> {
        match self {
            Proxy::ValAccuracy => p.val_accuracy,
            Proxy::ValLoss => Some(p.val_loss),
        }
        .filter(|v| v.is_finite())
    }
}

/// The pruner a spec's `[pruner]` asks for. ASHA's `bootstrap_count` is 0 (Optuna's default);
/// the spec cannot set it.
pub fn from_spec(spec: &decsweep_search::pruning::PrunerSpec) -> std::sync::Arc<dyn Pruner> {
    use decsweep_search::pruning::{PruneStage, PrunerKind};
    let stage = match spec.stage {
        PruneStage::Ae => Stage::Ae,
        PruneStage::Dec => Stage::Dec,
        PruneStage::Finetune => Stage::Finetune,
    };
    let n = |x: u64| u32::try_from(x).unwrap_or(u32::MAX);
    match spec.kind {
        PrunerKind::Median { n_startup_trials, n_warmup_steps, interval_steps } => std::sync::Arc::new(MedianPruner {
            stage,
            n_startup_trials: n(n_startup_trials),
            n_warmup_steps: n(n_warmup_steps),
            interval_steps: n(interval_steps).max(1),
        }),
        PrunerKind::Asha { min_resource, reduction_factor, min_early_stopping_rate } => {
            std::sync::Arc::new(AshaPruner {
                stage,
                min_resource: n(min_resource).max(1),
                reduction_factor: n(reduction_factor).max(2),
                min_early_stopping_rate: n(min_early_stopping_rate),
                bootstrap_count: 0,
            })
        }
    }
}

/// One trial's points in one stage: `(epoch, epochs, proxy value)`, by epoch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    pub points: Vec<(u32, u32, Option<f64>)>,
}

impl Series {
    /// Whether the trial reported the stage's last epoch.
    pub fn finished(&self) -> bool {
        self.points.iter().any(|(e, n, _)| e >= n)
    }

    /// The value at exactly `epoch`.
    pub fn at(&self, epoch: u32) -> Option<f64> {
        self.points.iter().find(|(e, _, _)| *e == epoch).and_then(|p| p.2)
    }

    /// The first point at or after `epoch`: `(epoch, value)`.
    pub fn first_from(&self, epoch: u32) -> Option<(u32, Option<f64>)> {
        self.points.iter().find(|(e, _, _)| *e >= epoch).map(|p| (p.0, p.2))
    }
}

impl PruneContext<'_> {
    fn query(&self) -> CurveQuery {
        CurveQuery {
            study_id: self.study_id,
            trial_id: self.trial_id,
            attempt: self.attempt,
            stage: self.progress.stage,
        }
    }

    /// The points other trials of this study recorded at this stage and epoch, each from the
    /// trial's latest attempt.
    pub fn peers(&self) -> Result<Vec<PeerPoint>> {
        self.curves.peers(&self.query(), self.progress.epoch)
    }

    /// The proxy this study's pruners compare.
    pub fn proxy(&self) -> Proxy {
        Proxy::for_objective(self.objective_metric, self.maximize)
    }

    /// This trial's points in this attempt and the reported stage, up to the reported epoch.
    pub fn own_series(&self, proxy: Proxy) -> Result<Series> {
        let mut points = self.curves.own_points(&self.query(), proxy, self.progress.epoch)?;
        // The epoch just reported is authoritative even if the stored row lags (it never does:
        // it is written before the pruner runs).
        let now = (self.progress.epoch, self.progress.epochs, proxy.of(self.progress));
        match points.iter_mut().find(|p| p.0 == now.0) {
            Some(p) => *p = now,
            None => points.push(now),
        }
        points.sort_by_key(|p| p.0);
        Ok(Series { points })
    }

    /// For every comparable trial (see [`Curves::peers_at_epoch`]): whether it finished the
    /// reported stage and its proxy at the reported epoch.
    pub fn peers_at_epoch(&self, proxy: Proxy) -> Result<Vec<(i64, bool, Option<f64>)>> {
        self.curves.peers_at_epoch(&self.query(), proxy, self.progress.epoch)
    }

    /// The rung values of the comparable trials at the rung at `epoch`: each one's proxy at its
    /// first point at or after `epoch` in the reported stage, if it has one and it is finite.
    pub fn rung_values(&self, proxy: Proxy, epoch: u32) -> Result<Vec<f64>> {
        self.curves.rung_values(&self.query(), proxy, epoch)
    }
}

/// Optuna's `MedianPruner` over the study's curves.
///
/// At a checked epoch `e` of the configured stage — `e > n_warmup_steps` and
/// `(e − n_warmup_steps − 1) mod interval_steps = 0`, i.e. Optuna's rule with its 0-based step
/// `e − 1` — and once at least `n_startup_trials` other trials of the study have reported the
/// stage's last epoch ("finished the stage"), the trial is pruned when its best proxy so far
/// (epochs ≤ e of this attempt) is worse than the median of those finished trials' proxies at
/// epoch `e` (the mean of the two middle values for an even count). Only finished trials make the
/// median, as in Optuna, where only completed trials do (a pruned or running trial never does);
/// with no finished trial reporting epoch `e` nothing is pruned; a value equal to the median goes
/// on. Trials are compared only with trials of the same pipeline and configuration label.
#[derive(Clone, Debug, PartialEq)]
pub struct MedianPruner {
    pub stage: Stage,
    pub n_startup_trials: u32,
    pub n_warmup_steps: u32,
    pub interval_steps: u32,
}

impl Default for MedianPruner {
    /// Optuna's defaults: 5 startup trials, no warm-up, every step.
    fn default() -> Self {
        MedianPruner { stage: Stage::Finetune, n_startup_trials: 5, n_warmup_steps: 0, interval_steps: 1 }
    }
}

/// The median, NaN-free input assumed.
fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 })
}

impl Pruner for MedianPruner {
    fn decide(&self, ctx: &PruneContext<'_>) -> Result<ProgressAction> {
        let p = ctx.progress;
        if p.stage != self.stage || p.epoch <= self.n_warmup_steps {
            return Ok(ProgressAction::Continue);
        }
        if !(p.epoch - self.n_warmup_steps - 1).is_multiple_of(self.interval_steps.max(1)) {
            return Ok(ProgressAction::Continue);
        }
        let proxy = ctx.proxy();
        let own = ctx.own_series(proxy)?;
        let values = own.points.iter().filter_map(|x| x.2);
        let best = if proxy.maximize() { values.reduce(f64::max) } else { values.reduce(f64::min) };
        let Some(best) = best else {
            return Ok(ProgressAction::Continue);
        };
        let peers = ctx.peers_at_epoch(proxy)?;
        let finished = peers.iter().filter(|(_, done, _)| *done).count();
        if finished < self.n_startup_trials as usize {
            return Ok(ProgressAction::Continue);
        }
        let mut at: Vec<f64> = peers.iter().filter(|(_, done, _)| *done).filter_map(|(_, _, v)| *v).collect();
        let Some(m) = median(&mut at) else {
            return Ok(ProgressAction::Continue);
        };
        let worse = if proxy.maximize() { best < m } else { best > m };
        Ok(if worse { ProgressAction::Prune } else { ProgressAction::Continue })
    }
}

/// Asynchronous successive halving, with the semantics of Optuna's `SuccessiveHalvingPruner`.
///
/// Rung `k` sits at epoch `r_k = min_resource · η^(min_early_stopping_rate + k)` of the
/// configured stage (η = `reduction_factor`). A trial reaches rung `k` at its first reported
/// epoch `≥ r_k`; its value there is its rung value. At that moment it competes with the rung
/// values of every other trial of the study that reached the rung before (whatever their status
/// now) plus its own: with `n` competitors it goes on only if its value is among the best
/// `max(1, ⌊n/η⌋)` (ties go on), and only if `n > bootstrap_count`; otherwise it is pruned.
/// A trial is judged at each rung once, when it reaches it; passing several rungs at one epoch
/// (gaps in the reports) judges them in order. Nothing waits: early trials are promoted against
/// few competitors, as in Optuna and ASHA.
#[derive(Clone, Debug, PartialEq)]
pub struct AshaPruner {
    pub stage: Stage,
    pub min_resource: u32,
    pub reduction_factor: u32,
    pub min_early_stopping_rate: u32,
    pub bootstrap_count: u32,
}

impl Default for AshaPruner {
    /// Optuna's defaults, with `min_resource` 1 in place of "auto".
    fn default() -> Self {
        AshaPruner {
            stage: Stage::Finetune,
            min_resource: 1,
            reduction_factor: 4,
            min_early_stopping_rate: 0,
            bootstrap_count: 0,
        }
    }
}

impl AshaPruner {
    /// The epoch of rung `k`, or `None` past `u32`.
    pub fn rung_epoch(&self, k: u32) -> Option<u32> {
        let eta = self.reduction_factor.max(2);
        eta.checked_pow(self.min_early_stopping_rate.checked_add(k)?)?.checked_mul(self.min_resource.max(1))
    }

    /// Whether `value` is promoted among `competing` (which includes it).
    fn promotable(&self, value: f64, competing: &mut [f64], maximize: bool) -> bool {
        let eta = self.reduction_factor.max(2) as usize;
        let idx = (competing.len() / eta).saturating_sub(1);
        competing.sort_by(f64::total_cmp);
        if maximize {
            value >= competing[competing.len() - 1 - idx]
        } else {
            value <= competing[idx]
        }
    }
}

impl Pruner for AshaPruner {
    fn decide(&self, ctx: &PruneContext<'_>) -> Result<ProgressAction> {
        let p = ctx.progress;
        if p.stage != self.stage {
            return Ok(ProgressAction::Continue);
        }
        let proxy = ctx.proxy();
        let Some(value) = proxy.of(p) else {
            return Ok(ProgressAction::Continue);
        };
        if self.rung_epoch(0).is_none_or(|r| p.epoch < r) {
            return Ok(ProgressAction::Continue);
        }
        let own = ctx.own_series(proxy)?;
        for k in 0.. {
            let Some(rung) = self.rung_epoch(k) else {
                break;
            };
            if p.epoch < rung {
                break;
            }
            // Judged when it first reached this rung, at an earlier epoch: it was promoted then.
            if own.first_from(rung).is_some_and(|(e, _)| e < p.epoch) {
                continue;
            }
            let mut competing = ctx.rung_values(proxy, rung)?;
            competing.push(value);
            if competing.len() <= self.bootstrap_count as usize
                || !self.promotable(value, &mut competing, proxy.maximize())
            {
                return Ok(ProgressAction::Prune);
            }
        }
        Ok(ProgressAction::Continue)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::curves::SqlCurves;
    use crate::ops::tests::{command_study, Fixture};

    /// One stored point: `(trial, attempt, stage, epoch, epochs, val_loss, val_accuracy)`.
    type Point = (i64, u32, Stage, u32, u32, Option<f64>, Option<f64>);

    /// [`Curves`] over plain vectors, as the pruners' contract states it: no SQLite.
    #[derive(Default)]
    struct MemCurves {
        /// `(id, study, pipeline, label, latest attempt)`.
        trials: Vec<(i64, i64, String, Option<String>, u32)>,
        points: Vec<Point>,
    }

    impl MemCurves {
        fn add(&mut self, p: Point) {
            self.points.retain(|q| (q.0, q.1, q.2, q.3) != (p.0, p.1, p.2, p.3));
            self.points.push(p);
            self.points.sort_by_key(|q| (q.0, q.1, q.3));
        }

        fn value(p: &Point, proxy: Proxy) -> Option<f64> {
            match proxy {
                Proxy::ValAccuracy => p.6,
                Proxy::ValLoss => p.5,
            }
        }

        /// The trial's points in its latest attempt and `stage`, by epoch.
        fn latest(&self, trial: i64, attempts: u32, stage: Stage) -> impl Iterator<Item = &Point> {
            self.points.iter().filter(move |p| p.0 == trial && p.1 == attempts && p.2 == stage)
        }

        /// The trials comparable with `q`'s: `(id, latest attempt)`.
        fn comparable(&self, q: &CurveQuery) -> Vec<(i64, u32)> {
            let me = self.trials.iter().find(|t| t.0 == q.trial_id).expect("the asking trial exists");
            self.trials
                .iter()
                .filter(|t| t.1 == q.study_id && t.0 != q.trial_id && t.4 > 0 && t.2 == me.2 && t.3 == me.3)
                .map(|t| (t.0, t.4))
                .collect()
        }
    }

    impl Curves for MemCurves {
        fn peers(&self, q: &CurveQuery, epoch: u32) -> Result<Vec<PeerPoint>> {
            let mut out = Vec::new();
            for t in self.trials.iter().filter(|t| t.1 == q.study_id && t.0 != q.trial_id) {
                out.extend(self.latest(t.0, t.4, q.stage).filter(|p| p.3 == epoch).map(|p| PeerPoint {
                    trial_id: p.0,
                    train_loss: 1.0,
                    val_loss: p.5.unwrap_or(f64::NAN),
                    val_accuracy: p.6,
                }));
            }
            Ok(out)
        }

        fn own_points(&self, q: &CurveQuery, proxy: Proxy, epoch: u32) -> Result<Vec<(u32, u32, Option<f64>)>> {
            Ok(self
                .latest(q.trial_id, q.attempt, q.stage)
                .filter(|p| p.3 <= epoch)
                .map(|p| (p.3, p.4, Self::value(p, proxy)))
                .collect())
        }

        fn peers_at_epoch(&self, q: &CurveQuery, proxy: Proxy, epoch: u32) -> Result<Vec<(i64, bool, Option<f64>)>> {
            Ok(self
                .comparable(q)
                .into_iter()
                .map(|(id, attempts)| {
                    let finished = self.latest(id, attempts, q.stage).last().is_some_and(|p| p.3 >= p.4);
                    let at =
                        self.latest(id, attempts, q.stage).find(|p| p.3 == epoch).and_then(|p| Self::value(p, proxy));
                    (id, finished, at)
                })
                .collect())
        }

        fn rung_values(&self, q: &CurveQuery, proxy: Proxy, epoch: u32) -> Result<Vec<f64>> {
            Ok(self
                .comparable(q)
                .into_iter()
                .filter_map(|(id, attempts)| {
                    self.latest(id, attempts, q.stage).find(|p| p.3 >= epoch).and_then(|p| Self::value(p, proxy))
                })
                .collect())
        }
    }

    /// The same study in SQLite and in memory: every decision is asked of both, and must agree.
    struct Study {
        f: Fixture,
        mem: RefCell<MemCurves>,
    }

    /// A study of `n` trials whose curves are written by hand: `curves[i]` is trial `i + 1`'s
    /// `(epoch, val_accuracy)` points in `finetune`, of `epochs` epochs, attempt 1.
    fn table(n: usize, epochs: u32, curves: &[&[(u32, f64)]]) -> Study {
        let mut f = Fixture::new();
        f.ctx.insert_study(&command_study("s", n, 2)).unwrap();
        f.ctx.conn.execute("UPDATE trials SET attempts = 1", []).unwrap();
        let trials = (1..=n as i64).map(|id| (id, 1, "command".to_string(), None, 1)).collect();
        let s = Study { f, mem: RefCell::new(MemCurves { trials, points: Vec::new() }) };
        for (i, points) in curves.iter().enumerate() {
            for (epoch, acc) in points.iter() {
                add(&s, i as i64 + 1, *epoch, epochs, *acc);
            }
        }
        s
    }

    fn add(s: &Study, trial: i64, epoch: u32, epochs: u32, acc: f64) {
        s.f.ctx
            .conn
            .execute(
                "INSERT INTO curves (trial_id, attempt, stage, epoch, epochs, train_loss, val_loss, val_accuracy,
                                     recorded_ms) VALUES (?1, 1, 'finetune', ?2, ?3, 1.0, ?4, ?5, 0)
                 ON CONFLICT (trial_id, attempt, stage, epoch) DO UPDATE SET val_accuracy = excluded.val_accuracy",
                rusqlite::params![trial, epoch, epochs, 1.0 - acc, acc],
            )
            .unwrap();
        let loss =
            s.mem.borrow().points.iter().find(|p| (p.0, p.3) == (trial, epoch)).map_or(1.0 - acc, |p| p.5.unwrap());
        s.mem.borrow_mut().add((trial, 1, Stage::Finetune, epoch, epochs, Some(loss), Some(acc)));
    }

    /// Gives trials `ids` the configuration label `label`.
    fn relabel(s: &Study, ids: &[i64], label: &str) {
        for id in ids {
            s.f.ctx.conn.execute("UPDATE trials SET label = ?2 WHERE id = ?1", rusqlite::params![id, label]).unwrap();
            s.mem.borrow_mut().trials.iter_mut().filter(|t| t.0 == *id).for_each(|t| t.3 = Some(label.into()));
        }
    }

    /// What `pruner` decides for `progress` of `trial` (attempt 1 of study 1), asked of both views.
    fn decide_on(
        s: &Study,
        pruner: &dyn Pruner,
        trial: i64,
        progress: &EpochProgress,
        metric: &str,
        max: bool,
    ) -> bool {
        let sql = SqlCurves::new(&s.f.ctx.conn);
        let mem = s.mem.borrow();
        let views: [&dyn Curves; 2] = [&sql, &*mem];
        let [by_sql, by_mem] = views.map(|curves| {
            let ctx = PruneContext {
                curves,
                study_id: 1,
                trial_id: trial,
                attempt: 1,
                progress,
                objective_metric: metric,
                maximize: max,
            };
            pruner.decide(&ctx).unwrap() == ProgressAction::Prune
        });
        assert_eq!(by_sql, by_mem, "SQLite and memory decide alike");
        by_mem
    }

    fn decide(s: &Study, pruner: &dyn Pruner, trial: i64, epoch: u32, epochs: u32, acc: f64) -> bool {
        add(s, trial, epoch, epochs, acc);
        let progress = EpochProgress {
            stage: Stage::Finetune,
            epoch,
            epochs,
            train_loss: 1.0,
            val_loss: 1.0 - acc,
            val_accuracy: Some(acc),
        };
        decide_on(s, pruner, trial, &progress, "accuracy", true)
    }

    #[test]
    fn pruners_decide_over_curves_held_in_memory_alone() {
        // Trials 1 and 2 finished 2 epochs with 0.25 and 0.75 at epoch 1; trial 3 asks at epoch 1.
        let mut mem =
            MemCurves { trials: (1..=3).map(|id| (id, 1, "dec".to_string(), None, 1)).collect(), points: Vec::new() };
        for (trial, acc) in [(1, 0.25), (2, 0.75)] {
            mem.add((trial, 1, Stage::Finetune, 1, 2, Some(1.0 - acc), Some(acc)));
            mem.add((trial, 1, Stage::Finetune, 2, 2, Some(0.5), Some(acc)));
        }
        let ask = |pruner: &dyn Pruner, acc: f64| {
            let progress = EpochProgress {
                stage: Stage::Finetune,
                epoch: 1,
                epochs: 2,
                train_loss: 1.0,
                val_loss: 1.0 - acc,
                val_accuracy: Some(acc),
            };
            let ctx = PruneContext {
                curves: &mem,
                study_id: 1,
                trial_id: 3,
                attempt: 1,
                progress: &progress,
                objective_metric: "accuracy",
                maximize: true,
            };
            pruner.decide(&ctx).unwrap()
        };
        let median = MedianPruner { n_startup_trials: 2, ..MedianPruner::default() };
        assert_eq!(ask(&median, 0.49), ProgressAction::Prune, "below the median 0.5");
        assert_eq!(ask(&median, 0.5), ProgressAction::Continue, "at the median");
        // ASHA, η = 2, at rung 0 with {0.25, 0.75} and its own: the top ⌊3/2⌋ = 1 goes on.
        let asha = AshaPruner { reduction_factor: 2, ..AshaPruner::default() };
        assert_eq!(ask(&asha, 0.7), ProgressAction::Prune);
        assert_eq!(ask(&asha, 0.9), ProgressAction::Continue);
        assert_eq!(ask(&NoPruner, 0.0), ProgressAction::Continue);
    }

    #[test]
    fn proxies_follow_the_objective() {
        assert_eq!(Proxy::for_objective("accuracy", true), Proxy::ValAccuracy);
        assert_eq!(Proxy::for_objective("f1_macro", true), Proxy::ValAccuracy);
        assert_eq!(Proxy::for_objective("loss", false), Proxy::ValLoss);
        assert_eq!(Proxy::for_objective("test_loss", true), Proxy::ValLoss);
        assert_eq!(Proxy::for_objective("score", true), Proxy::ValAccuracy);
        assert_eq!(Proxy::for_objective("regret", false), Proxy::ValLoss);
    }

    #[test]
    fn the_median_rule_prunes_exactly_the_trials_below_the_median() {
        // Trials 1-3 finished all 4 epochs; at epoch 2 they had 0.5, 0.6, 0.7 (median 0.6).
        let done: [&[(u32, f64)]; 3] = [
            &[(1, 0.4), (2, 0.5), (3, 0.55), (4, 0.6)],
            &[(1, 0.5), (2, 0.6), (3, 0.65), (4, 0.7)],
            &[(1, 0.6), (2, 0.7), (3, 0.75), (4, 0.8)],
        ];
        let f = table(8, 4, &done);
        let median = MedianPruner { n_startup_trials: 3, ..MedianPruner::default() };
        // Trial 4: best so far 0.59 < 0.6 at epoch 2: pruned. Trial 5 at exactly the median: goes on.
        assert!(!decide(&f, &median, 4, 1, 4, 0.55), "epoch 1: median of 0.4, 0.5, 0.6 is 0.5");
        assert!(decide(&f, &median, 4, 2, 4, 0.59));
        assert!(!decide(&f, &median, 5, 2, 4, 0.6));
        // Trial 6 dips at epoch 2 but its best so far (0.9 at epoch 1) counts.
        assert!(!decide(&f, &median, 6, 1, 4, 0.9));
        assert!(!decide(&f, &median, 6, 2, 4, 0.1));
        // Running or pruned trials never make the median: trial 4's 0.59 is not a finished trial's.
        let strict = MedianPruner { n_startup_trials: 4, ..MedianPruner::default() };
        assert!(!decide(&f, &strict, 7, 2, 4, 0.0), "only 3 trials finished the stage");
        // Warm-up 1 and interval 2: epochs 2, 4, ... are checked; epochs 1 and 3 are not.
        let sparse = MedianPruner { n_startup_trials: 3, n_warmup_steps: 1, interval_steps: 2, ..median.clone() };
        assert!(!decide(&f, &sparse, 8, 1, 4, 0.0), "warm-up");
        assert!(decide(&f, &sparse, 8, 2, 4, 0.0), "epoch 2 is checked: median 0.6");
        assert!(!decide(&f, &sparse, 8, 3, 4, 0.1), "epoch 3 is not");
        assert!(decide(&f, &sparse, 8, 4, 4, 0.1), "epoch 4 is: median 0.7");
        // Another stage is never pruned.
        let dec_stage = MedianPruner { stage: Stage::Dec, ..median.clone() };
        assert!(!decide(&f, &dec_stage, 4, 2, 4, 0.0));
        // Trials of another pipeline or label are not compared.
        relabel(&f, &[1, 2, 8], "other");
        let one = MedianPruner { n_startup_trials: 1, ..median };
        assert!(decide(&f, &one, 4, 2, 4, 0.69), "only trial 3 compares: 0.69 < 0.7 (all three: median 0.6)");
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        let done: [&[(u32, f64)]; 2] = [&[(1, 0.25), (2, 0.3)], &[(1, 0.75), (2, 0.8)]];
        let f = table(4, 2, &done);
        let median = MedianPruner { n_startup_trials: 2, ..MedianPruner::default() };
        assert!(decide(&f, &median, 3, 1, 2, 0.49));
        assert!(!decide(&f, &median, 4, 1, 2, 0.5));
    }

    #[test]
    fn loss_objectives_prune_on_val_loss_minimised() {
        let f = table(3, 2, &[&[(1, 0.8), (2, 0.9)], &[(1, 0.6), (2, 0.7)]]);
        // val_loss = 1 - acc: finished trials have losses 0.2 and 0.4 at epoch 1 (median 0.3).
        let progress = |loss: f64| EpochProgress {
            stage: Stage::Finetune,
            epoch: 1,
            epochs: 2,
            train_loss: 1.0,
            val_loss: loss,
            val_accuracy: None,
        };
        let median = MedianPruner { n_startup_trials: 2, ..MedianPruner::default() };
        for (loss, prune) in [(0.35, true), (0.25, false)] {
            assert_eq!(decide_on(&f, &median, 3, &progress(loss), "loss", false), prune, "loss {loss}");
        }
    }

    #[test]
    fn asha_rungs_by_hand() {
        // η = 2, min_resource 1: rungs at epochs 1, 2, 4, 8.
        let asha = AshaPruner { reduction_factor: 2, ..AshaPruner::default() };
        assert_eq!((0..4).map(|k| asha.rung_epoch(k).unwrap()).collect::<Vec<_>>(), [1, 2, 4, 8]);
        let f = table(6, 8, &[]);
        // Trial 1 alone at rung 0: n = 1, ⌊1/2⌋ − 1 → index 0: the best of one: promoted.
        assert!(!decide(&f, &asha, 1, 1, 8, 0.5));
        // Trial 2 at rung 0 with {0.5, 0.4}: top ⌊2/2⌋ = 1 is 0.5: pruned.
        assert!(decide(&f, &asha, 2, 1, 8, 0.4));
        // Trial 3 with {0.5, 0.4, 0.6}: top 1 is 0.6: promoted.
        assert!(!decide(&f, &asha, 3, 1, 8, 0.6));
        // Trial 4 with {0.5, 0.4, 0.6, 0.55}: top ⌊4/2⌋ = 2 are 0.6 and 0.55: promoted.
        assert!(!decide(&f, &asha, 4, 1, 8, 0.55));
        // Epoch 3 is between rungs: never judged, whatever the value.
        add(&f, 1, 2, 8, 0.7);
        assert!(!decide(&f, &asha, 4, 2, 8, 0.7), "rung 1: {{0.7, 0.7}}, tie goes on");
        assert!(!decide(&f, &asha, 4, 3, 8, 0.0), "no rung at epoch 3");
        // Trial 3 reaches rung 1 with {0.7 (trial 1), 0.7 (trial 4), 0.65}: top 1 is 0.7: pruned.
        assert!(decide(&f, &asha, 3, 2, 8, 0.65));
        // Trial 5 skips epochs: its first report is epoch 4, judged at rungs 0, 1 and 2 in order.
        // Rung 0: {0.5, 0.4, 0.6, 0.55, 0.8} → top 2 (0.8, 0.6): promoted; rung 1: {0.7, 0.65,
        // 0.7, 0.8} → top 2: promoted; rung 2: {0.8} alone: promoted.
        assert!(!decide(&f, &asha, 5, 4, 8, 0.8));
        // Trial 6 the same way with 0.58: rung 0 top ⌊6/2⌋ = 3 are 0.8, 0.6, 0.58: promoted;
        // rung 1: {0.7, 0.65, 0.7, 0.8, 0.58}: top 2 are 0.8, 0.7: pruned.
        assert!(decide(&f, &asha, 6, 4, 8, 0.58));
    }

    #[test]
    fn asha_respects_the_early_stopping_rate_and_bootstrap() {
        let asha = AshaPruner {
            reduction_factor: 3,
            min_resource: 2,
            min_early_stopping_rate: 1,
            bootstrap_count: 1,
            ..AshaPruner::default()
        };
        assert_eq!(asha.rung_epoch(0), Some(6));
        let f = table(2, 20, &[]);
        assert!(!decide(&f, &asha, 1, 5, 20, 0.1), "before the first rung");
        assert!(decide(&f, &asha, 1, 6, 20, 0.9), "one competitor is not more than bootstrap_count = 1");
        assert!(!decide(&f, &asha, 2, 6, 20, 0.95), "two are; the best of two goes on");
    }
}
