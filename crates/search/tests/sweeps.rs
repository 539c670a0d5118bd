//! Every spec shipped in `sweeps/` parses and plans the trials its comments promise.

use std::path::PathBuf;

use decsweep_search::{Dataset, Job, LoadOptions, SweepSpec};

fn sweeps_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../sweeps")
}

/// Real-data specs name a file users make themselves, so existence is not required here.
fn load(name: &str) -> SweepSpec {
    let path = sweeps_dir().join(name);
    SweepSpec::load_with(&path, &LoadOptions { check_dataset: false }).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_shipped_spec_parses() {
    let mut names: Vec<String> = std::fs::read_dir(sweeps_dir())
        .expect("sweeps/ exists")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    for required in ["demo.toml", "label-fraction.toml", "loss-ablation.toml", "paper-table1.toml"] {
        assert!(names.iter().any(|n| n == required), "sweeps/{required} is missing");
    }
    for name in &names {
        let spec = load(name);
        // An adaptive (TPE) sweep plans its trials as the sampler proposes them.
        assert!(spec.is_adaptive() || !spec.trials().is_empty(), "{name} plans no trials");
    }
}

#[test]
fn demo_is_small_and_on_the_clustered_testbed() {
    // The demo must run without any file, so it is loaded with the default, strict options.
    let spec = SweepSpec::load(sweeps_dir().join("demo.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(spec.dataset(), Dataset::Synthetic { generator: decsweep_api::SynthKind::Clustered(_), .. }),
        "the demo runs where DEC pretraining can matter: {:?}",
        spec.dataset()
    );
    assert_eq!(spec.trials().len(), 2 * 2 * 10, "2 label fractions × 2 pipelines × 10 seeds");
    for t in spec.trials() {
        // Only what the trial's pipeline reads: baseline trials keep the unread AE/DEC defaults.
        for (name, value) in t.param_map() {
            let small = match name.as_str() {
                "epochs_ae" => 15.0,
                "epochs_dec" => 3.0,
                "epochs_ft" => 30.0,
                "d_model" => 32.0,
                _ => continue,
            };
            assert!(value.as_f64().is_some_and(|v| v <= small), "{name} = {value} in the demo");
        }
    }
}

#[test]
fn pseudo_label_study_pairs_each_threshold_with_dec_and_baseline() {
    let spec = load("pseudo-label.toml");
    assert!(matches!(spec.dataset(), Dataset::Synthetic { generator: decsweep_api::SynthKind::Clustered(_), .. }));
    let mut configs = std::collections::BTreeSet::new();
    for t in spec.trials() {
        let Job::Model { pipeline, params } = &t.job else { panic!("model pipelines only") };
        let tau = params.pseudo_threshold.to_string();
        configs.insert((pipeline.name(), params.label_fraction.to_string(), tau));
    }
    // Per label fraction: the baseline once (it does not read τ), dec at τ = 0 and two τ > 0.
    assert_eq!(configs.len(), 4 * 4, "{configs:?}");
    assert!(configs.iter().filter(|c| c.0 == "baseline").all(|c| c.2 == "0"));
    assert_eq!(spec.trials().len(), 4 * 4 * 10);
}

#[test]
fn paper_table1_is_three_rows_of_ten_seeds() {
    let spec = load("paper-table1.toml");
    let mut rows: Vec<(String, &str, f64)> = Vec::new();
    for t in spec.trials() {
        let Job::Model { pipeline, params } = &t.job else { panic!("model pipelines only") };
        let row = (t.label.clone().unwrap_or_default(), pipeline.name(), params.label_fraction);
        if !rows.contains(&row) {
            rows.push(row);
        }
        // Everything but the label fraction is the paper's default.
        let expected = decsweep_api::Params { label_fraction: params.label_fraction, ..Default::default() };
        assert_eq!(*params, expected, "{:?}", t.label);
    }
    assert_eq!(
        rows,
        [
            ("Transformer-based (40%)".to_string(), "baseline", 0.4),
            ("Transformer + DEC Pretraining (40%)".to_string(), "dec", 0.4),
            ("Transformer + DEC Pretraining (Full Dataset)".to_string(), "dec", 1.0),
        ]
    );
    assert_eq!(spec.trials().len(), 3 * 10);
}

#[test]
fn label_fraction_covers_seven_fractions_both_pipelines_ten_seeds() {
    let spec = load("label-fraction.toml");
    assert_eq!(spec.trials().len(), 7 * 2 * 10);
}

#[test]
fn loss_ablation_switches_one_term_at_a_time() {
    let spec = load("loss-ablation.toml");
    assert_eq!(spec.configs().len(), 7);
    assert_eq!(spec.trials().len(), 7 * 10);
    let defaults = decsweep_api::Params::default();
    for t in spec.trials() {
        let Job::Model { params, .. } = &t.job else { panic!("model pipelines only") };
        let changed = [
            params.cluster_weight != defaults.cluster_weight,
            params.alpha != defaults.alpha,
            params.beta != defaults.beta,
            params.gamma != defaults.gamma,
            params.gamma_ae != defaults.gamma_ae,
        ];
        assert!(changed.iter().filter(|c| **c).count() <= 1, "{:?} changes more than one term", t.label);
    }
}

#[test]
fn tpe_dec_is_an_adaptive_search_with_median_pruning() {
    let s = load("tpe-dec.toml");
    assert!(s.is_adaptive() && s.trials().is_empty());
    assert_eq!(s.sampler_spec().n_trials, Some(40));
    assert_eq!(s.space().dims.len(), 6);
    let p = s.pruner().expect("a pruner");
    assert_eq!(
        p.kind,
        decsweep_search::PrunerKind::Median { n_startup_trials: 5, n_warmup_steps: 5, interval_steps: 1 }
    );
    let mut sampler = s.sampler();
    let point = sampler.ask(&[], &[]).unwrap();
    assert_eq!(s.trials_for_point(&point).unwrap().len(), 2);
}

/// How many of a spec's first lines may pass before the command that makes its dataset.
const DATASET_HEADER_LINES: usize = 5;

/// `a/b/../c` → `a/c`, without touching the disk (the datasets need not exist).
fn normalized(path: &std::path::Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[test]
fn every_spec_runs_as_shipped_or_says_first_how_its_dataset_is_made() {
    let root = normalized(&sweeps_dir().join(".."));
    for entry in std::fs::read_dir(sweeps_dir()).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".toml") {
            continue;
        }
        let spec = load(&name);
        let Dataset::File { written, path } = spec.dataset() else { continue };
        let text = std::fs::read_to_string(entry.path()).unwrap();
        // The command, run from the repository root, must write the very file the spec reads.
        let made = text.lines().take(DATASET_HEADER_LINES).find_map(|line| {
            let command = line.strip_prefix('#')?.trim();
            let makes = command.contains("tools/convert_mosi.py") || command.starts_with("decsweep data synth");
            let out = command.split_whitespace().skip_while(|w| *w != "--out").nth(1)?;
            makes.then(|| root.join(out))
        });
        let Some(made) = made else {
            panic!(
                "sweeps/{name} reads the file `{written}` but its first {DATASET_HEADER_LINES} lines show no \
                 `tools/convert_mosi.py … --out FILE` or `decsweep data synth --out FILE` that makes it"
            )
        };
        assert_eq!(made, normalized(path), "sweeps/{name}: the header's command writes another file than `{written}`");
    }
}
