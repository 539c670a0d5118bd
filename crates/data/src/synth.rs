//! A synthetic dataset shaped like CMU-MOSI, for demos, tests and benchmarks that must not need
//! the real data: the `linear` kind (the default, described here; its label signal is easy and
//! DEC pretraining cannot help on it) and the `clustered` kind ([`crate::synthesize_clustered`],
//! a testbed where unlabeled rows carry the class structure).
//!
//! # Generative story
//!
//! For each utterance `i` (all draws from one seeded ChaCha8 stream, so a seed gives the same
//! bytes everywhere):
//!
//! 1. **Sentiment.** A latent score `s_i` from a three-part mixture like MOSI's label histogram:
//!    neutral (15%, N(0, 0.15)), positive (≈ 44%, N(+1.6, 0.6)) or negative (≈ 41%,
//!    N(−1.6, 0.6)). The *annotated* label is `s_i` plus annotator noise (N(0, 0.3); N(0, 0.2)
//!    on neutral utterances), rounded to a multiple of 0.2 and clipped to [−3, 3]: two modes
//!    near ±1.6 and about 5% exact zeros. The sentiment the speaker *expresses*, which is what the
//!    features encode, is `s_i + N(0, 0.7)`: its sign disagrees with the label's for about one
//!    nonzero label in twelve, which no model can recover, so accuracy is capped near 90% as on the
//!    real data.
//! 2. **Nuisance.** A speaker out of 8, each with a fixed 3-d style vector, and a 2-d
//!    per-utterance nuisance (recording conditions). Neither depends on the sentiment.
//! 3. **Projection.** Each modality has a fixed random matrix mapping the 6 latent factors
//!    (sentiment, 3 style, 2 nuisance) to its `d` features: N(0, 1) entries times a column weight
//!    (sentiment 0.55 text / 0.45 audio / 0.4 vision; style and nuisance 0.25), then per-feature
//!    log-normal scales and N(0, 2²) offsets (real features have wildly different ranges, which
//!    the min-max + z-score normalisation must handle).
//! 4. **Time.** The sentiment factor is modulated over the steps by a slow sinusoid
//!    (`1 + 0.5 sin`) with a per-utterance period (5–20 steps) and phase; in text, only
//!    "sentiment-bearing words" (half the steps, weight 1.5 against 0.5) carry most of it. Style
//!    and nuisance are constant over an utterance.
//! 5. **Noise.** Every feature at every step gets noise of standard deviation 25 (text), 28
//!    (audio) or 30 (vision): far above the signal of one step, so that only pooling over steps and
//!    features recovers the sentiment. With the weights above, text is the most informative
//!    modality, then audio, and vision the least.
//! 6. **Dead features.** About one audio and vision feature in twenty is constant (as some
//!    COVAREP / FACET columns are), so normalisation meets zero-range features.
//!
//! Lengths are uniform in `min_len..=max_len`, `T = max_len`, and steps after a row's length are
//! 0. The `split` tensor follows MOSI's 1284 / 229 / 686 proportions, scaled to `n`, shuffled.
//!
//! # Measured (n = 2199, default dims; the tests assert these stay in range)
//!
//! | seed | logistic regression, test accuracy | 2-means agreement with the label sign |
//! | --- | --- | --- |
//! | 0 | 83.1% | 86.0% |
//! | 1 | 83.2% | 84.6% |
//! | 2 | 79.7% | 84.4% |
//!
//! Logistic regression: seeded SGD with L2 on time-averaged, standardised features of the
//! split-0 rows, evaluated on the split-2 rows, zeros dropped. 2-means: Lloyd's algorithm on the
//! same features of all rows, no labels, best of the two label permutations. One modality alone
//! (seed 0): text 82.5%, audio 65.7%, vision 60.0%. The cluster structure follows the sentiment
//! because it has more variance than the speaker styles; at a style weight of 0.45 instead of
//! 0.25, 2-means on seed 0 splits by speaker (51% agreement), so the margin is comfortable.

use decsweep_api::SynthKind;
use serde_json::json;

use crate::dataset::{Dataset, Features, Metadata};
use crate::rng::{stream, DetRng};
use crate::synth_shape::{split_tensor, SynthConfig};

const N_SPEAKERS: usize = 8;
/// Latent factors: sentiment, 3 style, 2 nuisance.
const N_LATENT: usize = 6;
/// Per modality (text, audio, vision): weight of the sentiment column of the projection.
const SENTIMENT_WEIGHT: [f32; 3] = [0.55, 0.45, 0.4];
/// Weight of the style and nuisance columns.
const STYLE_WEIGHT: f32 = 0.25;
const NUISANCE_WEIGHT: f32 = 0.25;
/// Share of neutral utterances, and their latent spread.
const NEUTRAL: f64 = 0.15;
const NEUTRAL_SD: f64 = 0.15;
/// Spread of the positive and negative modes around ±1.6.
const MODE_SD: f64 = 0.6;
/// Annotators agree more on clearly neutral utterances; this is what makes about 5% of the
/// labels exactly 0, as in MOSI-like data.
const NEUTRAL_ANNOTATOR_NOISE: f64 = 0.2;

/// Share of positive utterances among the non-neutral ones (MOSI has slightly more positive).
const POSITIVE_SHARE: f64 = 0.52;
/// Standard deviation of the annotators' noise on the sentiment score.
const ANNOTATOR_NOISE: f64 = 0.3;
/// How far the sentiment a speaker *expresses* (what the features encode) strays from the one
/// the annotators rate. This, not annotator noise, caps the attainable accuracy, so the label
/// histogram keeps MOSI's two modes.
const EXPRESSION_NOISE: f64 = 0.7;
/// Per-step noise standard deviation per modality (before the per-feature scale). Large next
/// to the signal weights on purpose: averaging over ~27 steps and hundreds of features is what
/// makes the sentiment recoverable, as in the real features.
const NOISE: [f32; 3] = [25.0, 28.0, 30.0];

/// Generates a dataset of either kind: [`synthesize`] for `linear`,
/// [`crate::synthesize_clustered`] for `clustered`.
pub fn synthesize_kind(cfg: &SynthConfig, kind: &SynthKind) -> Dataset {
    match kind {
        SynthKind::Linear => synthesize(cfg),
        SynthKind::Clustered(knobs) => crate::clustered::synthesize_clustered(cfg, knobs),
    }
}

/// Generates a dataset (the `linear` kind). Out-of-range settings are clamped rather than refused (lengths at least
/// 1 and `min_len <= max_len`, dims at least 1), so every config yields a valid dataset.
pub fn synthesize(cfg: &SynthConfig) -> Dataset {
    let min_len = cfg.min_len.max(1);
    let max_len = cfg.max_len.max(min_len);
    let dims = cfg.dims.map(|d| d.max(1));
    if (min_len, max_len, dims) != (cfg.min_len, cfg.max_len, cfg.dims) {
        tracing::warn!(?cfg, min_len, max_len, ?dims, "synth config clamped to valid values");
    }
    let n = cfg.n;
    let mut rng = DetRng::new(cfg.seed, stream::SYNTH);

    // Fixed per-dataset structure: speaker styles and each modality's projection.
    let styles: Vec<[f32; 3]> =
        (0..N_SPEAKERS).map(|_| [rng.normal() as f32, rng.normal() as f32, rng.normal() as f32]).collect();
    let projections: Vec<Projection> = (0..3).map(|m| Projection::draw(&mut rng, m, dims[m])).collect();

    // Per-utterance latents and labels.
    let mut latents = Vec::with_capacity(n);
    let mut labels = Vec::with_capacity(n);
    let mut lengths = Vec::with_capacity(n);
    for _ in 0..n {
        let (s, neutral) = sentiment(&mut rng);
        labels.push(annotate(&mut rng, s, neutral));
        let style = styles[rng.below(N_SPEAKERS as u64) as usize];
        let expressed = s + EXPRESSION_NOISE * rng.normal();
        let z = [(expressed / 1.6) as f32, style[0], style[1], style[2], rng.normal() as f32, rng.normal() as f32];
        latents.push(z);
        lengths.push((min_len + rng.below((max_len - min_len + 1) as u64) as usize) as u32);
    }

    let modalities: [Features; 3] = std::array::from_fn(|m| {
        let mut f = Features::zeros(n, max_len, dims[m]);
        for i in 0..n {
            fill_row(&mut rng, &projections[m], m, &latents[i], lengths[i] as usize, &mut f, i);
        }
        f
    });

    let split = split_tensor(&mut rng, n);
    let meta = Metadata {
        ids: (0..n).map(|i| format!("synth{}_{i:04}", cfg.seed)).collect(),
        source: format!("decsweep synthetic CMU-MOSI (seed {})", cfg.seed),
        feature_names: None,
        nonfinite_replaced: 0,
        extra: json!({
            "generator": "decsweep-synth/1",
            "seed": cfg.seed,
            "n": n,
            "dims": dims,
            "min_len": min_len,
            "max_len": max_len,
        }),
    };
    Dataset { modalities, lengths: [lengths.clone(), lengths.clone(), lengths], labels, split: Some(split), meta }
}

/// The latent sentiment from the neutral, positive or negative mode; `true` when neutral.
fn sentiment(rng: &mut DetRng) -> (f64, bool) {
    let u = rng.uniform();
    let (mean, sd) = if u < NEUTRAL {
        (0.0, NEUTRAL_SD)
    } else if u < NEUTRAL + (1.0 - NEUTRAL) * POSITIVE_SHARE {
        (1.6, MODE_SD)
    } else {
        (-1.6, MODE_SD)
    };
    (mean + sd * rng.normal(), u < NEUTRAL)
}

/// The annotated label: noisy, on a 0.2 grid, within [-3, 3].
fn annotate(rng: &mut DetRng, s: f64, neutral: bool) -> f32 {
    let sd = if neutral { NEUTRAL_ANNOTATOR_NOISE } else { ANNOTATOR_NOISE };
    let rounded = ((s + sd * rng.normal()) * 5.0).round() / 5.0;
    // `+ 0.0` turns a rounded −0.0 into +0.0, so a zero label is stored and printed as 0.
    (rounded.clamp(-3.0, 3.0) + 0.0) as f32
}

/// One modality's fixed map from latent factors to features.
struct Projection {
    /// Row-major `[d, N_LATENT]`, column weights applied.
    weights: Vec<f32>,
    scale: Vec<f32>,
    offset: Vec<f32>,
    dead: Vec<bool>,
}

impl Projection {
    fn draw(rng: &mut DetRng, m: usize, d: usize) -> Self {
        let column = [SENTIMENT_WEIGHT[m], STYLE_WEIGHT, STYLE_WEIGHT, STYLE_WEIGHT, NUISANCE_WEIGHT, NUISANCE_WEIGHT];
        let weights = (0..d * N_LATENT).map(|k| column[k % N_LATENT] * rng.normal() as f32).collect();
        let scale = (0..d).map(|_| (0.7 * rng.normal()).exp() as f32).collect();
        let offset = (0..d).map(|_| (2.0 * rng.normal()) as f32).collect();
        // Text (GloVe) has no dead columns; audio and vision about one in twenty.
        let mut dead = vec![false; d];
        if m > 0 {
            for _ in 0..d / 20 {
                dead[rng.below(d as u64) as usize] = true;
            }
        }
        Projection { weights, scale, offset, dead }
    }
}

/// Writes the valid steps of row `i` of modality `m`; padded steps stay 0.
fn fill_row(rng: &mut DetRng, p: &Projection, m: usize, z: &[f32; N_LATENT], len: usize, f: &mut Features, i: usize) {
    let d = f.d;
    let noise_m = NOISE[m];
    let period = 5.0 + 15.0 * rng.uniform();
    let phase = std::f64::consts::TAU * rng.uniform();
    let mut v = *z;
    for t in 0..len {
        let mut amp = 1.0 + 0.5 * (std::f64::consts::TAU * t as f64 / period + phase).sin();
        if m == 0 {
            // Sentiment-bearing words carry most of the text signal.
            amp *= if rng.uniform() < 0.5 { 1.5 } else { 0.5 };
        }
        v[0] = z[0] * amp as f32;
        let start = (i * f.t + t) * d;
        let out = &mut f.data[start..start + d];
        for (j, x) in out.iter_mut().enumerate() {
            if p.dead[j] {
                *x = p.offset[j];
                continue;
            }
            let w = &p.weights[j * N_LATENT..(j + 1) * N_LATENT];
            // Spelled out: this line runs tens of millions of times per dataset.
            let signal = w[0] * v[0] + w[1] * v[1] + w[2] * v[2] + w[3] * v[3] + w[4] * v[4] + w[5] * v[5];
            *x = p.offset[j] + p.scale[j] * (signal + noise_m * rng.noise());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::MODALITIES;
    use crate::synth_shape::MOSI_SPLIT;
    use std::path::Path;
    use std::sync::OnceLock;

    #[test]
    fn shapes_lengths_padding_and_split_counts() {
        let ds = mosi(0);
        ds.validate(Path::new("synth")).unwrap();
        assert_eq!(ds.n(), 2199);
        for (m, f) in ds.modalities.iter().enumerate() {
            assert_eq!((f.n, f.t, f.d), (2199, 50, [300, 74, 47][m]), "{}", MODALITIES[m]);
        }
        assert!(ds.lengths_aligned());
        let lens = &ds.lengths[0];
        assert_eq!(*lens.iter().min().unwrap(), 5);
        assert_eq!(*lens.iter().max().unwrap(), 50);
        for (m, f) in ds.modalities.iter().enumerate() {
            for (i, &len) in lens.iter().enumerate() {
                let len = len as usize;
                assert!(f.row(i)[len * f.d..].iter().all(|&x| x == 0.0), "padding {m} row {i}");
                assert!(f.step(i, len - 1).iter().any(|&x| x != 0.0), "last valid step {m} row {i}");
            }
        }
        let split = ds.split.as_ref().unwrap();
        let counts = [0u8, 1, 2].map(|v| split.iter().filter(|&&s| s == v).count());
        assert_eq!(counts, MOSI_SPLIT);
        assert!(split[..100].contains(&2) && split[..100].contains(&0), "split is shuffled");

        let zeros = ds.labels.iter().filter(|&&y| y == 0.0).count() as f64 / 2199.0;
        let pos = ds.labels.iter().filter(|&&y| y > 0.0).count() as f64 / 2199.0;
        assert!((0.03..0.08).contains(&zeros), "zero labels {zeros}");
        assert!((0.4..0.6).contains(&pos), "positive labels {pos}");
        assert!(ds.labels.iter().all(|&y| ((y * 5.0).round() - y * 5.0).abs() < 1e-4), "0.2 grid");
        // Bimodal: more mass around ±1.6 than around ±0.6.
        let near = |c: f32| ds.labels.iter().filter(|&&y| (y - c).abs() < 0.3).count();
        assert!(near(1.6) > near(0.6) && near(-1.6) > near(-0.6));
        // Dead features are constant over valid steps.
        let audio = &ds.modalities[1];
        let dead = (0..audio.d).filter(|&j| (0..50).all(|i| audio.step(i, 0)[j] == audio.step(0, 0)[j])).count();
        assert!(dead >= 1, "audio has constant features");
    }

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        let small = SynthConfig { n: 50, dims: [7, 5, 3], ..SynthConfig::default() };
        assert_eq!(synthesize(&small), synthesize(&small));
        let other = synthesize(&SynthConfig { seed: 1, ..small.clone() });
        assert_ne!(synthesize(&small).modalities[0].data, other.modalities[0].data);
    }

    #[test]
    fn odd_configs_are_clamped_not_panics() {
        let ds = synthesize(&SynthConfig { n: 3, seed: 0, dims: [0, 1, 2], max_len: 0, min_len: 0 });
        ds.validate(Path::new("synth")).unwrap();
        assert_eq!(ds.modalities[0].t, 1);
        let empty = synthesize(&SynthConfig { n: 0, ..SynthConfig::default() });
        assert_eq!(empty.n(), 0);
    }

    /// MOSI-sized datasets for seeds 0..3, generated once and shared by the tests (generation
    /// takes seconds in an unoptimised test build).
    fn mosi(seed: u64) -> &'static Dataset {
        static CACHE: [OnceLock<Dataset>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
        CACHE[seed as usize].get_or_init(|| synthesize(&SynthConfig { seed, ..SynthConfig::default() }))
    }

    /// Per-row time averages of the valid steps of the modalities `mods`, concatenated.
    fn time_averaged(ds: &Dataset, mods: &[usize]) -> Vec<Vec<f64>> {
        (0..ds.n())
            .map(|i| {
                let mut row = Vec::new();
                for &m in mods {
                    let f = &ds.modalities[m];
                    let len = ds.lengths[m][i] as usize;
                    let mut acc = vec![0.0f64; f.d];
                    for s in 0..len {
                        let step = f.step(i, s);
                        for j in 0..f.d {
                            acc[j] += step[j] as f64;
                        }
                    }
                    row.extend(acc.iter().map(|a| a / len as f64));
                }
                row
            })
            .collect()
    }

    /// Standardises columns with the mean and std of the rows in `fit`; constant columns → 0.
    fn standardize(x: &mut [Vec<f64>], fit: &[usize]) {
        let d = x[0].len();
        let (mut mean, mut var) = (vec![0.0; d], vec![0.0; d]);
        for &i in fit {
            for j in 0..d {
                mean[j] += x[i][j] / fit.len() as f64;
            }
        }
        for &i in fit {
            for j in 0..d {
                var[j] += (x[i][j] - mean[j]).powi(2) / fit.len() as f64;
            }
        }
        for row in x.iter_mut() {
            for j in 0..d {
                let sd = var[j].sqrt();
                row[j] = if sd > 1e-12 { (row[j] - mean[j]) / sd } else { 0.0 };
            }
        }
    }

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        let mut acc = 0.0;
        for k in 0..a.len() {
            acc += a[k] * b[k];
        }
        acc
    }

    /// L2-regularised logistic regression by seeded SGD with a decaying step; test accuracy.
    fn logistic_accuracy(x: &[Vec<f64>], y: &[f64], train: &[usize], test: &[usize]) -> f64 {
        let d = x[0].len();
        let (mut w, mut b) = (vec![0.0f64; d], 0.0f64);
        let l2 = 0.01;
        let mut order = train.to_vec();
        let mut rng = DetRng::new(0, 98);
        for epoch in 0..15 {
            rng.shuffle(&mut order);
            let lr = 0.003 / (1.0 + epoch as f64);
            for &i in &order {
                let err = 1.0 / (1.0 + (-(b + dot(&x[i], &w))).exp()) - y[i];
                for j in 0..d {
                    w[j] -= lr * (err * x[i][j] + l2 * w[j]);
                }
                b -= lr * err;
            }
        }
        let correct = test.iter().filter(|&&i| (b + dot(&x[i], &w) > 0.0) == (y[i] > 0.5)).count();
        correct as f64 / test.len() as f64
    }

    /// Lloyd's 2-means from a few seeded starts, best inertia; the cluster of each row.
    fn two_means(x: &[Vec<f64>], seed: u64) -> Vec<usize> {
        let (n, d) = (x.len(), x[0].len());
        let mut rng = DetRng::new(seed, 99);
        let mut best: Option<(f64, Vec<usize>)> = None;
        for _ in 0..3 {
            let mut centers = [x[rng.below(n as u64) as usize].clone(), x[rng.below(n as u64) as usize].clone()];
            let mut assign = vec![usize::MAX; n];
            let mut inertia = 0.0;
            for _ in 0..100 {
                inertia = 0.0;
                let mut changed = false;
                for i in 0..n {
                    let (mut d0, mut d1) = (0.0, 0.0);
                    for j in 0..d {
                        d0 += (x[i][j] - centers[0][j]).powi(2);
                        d1 += (x[i][j] - centers[1][j]).powi(2);
                    }
                    let c = usize::from(d1 < d0);
                    changed |= assign[i] != c;
                    assign[i] = c;
                    inertia += d0.min(d1);
                }
                if !changed {
                    break;
                }
                let mut sums = [vec![0.0; d], vec![0.0; d]];
                let mut counts = [0usize; 2];
                for i in 0..n {
                    counts[assign[i]] += 1;
                    for j in 0..d {
                        sums[assign[i]][j] += x[i][j];
                    }
                }
                for k in 0..2 {
                    if counts[k] > 0 {
                        centers[k] = sums[k].iter().map(|s| s / counts[k] as f64).collect();
                    }
                }
            }
            if best.as_ref().is_none_or(|(b, _)| inertia < *b) {
                best = Some((inertia, assign));
            }
        }
        best.map(|(_, a)| a).unwrap_or_default()
    }

    /// (logistic-regression test accuracy, 2-means agreement) for one dataset and modalities.
    fn measure(ds: &Dataset, mods: &[usize], seed: u64) -> (f64, f64) {
        let split = ds.split.clone().unwrap();
        let mut x = time_averaged(ds, mods);
        let y: Vec<f64> = ds.labels.iter().map(|&l| if l > 0.0 { 1.0 } else { 0.0 }).collect();
        let nonzero = |i: &usize| ds.labels[*i] != 0.0;
        let train: Vec<usize> = (0..ds.n()).filter(|&i| split[i] == 0).filter(nonzero).collect();
        let test: Vec<usize> = (0..ds.n()).filter(|&i| split[i] == 2).filter(nonzero).collect();

        standardize(&mut x, &train);
        let lr = logistic_accuracy(&x, &y, &train, &test);

        let all: Vec<usize> = (0..ds.n()).collect();
        standardize(&mut x, &all);
        let assign = two_means(&x, seed);
        let labeled: Vec<usize> = all.into_iter().filter(nonzero).collect();
        let agree = labeled.iter().filter(|&&i| (assign[i] == 1) == (y[i] > 0.5)).count() as f64 / labeled.len() as f64;
        (lr, agree.max(1.0 - agree))
    }

    #[test]
    fn learnable_but_not_trivial_and_clusters_follow_sentiment() {
        let measured: Vec<(f64, f64)> = (0..3).map(|seed| measure(mosi(seed), &[0, 1, 2], seed)).collect();
        for (seed, &(lr, agree)) in measured.iter().enumerate() {
            eprintln!("seed {seed}: logistic regression test accuracy {lr:.4}, 2-means agreement {agree:.4}");
        }
        for (seed, &(lr, agree)) in measured.iter().enumerate() {
            assert!((0.75..0.90).contains(&lr), "seed {seed}: logistic regression accuracy {lr}");
            assert!(agree > 0.65, "seed {seed}: 2-means agreement {agree}");
        }
    }

    #[test]
    fn text_is_the_most_informative_modality_and_vision_the_least() {
        let acc: Vec<f64> = (0..3).map(|m| measure(mosi(0), &[m], 0).0).collect();
        eprintln!("single-modality logistic regression accuracy (text, audio, vision): {acc:.4?}");
        assert!(acc[0] > acc[1] && acc[1] > acc[2], "{acc:?}");
        assert!(acc[2] > 0.55, "even vision carries some signal: {acc:?}");
    }
}
