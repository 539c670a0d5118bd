use std::path::Path;
use std::sync::OnceLock;

use super::*;
use crate::dataset::MODALITIES;

/// A small dataset for the knob tests: few features, so generation is instant.
fn small(knobs: &ClusteredKnobs, seed: u64) -> (Dataset, Vec<usize>) {
    generate(&SynthConfig { n: 600, seed, dims: [24, 12, 10], max_len: 20, min_len: 5 }, knobs)
}

/// Knobs without noise, every step carrying the signal: the cluster geometry alone.
fn clean() -> ClusteredKnobs {
    ClusteredKnobs { noise: [0.0; 3], share: [1.0; 3], ..ClusteredKnobs::default() }
}

/// The default MOSI-shaped dataset of seed 0, generated once for the tests that need it.
fn mosi() -> &'static (Dataset, Vec<usize>) {
    static CACHE: OnceLock<(Dataset, Vec<usize>)> = OnceLock::new();
    CACHE.get_or_init(|| generate(&SynthConfig::default(), &ClusteredKnobs::default()))
}

/// Per-row means over the valid steps of modalities `mods`, concatenated.
fn time_averaged(ds: &Dataset, mods: &[usize]) -> Vec<Vec<f64>> {
    (0..ds.n())
        .map(|i| {
            let mut row = Vec::new();
            for &m in mods {
                let f = &ds.modalities[m];
                let len = ds.lengths[m][i] as usize;
                let mut acc = vec![0.0f64; f.d];
                for s in 0..len {
                    acc.iter_mut().zip(f.step(i, s)).for_each(|(a, &x)| *a += x as f64);
                }
                row.extend(acc.iter().map(|a| a / len as f64));
            }
            row
        })
        .collect()
}

/// Standardises every column over all rows; constant columns become 0.
fn standardize(x: &mut [Vec<f64>]) {
    let (n, d) = (x.len() as f64, x[0].len());
    for j in 0..d {
        let mean = x.iter().map(|r| r[j]).sum::<f64>() / n;
        let sd = (x.iter().map(|r| (r[j] - mean).powi(2)).sum::<f64>() / n).sqrt();
        x.iter_mut().for_each(|r| r[j] = if sd > 1e-12 { (r[j] - mean) / sd } else { 0.0 });
    }
}

fn dist2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Between-group variance over within-group variance, summed over features.
fn f_ratio(x: &[Vec<f64>], group: &[usize], n_groups: usize) -> f64 {
    let d = x[0].len();
    let mut sums = vec![vec![0.0; d]; n_groups];
    let mut counts = vec![0usize; n_groups];
    for (row, &g) in x.iter().zip(group) {
        counts[g] += 1;
        sums[g].iter_mut().zip(row).for_each(|(s, v)| *s += v);
    }
    let means: Vec<Vec<f64>> =
        sums.iter().zip(&counts).map(|(s, &c)| s.iter().map(|v| v / c.max(1) as f64).collect()).collect();
    let grand: Vec<f64> = (0..d).map(|j| x.iter().map(|r| r[j]).sum::<f64>() / x.len() as f64).collect();
    let within: f64 = x.iter().zip(group).map(|(r, &g)| dist2(r, &means[g])).sum();
    let between: f64 = means.iter().zip(&counts).map(|(m, &c)| c as f64 * dist2(m, &grand)).sum();
    between / within.max(1e-12)
}

/// The rows of `x` projected on (approximately) their top `k` principal directions: a
/// randomized range finder with two power iterations, then Gram-Schmidt. Clustering in this
/// subspace ignores the hundreds of pure-noise directions, as any practical clustering would.
fn principal(x: &[Vec<f64>], k: usize) -> Vec<Vec<f64>> {
    let d = x[0].len();
    let mut rng = DetRng::new(0, 96);
    // Right-hand basis V (k vectors of length d): random, then V ← orth(Xᵀ X V) twice.
    let mut v: Vec<Vec<f64>> = (0..k).map(|_| (0..d).map(|_| rng.normal()).collect()).collect();
    for _ in 0..3 {
        let xv: Vec<Vec<f64>> = x.iter().map(|r| v.iter().map(|c| dot(r, c)).collect()).collect();
        v = (0..k)
            .map(|c| {
                let mut col = vec![0.0; d];
                for (r, p) in x.iter().zip(&xv) {
                    col.iter_mut().zip(r).for_each(|(o, xi)| *o += xi * p[c]);
                }
                col
            })
            .collect();
        for c in 0..k {
            for prev in 0..c {
                let proj = dot(&v[c], &v[prev]);
                let (head, tail) = v.split_at_mut(c);
                tail[0].iter_mut().zip(&head[prev]).for_each(|(a, b)| *a -= proj * b);
            }
            let norm = dot(&v[c], &v[c]).sqrt().max(1e-12);
            v[c].iter_mut().for_each(|a| *a /= norm);
        }
    }
    x.iter().map(|r| v.iter().map(|c| dot(r, c)).collect()).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Lloyd's k-means from a few seeded k-means++ starts (best inertia); each row's cluster.
fn kmeans(x: &[Vec<f64>], k: usize, seed: u64) -> Vec<usize> {
    let mut rng = DetRng::new(seed, 97);
    let mut best: Option<(f64, Vec<usize>)> = None;
    for _ in 0..4 {
        // k-means++: each further centre drawn with probability proportional to the squared
        // distance to the nearest centre so far.
        let mut centres: Vec<Vec<f64>> = vec![x[rng.below(x.len() as u64) as usize].clone()];
        while centres.len() < k {
            let d2: Vec<f64> =
                x.iter().map(|r| centres.iter().map(|c| dist2(r, c)).fold(f64::INFINITY, f64::min)).collect();
            let mut target = rng.uniform() * d2.iter().sum::<f64>();
            let mut pick = x.len() - 1;
            for (i, w) in d2.iter().enumerate() {
                if target < *w {
                    pick = i;
                    break;
                }
                target -= w;
            }
            centres.push(x[pick].clone());
        }
        let mut assign = vec![0usize; x.len()];
        let mut inertia = f64::INFINITY;
        for _ in 0..40 {
            inertia = 0.0;
            for (i, row) in x.iter().enumerate() {
                let (c, d) = centres
                    .iter()
                    .enumerate()
                    .map(|(c, m)| (c, dist2(row, m)))
                    .fold((0, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a });
                assign[i] = c;
                inertia += d;
            }
            for (c, centre) in centres.iter_mut().enumerate() {
                let members: Vec<&Vec<f64>> = x.iter().zip(&assign).filter(|(_, &a)| a == c).map(|(r, _)| r).collect();
                if !members.is_empty() {
                    for (j, v) in centre.iter_mut().enumerate() {
                        *v = members.iter().map(|r| r[j]).sum::<f64>() / members.len() as f64;
                    }
                }
            }
        }
        if best.as_ref().is_none_or(|(b, _)| inertia < *b) {
            best = Some((inertia, assign));
        }
    }
    best.map(|(_, a)| a).unwrap_or_default()
}

/// Test accuracy of two learners given the labels of `labeled` rows only: the label of the
/// nearest labeled row (sees labeled rows only), and k-means on every row with each cluster
/// named by its labeled members' majority (sees the structure of all rows).
fn learners(
    x: &[Vec<f64>],
    class: &[bool],
    labeled: &[usize],
    test: &[usize],
    clusters: &[usize],
    k: usize,
) -> (f64, f64) {
    let nearest = test
        .iter()
        .filter(|&&i| {
            let j = labeled.iter().min_by(|&&a, &&b| dist2(&x[i], &x[a]).total_cmp(&dist2(&x[i], &x[b]))).unwrap();
            class[*j] == class[i]
        })
        .count();
    let mut votes = vec![(0usize, 0usize); k];
    for &i in labeled {
        if class[i] {
            votes[clusters[i]].0 += 1;
        } else {
            votes[clusters[i]].1 += 1;
        }
    }
    let named = test.iter().filter(|&&i| (votes[clusters[i]].0 > votes[clusters[i]].1) == class[i]).count();
    (nearest as f64 / test.len() as f64, named as f64 / test.len() as f64)
}

#[test]
fn mosi_shaped_valid_and_deterministic() {
    let (ds, clusters) = mosi();
    ds.validate(Path::new("clustered")).unwrap();
    assert_eq!(ds.n(), 2199);
    for (m, f) in ds.modalities.iter().enumerate() {
        assert_eq!((f.t, f.d), (50, [300, 74, 47][m]), "{}", MODALITIES[m]);
    }
    let lens = &ds.lengths[0];
    assert!(ds.lengths_aligned());
    assert_eq!((*lens.iter().min().unwrap(), *lens.iter().max().unwrap()), (5, 50));
    let split = ds.split.as_ref().unwrap();
    assert_eq!([0u8, 1, 2].map(|v| split.iter().filter(|&&s| s == v).count()), [1284, 229, 686]);

    let share = |pred: fn(f32) -> bool| ds.labels.iter().filter(|&&y| pred(y)).count() as f64 / 2199.0;
    assert!((0.03..0.08).contains(&share(|y| y == 0.0)), "zero labels {}", share(|y| y == 0.0));
    assert!((0.4..0.6).contains(&share(|y| y > 0.0)), "positive labels {}", share(|y| y > 0.0));
    assert!(ds.labels.iter().all(|&y| (-3.0..=3.0).contains(&y) && ((y * 5.0).round() - y * 5.0).abs() < 1e-4));
    // The class is the sub-cluster's parity: odd sub-clusters positive.
    for (i, &y) in ds.labels.iter().enumerate() {
        assert!(y == 0.0 || (y > 0.0) == (clusters[i] % 2 == 1), "row {i}: label {y}, sub-cluster {}", clusters[i]);
    }
    assert!(clusters.iter().all(|&c| c < 8) && (0..8).all(|c| clusters.contains(&c)), "4 sub-clusters per class");

    let knobs = ClusteredKnobs::default();
    let a = small(&knobs, 5).0;
    assert_eq!(a, small(&knobs, 5).0, "same seed, same data");
    assert_ne!(a.modalities[0].data, small(&knobs, 6).0.modalities[0].data);
    let other = ClusteredKnobs { noise: noise_vision_value(), ..knobs.clone() };
    assert_ne!(a.modalities[2].data, small(&other, 5).0.modalities[2].data);
    assert!(a.meta.source.contains(&knobs.to_string()), "{}", a.meta.source);
}

fn noise_vision_value() -> [f64; 3] {
    let mut noise = ClusteredKnobs::default().noise;
    noise[2] += 1.0;
    noise
}

#[test]
fn separation_tightens_sub_clusters_and_widens_the_gaps() {
    let f_at = |separation: f64| {
        let (ds, clusters) = small(&ClusteredKnobs { separation, ..clean() }, 1);
        let x = time_averaged(&ds, &[0, 1, 2]);
        f_ratio(&x, &clusters, 8)
    };
    let (loose, default, tight) = (f_at(1.0), f_at(2.5), f_at(6.0));
    eprintln!("between / within sub-cluster variance: separation 1: {loose:.2}, 2.5: {default:.2}, 6: {tight:.2}");
    // The speaker and recording nuisance puts a floor under the within-sub-cluster spread, so
    // the ratio grows more slowly once the arcs are tight.
    assert!(default > 2.0 * loose && tight > 1.4 * default, "{loose} {default} {tight}");
}

#[test]
fn share_and_noise_act_on_their_modality_only() {
    // Vision carries no cluster signal at share 0: its sub-cluster means differ by chance only.
    let mut knobs = clean();
    knobs.share[2] = 0.0;
    let (ds, clusters) = small(&knobs, 2);
    let (full, _) = small(&clean(), 2);
    let ratio = |ds: &Dataset, m| f_ratio(&time_averaged(ds, &[m]), &clusters, 8);
    assert!(ratio(&ds, 2) < 0.05 * ratio(&full, 2), "vision {} vs {}", ratio(&ds, 2), ratio(&full, 2));
    assert_eq!(ds.modalities[0], full.modalities[0], "text untouched");

    // Without noise and with every step carrying the signal, a row's steps are identical; noise
    // on audio makes its steps vary, and only its.
    let steps_vary = |ds: &Dataset, m: usize| {
        (0..ds.n())
            .any(|i| (1..ds.lengths[m][i] as usize).any(|s| ds.modalities[m].step(i, s) != ds.modalities[m].step(i, 0)))
    };
    assert!(!(0..3).any(|m| steps_vary(&full, m)));
    let mut noisy = clean();
    noisy.noise[1] = 2.0;
    let (ds, _) = small(&noisy, 2);
    assert!(steps_vary(&ds, 1) && !steps_vary(&ds, 0) && !steps_vary(&ds, 2));

    // Sub-clusters per class: 2 per class gives 4 in all.
    let (_, clusters) = small(&ClusteredKnobs { subclusters: 2, ..clean() }, 2);
    assert!(clusters.iter().all(|&c| c < 4) && (0..4).all(|c| clusters.contains(&c)));
}

#[test]
fn unlabeled_rows_reveal_what_few_labels_cannot() {
    let (ds, _) = mosi();
    let mut x = time_averaged(ds, &[0, 1, 2]);
    standardize(&mut x);
    let split = ds.split.as_ref().unwrap();
    let keep: Vec<usize> = (0..ds.n()).filter(|&i| ds.labels[i] != 0.0).collect();
    let train: Vec<usize> = keep.iter().copied().filter(|&i| split[i] != 2).collect();
    let test: Vec<usize> = keep.iter().copied().filter(|&i| split[i] == 2).collect();
    let class: Vec<bool> = ds.labels.iter().map(|&y| y > 0.0).collect();
    let clusters = kmeans(&principal(&x, 20), 8, 0);

    // 5% of the training rows labeled (a seeded choice), and all of them.
    let mut few = train.clone();
    DetRng::new(0, 98).shuffle(&mut few);
    few.truncate(train.len() / 20);
    let (nearest_few, named_few) = learners(&x, &class, &few, &test, &clusters, 8);
    let (nearest_all, named_all) = learners(&x, &class, &train, &test, &clusters, 8);
    eprintln!(
        "5% labels: nearest labeled row {nearest_few:.3}, k-means named by labels {named_few:.3}; \
         100%: {nearest_all:.3} / {named_all:.3}"
    );
    assert!(named_few > 0.85, "the structure of all rows carries the classes: {named_few}");
    assert!(named_few > nearest_few + 0.1, "few labels alone do clearly worse: {nearest_few} vs {named_few}");
    assert!(nearest_all > nearest_few + 0.1 && nearest_all > 0.85, "enough labels learn it too: {nearest_all}");

    // No single modality is enough: each alone is clearly below all three together.
    for (m, name) in MODALITIES.iter().enumerate() {
        let mut xm = time_averaged(ds, &[m]);
        standardize(&mut xm);
        let (alone, _) = learners(&xm, &class, &train, &test, &clusters, 8);
        eprintln!("{name} alone, all labels: nearest labeled row {alone:.3}");
        assert!(alone < nearest_all - 0.02, "{name} alone {alone} vs all {nearest_all}");
    }
}
