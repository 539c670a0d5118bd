//! A synthetic CMU-MOSI-shaped dataset whose class signal lives in cluster structure: the
//! testbed where learning from unlabeled rows can matter (`decsweep data synth --kind clustered`,
//! `dataset = { synthetic = { kind = "clustered", … } }`).
//!
//! # Generative story
//!
//! All draws come from one seeded ChaCha8 stream (its own, so the `linear` generator's bytes are
//! untouched), so a seed and the knobs give the same bytes everywhere.
//!
//! **Fixed per dataset.**
//! 1. *Sub-clusters on a curve.* With `K = subclusters`, `2K` sub-cluster centres sit at equal
//!    angles `φ_c = 2π c / 2K` around a closed curve; sub-cluster `c` belongs to class `c mod 2`,
//!    so the classes alternate along the curve: each class is a union of `K` arcs, and no
//!    straight cut separates them (for `K ≥ 2`).
//! 2. *The curve.* An angle `θ` is the point `u(θ) = (cos θ, sin θ, 0.6 cos 2θ, 0.6 sin 2θ)` of a
//!    curved closed loop in four dimensions.
//! 3. *Non-linear embedding, one per modality.* Modality `m` maps the curve into its `d_m`
//!    features through a random two-layer network, `s_m(θ) = W_m tanh(A_m u(θ) + b_m)`, with
//!    `H = 16` hidden units (`A_m`, `b_m` entries N(0, 1.5²), `W_m` N(0, 1)); each feature of
//!    `s_m` is then centred and scaled to unit variance over the curve (measured on 720 angles).
//!    Each modality therefore sees the same curve bent differently.
//! 4. *Nuisance.* 8 speakers with a fixed 3-d style each, and a per-utterance 2-d nuisance
//!    (recording conditions), mapped linearly into each modality (N(0, 1) weights times 0.15):
//!    structure in the unlabeled rows that has nothing to do with the class.
//! 5. *Feature scales.* Per-feature log-normal scales and N(0, 2²) offsets, and about one audio
//!    and vision feature in twenty constant, as in the `linear` generator.
//!
//! **Per utterance.**
//! 1. *Cluster and label.* A sub-cluster `c` uniformly among the `2K`; the angle
//!    `θ = φ_c + σ ε` with `σ = (π / 2K) / separation` (half the gap between neighbouring
//!    centres is `separation` standard deviations). The label's sign is the class (negative for
//!    even `c`); its size is `|N(1.6, 0.6)|` on the 0.2 grid, at least 0.2, at most 3. About 5% of
//!    utterances are rated neutral: label exactly 0, features from their sub-cluster as usual.
//! 2. *Length* uniform in `min_len ..= max_len`; steps after it are 0.
//! 3. *Time and modalities.* At each valid step of modality `m`, with probability `share_m` the
//!    step carries the cluster signal `s_m(θ)`; otherwise it carries none. Every step carries the
//!    speaker and nuisance terms and independent noise of standard deviation `noise_m` (in units
//!    of the signal's): a feature at one step says almost nothing, so only pooling over steps,
//!    features and modalities locates an utterance on the curve.
//!
//! The feature value is `offset + scale · (signal + nuisance + noise_m · ε)`.
//!
//! # What makes it a semi-supervised testbed
//!
//! The class is a function of *where on the curve* an utterance lies, and the unlabeled rows
//! fill the curve with dense arcs separated by gaps. A learner that uses only the labeled rows
//! must learn `2K` alternating arcs of a bent curve in hundreds of noisy dimensions from a few
//! dozen examples; one that first learns the curve and its gaps from every row only has to name
//! each arc, for which one labeled row per arc suffices. The tests measure both on
//! time-averaged features (nearest labeled neighbour vs k-means on all rows).
//!
//! # Knobs ([`decsweep_api::ClusteredKnobs`])
//!
//! - `separation` (default 2.5): larger makes the arcs tighter and the gaps wider (easier for
//!   both learners, and the Bayes error smaller); near 1 the arcs touch.
//! - `subclusters` (4): arcs per class; more arcs need more labels to name.
//! - `noise_text`, `noise_audio`, `noise_vision` (7, 3.5, 2.8): per-step noise of each
//!   modality. The defaults make the modalities about equally informative despite their widths
//!   (300, 74, 47 features): text's many features average more noise away, so it gets more.
//! - `share_text`, `share_audio`, `share_vision` (0.5 each): how much of each modality's time
//!   carries the signal; 0 makes a modality pure nuisance.

use decsweep_api::ClusteredKnobs;
use serde_json::json;

use crate::dataset::{Dataset, Features, Metadata};
use crate::rng::{stream, DetRng};
use crate::synth_shape::{split_tensor, SynthConfig};

const N_SPEAKERS: usize = 8;
/// Hidden units of each modality's embedding network.
const HIDDEN: usize = 16;
/// Standard deviation of the embedding network's first-layer weights and biases: large enough
/// that `tanh` bends the curve, small enough that it does not flatten it to its sign.
const FIRST_LAYER_SD: f64 = 1.5;
/// Weight of the speaker-style and per-utterance nuisance terms.
const NUISANCE_WEIGHT: f64 = 0.15;
/// Share of utterances rated neutral (label 0).
const NEUTRAL: f64 = 0.05;
/// Angles on which each feature's signal is standardised.
const GRID: usize = 720;

/// Generates a clustered dataset with the shapes of `cfg` (clamped as [`crate::synthesize`]
/// clamps them). Out-of-range knobs are clamped too (a spec or flag has checked them already).
pub fn synthesize_clustered(cfg: &SynthConfig, knobs: &ClusteredKnobs) -> Dataset {
    generate(cfg, knobs).0
}

/// The dataset and each row's sub-cluster (its class is the sub-cluster's parity), which the
/// tests need and the file does not hold.
fn generate(cfg: &SynthConfig, knobs: &ClusteredKnobs) -> (Dataset, Vec<usize>) {
    let min_len = cfg.min_len.max(1);
    let max_len = cfg.max_len.max(min_len);
    let dims = cfg.dims.map(|d| d.max(1));
    let n = cfg.n;
    let k_sub = knobs.subclusters.clamp(1, 32) as usize;
    let n_clusters = 2 * k_sub;
    let separation = if knobs.separation > 0.0 { knobs.separation } else { 1.0 };
    let share = knobs.share.map(|s| s.clamp(0.0, 1.0));
    let noise = knobs.noise.map(|s| s.max(0.0) as f32);
    let mut rng = DetRng::new(cfg.seed, stream::SYNTH_CLUSTERED);

    let embeddings: Vec<Embedding> = (0..3).map(|m| Embedding::draw(&mut rng, m, dims[m])).collect();
    let styles: Vec<[f64; 3]> = (0..N_SPEAKERS).map(|_| [rng.normal(), rng.normal(), rng.normal()]).collect();

    let gap = std::f64::consts::PI / n_clusters as f64;
    let sd = gap / separation;
    let mut utterances = Vec::with_capacity(n);
    let mut clusters = Vec::with_capacity(n);
    let mut labels = Vec::with_capacity(n);
    let mut lengths = Vec::with_capacity(n);
    for _ in 0..n {
        let c = rng.below(n_clusters as u64) as usize;
        clusters.push(c);
        let theta = 2.0 * gap * c as f64 + sd * rng.normal();
        let neutral = rng.uniform() < NEUTRAL;
        let size = ((1.6 + 0.6 * rng.normal()).abs() * 5.0).round().clamp(1.0, 15.0) / 5.0;
        let sign = if c.is_multiple_of(2) { -1.0 } else { 1.0 };
        labels.push(if neutral { 0.0 } else { (sign * size) as f32 });
        let style = styles[rng.below(N_SPEAKERS as u64) as usize];
        let latent = [style[0], style[1], style[2], rng.normal(), rng.normal()];
        utterances.push(Utterance { theta, latent });
        lengths.push((min_len + rng.below((max_len - min_len + 1) as u64) as usize) as u32);
    }

    let modalities: [Features; 3] = std::array::from_fn(|m| {
        let mut f = Features::zeros(n, max_len, dims[m]);
        let e = &embeddings[m];
        for (i, u) in utterances.iter().enumerate() {
            let signal = e.signal(u.theta);
            let nuisance = e.nuisance(&u.latent);
            for t in 0..lengths[i] as usize {
                let carries = rng.uniform() < share[m];
                let start = (i * max_len + t) * dims[m];
                for (j, x) in f.data[start..start + dims[m]].iter_mut().enumerate() {
                    if e.dead[j] {
                        *x = e.offset[j];
                        continue;
                    }
                    let s = if carries { signal[j] } else { 0.0 };
                    *x = e.offset[j] + e.scale[j] * (s + nuisance[j] + noise[m] * rng.noise());
                }
            }
        }
        f
    });

    let split = split_tensor(&mut rng, n);
    let meta = Metadata {
        ids: (0..n).map(|i| format!("clustered{}_{i:04}", cfg.seed)).collect(),
        source: format!("decsweep synthetic clustered CMU-MOSI (seed {}; {knobs})", cfg.seed),
        feature_names: None,
        nonfinite_replaced: 0,
        extra: json!({
            "generator": "decsweep-synth-clustered/1",
            "seed": cfg.seed,
            "n": n,
            "dims": dims,
            "min_len": min_len,
            "max_len": max_len,
            "separation": separation,
            "subclusters": k_sub,
            "noise": knobs.noise,
            "share": share,
        }),
    };
    let ds =
        Dataset { modalities, lengths: [lengths.clone(), lengths.clone(), lengths], labels, split: Some(split), meta };
    (ds, clusters)
}

struct Utterance {
    theta: f64,
    /// Speaker style (3) and recording nuisance (2).
    latent: [f64; 5],
}

/// The point of the curve at angle `theta`.
fn curve(theta: f64) -> [f64; 4] {
    [theta.cos(), theta.sin(), 0.6 * (2.0 * theta).cos(), 0.6 * (2.0 * theta).sin()]
}

/// One modality's fixed maps: curve → features (non-linear), nuisance → features (linear).
struct Embedding {
    /// `[HIDDEN, 4]` and `[HIDDEN]`.
    a: Vec<f64>,
    b: Vec<f64>,
    /// `[d, HIDDEN]`.
    w: Vec<f64>,
    /// Per feature: the signal's mean and standard deviation over the curve.
    center: Vec<f64>,
    spread: Vec<f64>,
    /// `[d, 5]`, weights applied.
    nuisance_w: Vec<f64>,
    scale: Vec<f32>,
    offset: Vec<f32>,
    dead: Vec<bool>,
}

impl Embedding {
    fn draw(rng: &mut DetRng, m: usize, d: usize) -> Self {
        let a = (0..HIDDEN * 4).map(|_| FIRST_LAYER_SD * rng.normal()).collect();
        let b = (0..HIDDEN).map(|_| FIRST_LAYER_SD * rng.normal()).collect();
        let w = (0..d * HIDDEN).map(|_| rng.normal()).collect();
        let nuisance_w = (0..d * 5).map(|_| NUISANCE_WEIGHT * rng.normal()).collect();
        let scale = (0..d).map(|_| (0.7 * rng.normal()).exp() as f32).collect();
        let offset = (0..d).map(|_| (2.0 * rng.normal()) as f32).collect();
        let mut dead = vec![false; d];
        if m > 0 {
            for _ in 0..d / 20 {
                dead[rng.below(d as u64) as usize] = true;
            }
        }
        let mut e = Embedding { a, b, w, center: vec![0.0; d], spread: vec![1.0; d], nuisance_w, scale, offset, dead };
        // Standardise each feature's signal over the whole curve, so `noise_m` is in units of it.
        let (mut sum, mut sq) = (vec![0.0f64; d], vec![0.0f64; d]);
        for g in 0..GRID {
            let s = e.raw(std::f64::consts::TAU * g as f64 / GRID as f64);
            for j in 0..d {
                sum[j] += s[j];
                sq[j] += s[j] * s[j];
            }
        }
        for j in 0..d {
            let mean = sum[j] / GRID as f64;
            let var = (sq[j] / GRID as f64 - mean * mean).max(0.0);
            e.center[j] = mean;
            e.spread[j] = if var > 1e-12 { var.sqrt() } else { 1.0 };
        }
        e
    }

    fn raw(&self, theta: f64) -> Vec<f64> {
        let u = curve(theta);
        let h: Vec<f64> =
            (0..HIDDEN).map(|k| (self.b[k] + (0..4).map(|q| self.a[k * 4 + q] * u[q]).sum::<f64>()).tanh()).collect();
        self.w.chunks_exact(HIDDEN).map(|row| row.iter().zip(&h).map(|(w, h)| w * h).sum()).collect()
    }

    /// The standardised signal of every feature at angle `theta`.
    fn signal(&self, theta: f64) -> Vec<f32> {
        let raw = self.raw(theta);
        raw.iter().enumerate().map(|(j, s)| ((s - self.center[j]) / self.spread[j]) as f32).collect()
    }

    fn nuisance(&self, latent: &[f64; 5]) -> Vec<f32> {
        self.nuisance_w.chunks_exact(5).map(|w| w.iter().zip(latent).map(|(w, z)| w * z).sum::<f64>() as f32).collect()
    }
}

#[cfg(test)]
mod tests;
