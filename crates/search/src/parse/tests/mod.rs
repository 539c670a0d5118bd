//! Malformed specs: each must be refused with the exact line and column of the problem and a
//! message saying what was expected.

use crate::{LoadOptions, SpecError, SweepSpec};

const PATH: &str = "sweeps/t.toml";

/// A valid head; tests append to it, so their own lines start at 6.
const HEAD: &str = r#"[study]
name = "t"
dataset = { synthetic = { seed = 0 } }
pipelines = ["baseline", "dec"]
seeds = [0, 1]
"#;

fn errors(src: &str) -> Vec<SpecError> {
    match SweepSpec::from_source(src, PATH, &LoadOptions { check_dataset: false }) {
        Ok(_) => panic!("spec unexpectedly valid:\n{src}"),
        Err(e) => e.0,
    }
}

fn listing(errs: &[SpecError]) -> String {
    errs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")
}

/// The spec has exactly one problem, at `line:column`, whose message contains `needle`.
#[track_caller]
fn only_error(src: &str, line: usize, column: usize, needle: &str) {
    let errs = errors(src);
    assert_eq!(errs.len(), 1, "expected one error, got:\n{}", listing(&errs));
    let e = &errs[0];
    assert_eq!((e.line, e.column), (line, column), "wrong position: {e}");
    assert!(e.message.contains(needle), "message {:?} lacks {needle:?}", e.message);
    assert_eq!(e.to_string(), format!("{PATH}:{line}:{column}: {}", e.message));
}

fn with(tail: &str) -> String {
    format!("{HEAD}{tail}")
}

#[test]
fn head_alone_is_valid() {
    let spec = SweepSpec::from_source(HEAD, PATH, &LoadOptions::default()).unwrap();
    assert_eq!(spec.expand().len(), 4);
}

#[test]
fn unknown_top_level_key() {
    only_error(&with("[sampel]\nkind = \"grid\"\n"), 6, 2, "unknown top-level key `sampel`; did you mean `sampler`?");
}

#[test]
fn study_key_at_the_top_level_is_pointed_to_study() {
    let src = "retries = 1\n[study]\nname = \"t\"\ndataset = \"d\"\npipelines = [\"dec\"]\nseeds = [0]\n";
    only_error(src, 1, 1, "`retries` belongs in [study]");
}

#[test]
fn unknown_key_inside_a_table() {
    only_error(&with("[resources]\ngpu = 0.5\n"), 7, 1, "unknown key `gpu` in [resources]; did you mean `gpus`");
}

#[test]
fn unknown_key_inside_a_space_dimension() {
    only_error(
        &with("[space]\nepochs_ft = { int = [10, 50], stride = 10 }\n[sampler]\nkind = \"random\"\nn_trials = 3\n"),
        7,
        31,
        "unknown key `stride` in `space.epochs_ft`",
    );
}

#[test]
fn wrong_type_string_for_number() {
    only_error(&with("[resources]\ngpus = \"half\"\n"), 7, 8, "expected a number for `resources.gpus`, found a string");
}

#[test]
fn wrong_type_for_a_table() {
    only_error(&format!("sampler = \"random\"\n{HEAD}"), 1, 11, "expected a table [sampler], found a string");
}

#[test]
fn empty_grid() {
    only_error(
        &with("[space]\nlabel_fraction = { grid = [] }\n"),
        7,
        27,
        "empty list for `space.label_fraction` (grid): expected at least one value",
    );
}

#[test]
fn empty_choice() {
    only_error(&with("[space]\nzero_label = { choice = [] }\n"), 7, 25, "empty list for `space.zero_label` (choice)");
}

#[test]
fn repeated_grid_value() {
    // 1 and 1.0 are the same once converted to the parameter's type.
    only_error(&with("[space]\nalpha = { grid = [1, 1.0] }\n"), 7, 22, "1 is listed twice");
}

#[test]
fn uniform_with_lo_not_below_hi() {
    only_error(
        &with("[sampler]\nkind = \"random\"\nn_trials = 3\n[space]\ndropout = { uniform = [0.5, 0.1] }\n"),
        10,
        23,
        "expected lo < hi for `space.dropout` (uniform), found [0.5, 0.1]",
    );
}

#[test]
fn loguniform_with_lo_not_positive() {
    only_error(
        &with("[sampler]\nkind = \"random\"\nn_trials = 3\n[space]\nlr_ft = { loguniform = [0, 1e-3] }\n"),
        10,
        25,
        "expected lo > 0 for `space.lr_ft` (loguniform)",
    );
}

#[test]
fn int_range_with_non_integers() {
    only_error(
        &with("[sampler]\nkind = \"random\"\nn_trials = 3\n[space]\nepochs_ft = { int = [10.5, 100] }\n"),
        10,
        22,
        "expected an integer for `space.epochs_ft` (int), found a float",
    );
}

#[test]
fn real_range_for_an_integer_parameter() {
    only_error(
        &with("[sampler]\nkind = \"random\"\nn_trials = 3\n[space]\nepochs_ft = { uniform = [10, 100] }\n"),
        10,
        15,
        "`epochs_ft` is an integer parameter; use { int = [lo, hi] }",
    );
}

#[test]
fn int_range_with_step_and_log() {
    only_error(
        &with("[sampler]\nkind = \"random\"\nn_trials = 3\n[space]\nff_dim = { int = [16, 256], step = 16, log = true }\n"),
        10,
        29,
        "`step` and `log = true` cannot be combined",
    );
}

#[test]
fn unknown_parameter_name_suggests_the_nearest() {
    only_error(
        &with("[fixed]\nlr = 0.001\n"),
        7,
        1,
        "unknown parameter `lr`; did you mean `lr_ae` or `lr_ft` or `lr_dec`?",
    );
    only_error(&with("[fixed]\nlabel_fractoin = 0.5\n"), 7, 1, "did you mean `label_fraction`?");
}

#[test]
fn seed_is_not_a_parameter() {
    only_error(&with("[fixed]\nseed = 3\n"), 7, 1, "`seed` is not a parameter: list seeds in [study] seeds");
}

#[test]
fn parameter_not_read_by_the_pipeline() {
    let src = HEAD.replace(r#"["baseline", "dec"]"#, r#"["baseline"]"#) + "[fixed]\nbeta = 0.2\n";
    only_error(&src, 7, 1, "`beta` is not read by pipeline baseline");
}

#[test]
fn pseudo_labels_are_refused_for_the_baseline_pipeline_alone() {
    let src = HEAD.replace(r#"["baseline", "dec"]"#, r#"["baseline"]"#) + "[fixed]\npseudo_threshold = 0.9\n";
    only_error(
        &src,
        7,
        1,
        "`pseudo_threshold` is not read by pipeline baseline (only the dec pipeline's finetune stage reads it; \
         pipelines that do: dec)",
    );
    // With both pipelines it is fine: the baseline's trials keep the default, and run once.
    let spec = SweepSpec::from_source(
        &with("[space]\npseudo_threshold = { grid = [0.0, 0.9] }\n"),
        PATH,
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(spec.expand().len(), 2 * (1 + 2), "baseline once, dec at each τ, two seeds");
}

#[test]
fn value_out_of_range_in_a_grid() {
    only_error(
        &with("[space]\nlabel_fraction = { grid = [0.4, 1.5] }\n"),
        7,
        33,
        "parameter `label_fraction` = 1.5 is out of range: expected a number in (0, 1]",
    );
}

#[test]
fn value_out_of_range_at_a_range_end() {
    only_error(
        &with("[sampler]\nkind = \"random\"\nn_trials = 3\n[space]\ndropout = { uniform = [0.1, 0.99] }\n"),
        10,
        29,
        "parameter `dropout` = 0.99 is out of range",
    );
}

#[test]
fn wrong_value_type_for_a_parameter() {
    only_error(&with("[fixed]\nepochs_ft = 2.5\n"), 7, 13, "parameter `epochs_ft` expects an integer");
}

#[test]
fn parameter_in_fixed_and_space() {
    only_error(
        &with("[fixed]\nalpha = 0.2\n[space]\nalpha = { grid = [0.1, 0.2] }\n"),
        9,
        1,
        "`alpha` is set in [fixed] (line 7) and swept in [space]; set it in one place",
    );
}

#[test]
fn missing_study_name() {
    only_error(
        "[study]\ndataset = \"d\"\npipelines = [\"dec\"]\nseeds = [0]\n",
        1,
        1,
        "missing `name` in [study]: expected a study name",
    );
}

#[test]
fn missing_study_table() {
    only_error("[fixed]\nalpha = 0.2\n", 1, 1, "missing [study] table");
}

#[test]
fn invalid_study_name() {
    let src = HEAD.replace("name = \"t\"", "name = \"../up\"");
    only_error(&src, 2, 8, "invalid study name `../up`");
}

#[test]
fn unknown_pipeline() {
    let src = HEAD.replace(r#"["baseline", "dec"]"#, r#"["baseline", "deck"]"#);
    only_error(&src, 4, 26, "unknown pipeline `deck`; expected one of: baseline, dec, command");
}

#[test]
fn missing_pipelines() {
    only_error("[study]\nname = \"t\"\ndataset = \"d\"\nseeds = [0]\n", 1, 1, "missing `pipelines` in [study]");
}

#[test]
fn empty_seeds() {
    let src = HEAD.replace("seeds = [0, 1]", "seeds = []");
    only_error(&src, 5, 9, "empty `study.seeds`: expected at least one seed");
}

#[test]
fn duplicate_seeds() {
    let src = HEAD.replace("seeds = [0, 1]", "seeds = [0, 1, 0]");
    only_error(&src, 5, 16, "seed 0 is listed twice in `study.seeds`");
}

#[test]
fn negative_seed() {
    let src = HEAD.replace("seeds = [0, 1]", "seeds = [-1]");
    only_error(&src, 5, 10, "expected a non-negative integer for `study.seeds`, found -1");
}

#[test]
fn random_sampler_without_n_trials() {
    only_error(
        &with("[sampler]\nkind = \"random\"\n[space]\nlr_ft = { loguniform = [1e-5, 1e-3] }\n"),
        7,
        8,
        "the random sampler needs `n_trials`",
    );
}

#[test]
fn random_sampler_with_nothing_to_draw() {
    only_error(
        &with("[sampler]\nkind = \"random\"\nn_trials = 4\n[space]\nalpha = { grid = [0.1, 0.2] }\n"),
        7,
        8,
        "the random sampler has nothing to draw",
    );
}

#[test]
fn grid_sampler_over_a_continuous_dimension() {
    only_error(
        &with("[space]\ndropout = { uniform = [0.0, 0.5] }\n"),
        7,
        13,
        "the grid sampler cannot enumerate `space.dropout` (uniform)",
    );
}

#[test]
fn grid_n_trials_must_match_the_grid() {
    only_error(
        &with("[sampler]\nn_trials = 5\n[space]\nalpha = { grid = [0.1, 0.2] }\nbeta = { choice = [0, 1, 2] }\n"),
        7,
        12,
        "n_trials = 5 but the grid has 6 points",
    );
}

#[test]
fn negative_retries() {
    let src = HEAD.replace("seeds = [0, 1]\n", "seeds = [0, 1]\nretries = -1\n");
    only_error(&src, 6, 11, "expected a non-negative integer for `study.retries`, found -1");
}

#[test]
fn gpus_not_positive() {
    only_error(&with("[resources]\ngpus = 0\n"), 7, 8, "expected gpus > 0");
    only_error(&with("[resources]\ngpus = -0.5\n"), 7, 8, "expected gpus > 0");
}

#[test]
fn fractional_gpus_above_one() {
    only_error(&with("[resources]\ngpus = 1.5\n"), 7, 8, "a share of one GPU (≤ 1) or a whole number of GPUs");
}

#[test]
fn unknown_objective_direction() {
    only_error(
        &with("[objective]\nmetric = \"accuracy\"\ndirection = \"maximise\"\n"),
        8,
        13,
        "unknown value `maximise` for `objective.direction`; expected one of: maximize, minimize",
    );
}

#[test]
fn toml_syntax_error_keeps_the_parser_position() {
    only_error(
        "[study]\nname = \"t\"\nseeds = [0, 1\nretries = 2\n",
        4,
        1,
        "invalid TOML: missing comma between array elements",
    );
    only_error("[study]\nname = x\n", 2, 8, "invalid TOML: string values must be quoted");
    only_error("[study]\nname = \"a\"\nname = \"b\"\n", 3, 1, "invalid TOML: duplicate key");
}

#[test]
fn dataset_file_missing_relative_to_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let spec_path = dir.path().join("sweep.toml");
    let text = "[study]\nname = \"t\"\ndataset = \"data/missing.safetensors\"\npipelines = [\"dec\"]\nseeds = [0]\n";
    std::fs::write(&spec_path, text).unwrap();
    let err = SweepSpec::load(&spec_path).unwrap_err();
    let errs = err.spec_errors().expect("located errors");
    assert_eq!(errs.len(), 1, "{errs}");
    let e = &errs.0[0];
    assert_eq!((e.line, e.column), (3, 11));
    assert!(e.message.contains("dataset file `data/missing.safetensors` not found"), "{e}");
    let looked = dir.path().join("data").join("missing.safetensors");
    assert!(e.message.contains(&looked.display().to_string()), "names the resolved path: {e}");

    // The same path resolves once the file exists beside the spec.
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(&looked, b"x").unwrap();
    let spec = SweepSpec::load(&spec_path).unwrap();
    assert!(matches!(spec.dataset(), crate::Dataset::File { path, .. } if *path == looked));
}

/// HEAD with its dataset line replaced (line 3).
fn with_synthetic(table: &str) -> String {
    HEAD.replace("dataset = { synthetic = { seed = 0 } }", &format!("dataset = {{ synthetic = {table} }}"))
}

#[test]
fn synthetic_kinds_and_knobs() {
    use decsweep_api::{ClusteredKnobs, SynthKind};
    let load = |src: &str| SweepSpec::from_source(src, PATH, &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let linear = load(HEAD);
    assert_eq!(
        *linear.dataset(),
        crate::Dataset::Synthetic { seed: 0, n: 2199, generator: SynthKind::Linear },
        "no kind is today's generator"
    );
    let explicit = load(&with_synthetic(r#"{ kind = "linear", seed = 0 }"#));
    assert_eq!(explicit.dataset(), linear.dataset());

    let clustered =
        load(&with_synthetic(r#"{ kind = "clustered", seed = 4, n = 500, separation = 3, noise_audio = 2.5 }"#));
    let knobs = ClusteredKnobs { separation: 3.0, noise: [7.0, 2.5, 2.8], ..ClusteredKnobs::default() };
    assert_eq!(
        *clustered.dataset(),
        crate::Dataset::Synthetic { seed: 4, n: 500, generator: SynthKind::Clustered(knobs) }
    );
    let defaults = load(&with_synthetic(r#"{ kind = "clustered" }"#));
    assert!(
        matches!(defaults.dataset(), crate::Dataset::Synthetic { generator: SynthKind::Clustered(k), .. } if *k == ClusteredKnobs::default())
    );
}

#[test]
fn bad_synthetic_kind_or_knob_is_located() {
    // Line 3 is `dataset = { synthetic = … }`; columns count from its `d`.
    only_error(
        &with_synthetic(r#"{ kind = "spiral" }"#),
        3,
        34,
        "unknown synthetic kind `spiral` for `study.dataset.synthetic.kind`; expected one of: linear, clustered",
    );
    only_error(
        &with_synthetic(r#"{ kind = "clustered", separation = 0 }"#),
        3,
        60,
        "`study.dataset.synthetic.separation`: expected a number in (0, 100], found 0",
    );
    only_error(
        &with_synthetic(r#"{ kind = "clustered", share_text = "most" }"#),
        3,
        60,
        "`study.dataset.synthetic.share_text`: expected a number in [0, 1], found most",
    );
    only_error(
        &with_synthetic(r#"{ kind = "clustered", subclusters = 2.5 }"#),
        3,
        61,
        "expected an integer in [1, 32], found 2.5",
    );
    only_error(
        &with_synthetic(r#"{ kind = "clustered", noise_txt = 3 }"#),
        3,
        47,
        "unknown key `noise_txt` in `study.dataset.synthetic`; did you mean `noise_text`",
    );
    only_error(
        &with_synthetic("{ seed = 1, separation = 3 }"),
        3,
        37,
        "`separation` is a knob of the clustered generator; add kind = \"clustered\"",
    );
    only_error(&with_synthetic("{ kind = 3 }"), 3, 34, "expected a string for `study.dataset.synthetic.kind`");
}

#[test]
fn unreadable_spec_file_is_a_read_error() {
    let err = SweepSpec::load("/nonexistent/decsweep/spec.toml").unwrap_err();
    assert!(matches!(err, crate::LoadError::Read { .. }));
    assert!(err.to_string().contains("cannot read the sweep spec"));
}

mod sections;
