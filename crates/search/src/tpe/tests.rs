use super::parzen::*;
use super::*;
use crate::sampler::tests::mixed_space;
use crate::space::Dimension;
use decsweep_api::ParamValue;

fn close(a: f64, b: f64, tol: f64) {
    assert!((a - b).abs() <= tol, "{a} vs {b}");
}

#[test]
fn gamma_and_weights_follow_optuna_defaults() {
    assert_eq!(
        [gamma(0), gamma(1), gamma(10), gamma(11), gamma(100), gamma(251), gamma(1000)],
        [0, 1, 1, 2, 10, 25, 25]
    );
    assert_eq!(weights(3), [1.0; 3]);
    assert_eq!(weights(24), [1.0; 24]);
    assert_eq!(weights(25), [1.0; 25]);
    // linspace(1/26, 1, 1) = [1/26], then 25 ones.
    let w = weights(26);
    assert_eq!(w.len(), 26);
    close(w[0], 1.0 / 26.0, 1e-15);
    // linspace(1/35, 1, 10): the oldest gets 1/35, the tenth 1, stepping evenly.
    let w = weights(35);
    close(w[0], 1.0 / 35.0, 1e-15);
    close(w[1], 1.0 / 35.0 + (1.0 - 1.0 / 35.0) / 9.0, 1e-12);
    close(w[9], 1.0, 1e-12);
    assert!(w[10..].iter().all(|x| *x == 1.0));
}

#[test]
fn bandwidths_by_hand() {
    let s = TpeSettings::default();
    // Centres 1, 4 and 7 on [0, 10]: sorted between the ends 0 and 10, gaps 1|3|3|3.
    // The middle σ is its larger gap, 3; the first and last use their inner gaps (3 and 3,
    // endpoints not considered). Clip: [10 / min(100, 1 + 4), 10] = [2, 10].
    assert_eq!(bandwidths(&[7.0, 1.0, 4.0], 0.0, 10.0, &s), [3.0, 3.0, 3.0]);
    // Centres 1 and 9: gaps 1|8|1; inner gaps 8 and 8.
    assert_eq!(bandwidths(&[1.0, 9.0], 0.0, 10.0, &s), [8.0, 8.0]);
    // With endpoints: the larger gap on either side, 1 (clipped up to 10 / 4 = 2.5) and 8.
    let ends = TpeSettings { consider_endpoints: true, ..TpeSettings::default() };
    assert_eq!(bandwidths(&[1.0, 2.0], 0.0, 10.0, &ends), [2.5, 8.0]);
    // Without: inner gaps 1 and 1, raised by the magic clip to 10 / 4 = 2.5 ...
    assert_eq!(bandwidths(&[1.0, 2.0], 0.0, 10.0, &s), [2.5, 2.5]);
    // ... or kept without it.
    let raw = TpeSettings { consider_magic_clip: false, ..TpeSettings::default() };
    assert_eq!(bandwidths(&[1.0, 2.0], 0.0, 10.0, &raw), [1.0, 1.0]);
    // One centre: the larger gap to the ends (6), within the clip [10/3, 10].
    assert_eq!(bandwidths(&[4.0], 0.0, 10.0, &s), [6.0]);
}

#[test]
fn continuous_log_density_by_hand() {
    let p = Param::new("x", &Dimension::Uniform { lo: 0.0, hi: 10.0 });
    let est = Parzen::new(&[&p], &[vec![1.0], vec![7.0]], &TpeSettings::default(), 1.0);
    // Gaps 1|6|3: σ = inner gap 6 for both centres; the prior is N(5, 10). Equal weights 1/3,
    // each kernel truncated to [0, 10]:
    // log((φ(2/6)/6/(Φ(9/6)−Φ(−1/6)) + φ(−4/6)/6/(Φ(3/6)−Φ(−7/6)) + φ(−0.2)/10/(Φ(0.5)−Φ(−0.5)))/3).
    let mut scratch = Vec::new();
    close(est.log_pdf(&[3.0], &mut scratch), CONTINUOUS_AT_3, 2e-6);
}

#[test]
fn good_bandwidth_factor_scales_the_observation_kernels_only() {
    let p = Param::new("x", &Dimension::Uniform { lo: 0.0, hi: 10.0 });
    let est = Parzen::new(&[&p], &[vec![1.0], vec![7.0]], &TpeSettings::default(), 0.5);
    // As above with σ = 6 · 0.5 = 3 for both centres; the prior keeps N(5, 10):
    // log((φ(2/3)/3/(Φ(9/3)−Φ(−1/3)) + φ(−4/3)/3/(Φ(3/3)−Φ(−7/3)) + φ(−0.2)/10/(Φ(0.5)−Φ(−0.5)))/3).
    let mut scratch = Vec::new();
    close(est.log_pdf(&[3.0], &mut scratch), -2.185_991_081_601_512, 2e-6);
}

#[test]
fn discrete_log_density_by_hand() {
    let p = Param::new("k", &Dimension::Int { lo: 0, hi: 4, step: 1, log: false });
    let est = Parzen::new(&[&p], &[vec![1.0]], &TpeSettings::default(), 1.0);
    // Range widened to [−0.5, 4.5]; one centre at 1: σ = larger gap max(1.5, 3.5) = 3.5
    // (clip [5/3, 5]); the prior is N(2, 5).
    // p(1) = ½ Σ mass([0.5, 1.5]) / mass([−0.5, 4.5]) over N(1, 3.5) and N(2, 5).
    let mut scratch = Vec::new();
    close(est.log_pdf(&[1.0], &mut scratch), DISCRETE_AT_1, 2e-6);
    // The masses of the five values sum to one.
    let total: f64 = (0..5).map(|k| est.log_pdf(&[k as f64], &mut scratch).exp()).sum();
    close(total, 1.0, 1e-6);
}

#[test]
fn categorical_kernel_by_hand() {
    let vs = vec![ParamValue::Str("a".into()), ParamValue::Str("b".into()), ParamValue::Str("c".into())];
    let p = Param::new("c", &Dimension::Choice(vs));
    let est = Parzen::new(&[&p], &[vec![0.0], vec![0.0], vec![2.0]], &TpeSettings::default(), 1.0);
    // Four kernels: each observation puts 1/4 on every value and 1 more on its own (5/7 own,
    // 1/7 others after normalising); the prior is uniform. Weights 1/4 each.
    // p(a) = (5/7 + 5/7 + 1/7 + 1/3) / 4 = 10/21; p(b) = (1/7·3 + 1/3)/4 = 4/21; p(c) = 7/21.
    let mut scratch = Vec::new();
    close(est.log_pdf(&[0.0], &mut scratch).exp(), 10.0 / 21.0, 1e-12);
    close(est.log_pdf(&[1.0], &mut scratch).exp(), 4.0 / 21.0, 1e-12);
    close(est.log_pdf(&[2.0], &mut scratch).exp(), 7.0 / 21.0, 1e-12);
}

#[test]
fn gauss_mass_is_stable_in_the_tails() {
    close(log_gauss_mass(-1.0, 1.0).exp(), 0.682_689_492_137_086, 1e-7);
    close(log_gauss_mass(0.0, f64::INFINITY).exp(), 0.5, 1e-7);
    // Far tails: finite and equal by symmetry.
    let right = log_gauss_mass(40.0, 41.0);
    assert!(right.is_finite() && right < -790.0, "{right}");
    close(log_gauss_mass(-41.0, -40.0), right, 1e-9);
}

fn objective(p: &Point) -> f64 {
    let f = |k: &str| p[k].as_f64().unwrap_or(0.0);
    (f("u") - 1.0).powi(2)
        + (f("lu").log10() + 3.5).powi(2)
        + (f("i") - 11.0).abs()
        + (f("is") - 40.0).abs() / 8.0
        + (f("il").log2() - 5.0).abs()
        + if p["c"] == ParamValue::Float(0.5) { 0.0 } else { 1.0 }
}

/// Runs `n` sequential trials, returning the history.
fn run(s: &mut dyn Sampler, n: usize, f: impl Fn(&Point) -> f64) -> Vec<Observation> {
    let mut history = Vec::new();
    for _ in 0..n {
        let point = s.ask(&history, &[]).expect("a point");
        let value = Some(f(&point));
        history.push(Observation { point, value, pruned_at: None });
    }
    history
}

/// Property: whatever the seed and mode, every proposal lies in its space (range, integrality,
/// step, log bounds, membership), including when points are pending.
#[test]
fn every_tpe_proposal_lies_in_its_space() {
    let space = mixed_space();
    for seed in 0..24 {
        let settings = TpeSettings { multivariate: seed % 2 == 1, n_startup_trials: 5, ..TpeSettings::default() };
        let mut s = TpeSampler::new(space.clone(), Direction::Minimize, settings, seed, 40);
        let history = run(&mut s, 30, objective);
        let pending: Vec<Point> = (0..5)
            .scan(Vec::new(), |pend: &mut Vec<Point>, _| {
                let p = s.ask(&history, pend).unwrap();
                pend.push(p.clone());
                Some(p)
            })
            .collect();
        for p in history.iter().map(|o| &o.point).chain(&pending) {
            assert_eq!(p.len(), space.dims.len());
            for (name, dim) in &space.dims {
                assert!(dim.contains(&p[name]), "seed {seed}: {name} = {} outside {dim:?}", p[name]);
            }
        }
        for (i, a) in pending.iter().enumerate() {
            assert!(!pending[..i].contains(a), "seed {seed}: a pending point was proposed twice");
        }
    }
}

#[test]
fn tpe_is_deterministic_for_a_seed_and_stateless() {
    let make = |seed| TpeSampler::new(mixed_space(), Direction::Minimize, TpeSettings::default(), seed, 30);
    let a = run(&mut make(3), 25, objective);
    let b = run(&mut make(3), 25, objective);
    assert_eq!(a, b);
    assert_ne!(a, run(&mut make(4), 25, objective));
    // A fresh sampler given the same history proposes the same next point (restart safety).
    let mut fresh = make(3);
    let mut used = make(3);
    let _ = run(&mut used, 20, objective);
    assert_eq!(fresh.ask(&a[..20], &[]), used.ask(&a[..20], &[]));
    // n_trials bounds the proposals.
    assert_eq!(make(3).ask(&a[..25], &a[25 - 5..].iter().map(|o| o.point.clone()).collect::<Vec<_>>()), None);
}

#[test]
fn maximising_a_value_equals_minimising_its_negation() {
    let mut min = TpeSampler::new(mixed_space(), Direction::Minimize, TpeSettings::default(), 9, 30);
    let mut max = TpeSampler::new(mixed_space(), Direction::Maximize, TpeSettings::default(), 9, 30);
    let a = run(&mut min, 25, objective);
    let b = run(&mut max, 25, |p| -objective(p));
    let pa: Vec<&Point> = a.iter().map(|o| &o.point).collect();
    let pb: Vec<&Point> = b.iter().map(|o| &o.point).collect();
    assert_eq!(pa, pb);
}

#[test]
fn idle_workers_never_get_the_same_point_on_a_small_discrete_space() {
    let space = Space {
        dims: vec![
            ("a".into(), Dimension::Choice(vec![ParamValue::Int(0), ParamValue::Int(1), ParamValue::Int(2)])),
            ("b".into(), Dimension::Int { lo: 0, hi: 2, step: 1, log: false }),
        ],
    };
    let f = |p: &Point| (p["a"].as_f64().unwrap() - 2.0).powi(2) + (p["b"].as_f64().unwrap() - 1.0).powi(2);
    for liar in [true, false] {
        for seed in 0..10 {
            let settings = TpeSettings { constant_liar: liar, n_startup_trials: 3, ..TpeSettings::default() };
            let mut s = TpeSampler::new(space.clone(), Direction::Minimize, settings, seed, 100);
            let history = run(&mut s, 5, f);
            let mut pending = Vec::new();
            for _ in 0..4 {
                let p = s.ask(&history, &pending).unwrap();
                assert!(!pending.contains(&p), "liar {liar} seed {seed}: {p:?} is already running");
                pending.push(p);
            }
        }
    }
}

fn quadratic_space() -> Space {
    Space {
        dims: vec![
            ("x".into(), Dimension::Uniform { lo: -5.0, hi: 5.0 }),
            ("y".into(), Dimension::Uniform { lo: -5.0, hi: 5.0 }),
        ],
    }
}

fn quadratic(p: &Point) -> f64 {
    let (x, y) = (p["x"].as_f64().unwrap(), p["y"].as_f64().unwrap());
    (x - 1.3).powi(2) + 3.0 * (y + 0.7).powi(2)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

#[test]
fn tpe_beats_random_on_a_quadratic_at_equal_budget() {
    let best = |h: &[Observation]| h.iter().filter_map(|o| o.value).fold(f64::INFINITY, f64::min);
    let budget = 50;
    for multivariate in [false, true] {
        let mut tpe = Vec::new();
        let mut random = Vec::new();
        for seed in 0..9 {
            let settings = TpeSettings { multivariate, ..TpeSettings::default() };
            let mut t = TpeSampler::new(quadratic_space(), Direction::Minimize, settings, seed, budget);
            tpe.push(best(&run(&mut t, budget, quadratic)));
            let mut r = crate::sampler::RandomSampler::new(quadratic_space(), seed, budget);
            random.push(best(&run(&mut r, budget, quadratic)));
        }
        let (mt, mr) = (median(tpe), median(random));
        // The joint model (the default) exploits the quadratic's shape far better.
        let factor = if multivariate { 3.0 } else { 1.5 };
        assert!(mt * factor < mr, "multivariate {multivariate}: TPE median best {mt} vs random {mr}");
    }
}
const CONTINUOUS_AT_3: f64 = -2.2333337641398363;
const DISCRETE_AT_1: f64 = -1.5420821167646481;

/// A finished configuration of the one-dimensional space `x`.
fn obs(x: f64, value: Option<f64>, pruned_at: Option<u32>) -> Observation {
    Observation { point: [("x".to_string(), ParamValue::Float(x))].into(), value, pruned_at }
}

#[test]
fn pruned_configurations_push_proposals_away_unlike_failed_ones() {
    // Completed points on [0, 1] whose value grows with the distance from the nearer of 0.3
    // and 0.5; the trials between them, on [0.33, 0.47], were all pruned. As failures TPE would
    // ignore them and keep proposing there (the two best points' kernels cover the gap); ranked
    // as the worst observations they put the bad estimator's mass there.
    let space = Space { dims: vec![("x".into(), Dimension::Uniform { lo: 0.0, hi: 1.0 })] };
    let mut as_pruned = Vec::new();
    let mut as_failed = Vec::new();
    for i in 0..20 {
        let x = 0.05 * i as f64;
        if (0.33..=0.47).contains(&x) {
            continue;
        }
        let value = (x - 0.3).abs().min((x - 0.5).abs());
        as_pruned.push(obs(x, Some(value), None));
        as_failed.push(obs(x, Some(value), None));
    }
    for i in 0..8 {
        let x = 0.335 + 0.02 * i as f64;
        as_pruned.push(obs(x, Some(0.9), Some(3)));
        as_failed.push(obs(x, None, None));
    }
    let in_pruned_region = |history: &[Observation]| {
        (0..200u64)
            .filter(|seed| {
                let mut tpe = TpeSampler::new(space.clone(), Direction::Minimize, TpeSettings::default(), *seed, 100);
                let x = tpe.ask(history, &[]).unwrap()["x"].as_f64().unwrap();
                (0.33..=0.47).contains(&x)
            })
            .count()
    };
    let (pruned, failed) = (in_pruned_region(&as_pruned), in_pruned_region(&as_failed));
    assert!(
        pruned * 3 < failed,
        "proposals in the pruned region: {pruned} of 200 vs {failed} when they count as failed"
    );
}

#[test]
fn pruned_configurations_rank_below_completed_ones_further_steps_first() {
    let space = Space { dims: vec![("x".into(), Dimension::Uniform { lo: 0.0, hi: 1.0 })] };
    let history = [
        obs(0.1, Some(0.1), Some(5)),
        obs(0.2, Some(2.0), None),
        obs(0.3, Some(0.5), Some(9)),
        obs(0.4, None, None), // failed: left out
        obs(0.5, Some(0.2), Some(9)),
        obs(0.6, Some(1.0), None),
        obs(0.7, None, Some(9)), // pruned before reporting a value: last among step 9
    ];
    let tpe = TpeSampler::new(space, Direction::Minimize, TpeSettings::default(), 0, 10);
    let (rows, losses) = tpe.rows(&history, &[]);
    assert_eq!(rows.iter().map(|r| r[0]).collect::<Vec<_>>(), [0.1, 0.2, 0.3, 0.5, 0.6, 0.7], "oldest first");
    let mut order: Vec<usize> = (0..losses.len()).collect();
    order.sort_by(|a, b| losses[*a].total_cmp(&losses[*b]));
    let ranked: Vec<f64> = order.iter().map(|i| rows[*i][0]).collect();
    // Completed by value (1.0, 2.0), then step 9 by value (0.2, 0.5, none), then step 5.
    assert_eq!(ranked, [0.6, 0.2, 0.5, 0.3, 0.7, 0.1]);
}
