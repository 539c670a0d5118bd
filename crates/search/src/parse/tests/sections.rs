//! Malformed and valid `[command]`, `[[configs]]`, `[sampler]` and `[pruner]` sections.

use super::*;

#[test]
fn command_pipeline_needs_a_command_table() {
    let src = HEAD.replace(r#"["baseline", "dec"]"#, r#"["command"]"#);
    only_error(&src, 4, 14, "the command pipeline needs a [command] table");
}

#[test]
fn pack_on_a_command_study_is_refused_at_its_line() {
    let src = HEAD.replace(r#"["baseline", "dec"]"#, r#"["command"]"#)
        + "[command]\nprogram = [\"t\"]\n[resources]\ncpus = 1\npack = 4\n";
    only_error(&src, 10, 1, "`pack` cannot be set on a command study");
}

#[test]
fn pack_sets_the_study_default_within_its_bounds() {
    let spec = SweepSpec::from_source(&with("[resources]\npack = 8\n"), PATH, &LoadOptions::default()).unwrap();
    assert_eq!(spec.resources.pack, Some(8));
    let spec = SweepSpec::from_source(HEAD, PATH, &LoadOptions::default()).unwrap();
    assert_eq!(spec.resources.pack, None, "one trial at a time unless the spec says otherwise");
    only_error(&with("[resources]\npack = 0\n"), 7, 8, "expected pack in 1..=64");
    only_error(&with("[resources]\npack = 65\n"), 7, 8, "found 65");
    only_error(&with("[resources]\npack = \"four\"\n"), 7, 8, "expected an integer for `resources.pack`");
}

#[test]
fn command_cannot_mix_with_our_pipelines() {
    let src = HEAD.replace(r#"["baseline", "dec"]"#, r#"["dec", "command"]"#) + "[command]\nprogram = [\"x\"]\n";
    only_error(&src, 4, 21, "the command pipeline cannot be combined with baseline or dec");
}

#[test]
fn command_table_without_the_command_pipeline() {
    only_error(
        &with("[command]\nprogram = [\"python3\", \"t.py\"]\n"),
        6,
        1,
        "[command] is only used by the command pipeline",
    );
}

#[test]
fn command_parameters_must_be_passable() {
    let src = HEAD.replace(r#"["baseline", "dec"]"#, r#"["command"]"#)
        + "[command]\nprogram = [\"t\"]\npass = \"env\"\n[fixed]\nlearning-rate = 1\n";
    only_error(&src, 10, 1, "parameter name `learning-rate` cannot be passed to the program");
    let src = HEAD.replace(r#"["baseline", "dec"]"#, r#"["command"]"#) + "[command]\nprogram = []\n";
    only_error(&src, 7, 11, "empty `command.program`");
}

#[test]
fn command_stop_grace_is_seconds_within_bounds() {
    let src = |grace: &str| {
        HEAD.replace(r#"["baseline", "dec"]"#, r#"["command"]"#) + &format!("[command]\nprogram = [\"t\"]\n{grace}")
    };
    let grace = |text: &str| {
        let spec = SweepSpec::from_source(&src(text), PATH, &LoadOptions { check_dataset: false }).unwrap();
        spec.command().unwrap().stop_grace_s
    };
    assert_eq!(grace(""), crate::command::DEFAULT_STOP_GRACE_S);
    assert_eq!(grace("stop_grace = 30\n"), 30.0);
    assert_eq!(grace("stop_grace = 0.5\n"), 0.5);
    for bad in ["0", "-1", "601"] {
        only_error(&src(&format!("stop_grace = {bad}\n")), 8, 14, "expected 0 < stop_grace <= 600");
    }
    only_error(&src("stop_grace = \"long\"\n"), 8, 14, "stop_grace");
}

#[test]
fn configs_and_pipelines_together() {
    only_error(
        &with("[[configs]]\npipeline = \"dec\"\n"),
        4,
        1,
        "`study.pipelines` and [[configs]] cannot both be given",
    );
}

#[test]
fn config_parameter_not_read_by_its_pipeline() {
    let src = "[study]\nname = \"t\"\ndataset = \"d\"\nseeds = [0]\n\n[[configs]]\npipeline = \"dec\"\n\n[[configs]]\npipeline = \"baseline\"\nparams = { beta = 0.0 }\n";
    only_error(src, 11, 12, "`beta` is not read by pipeline baseline");
}

#[test]
fn repeated_config_label() {
    let src = "[study]\nname = \"t\"\ndataset = \"d\"\nseeds = [0]\n[[configs]]\nlabel = \"A\"\npipeline = \"dec\"\n[[configs]]\nlabel = \"A\"\npipeline = \"baseline\"\n";
    only_error(src, 9, 9, "label \"A\" is already used by [[configs]] entry 1");
}

#[test]
fn inconsistent_parameters_point_at_the_parameter() {
    only_error(
        &with("[fixed]\nn_heads = 3\n"),
        7,
        1,
        "invalid configuration: pipeline baseline: d_model (128) must be divisible by n_heads (3)",
    );
}

#[test]
fn an_inconsistent_value_is_blamed_on_its_own_line_not_on_the_grid_of_the_point() {
    // The grid comes first in the file and the message names its value (`with
    // label_fraction=0.05`), but d_model = 18 on line 10 is what cannot work with 4 heads.
    let src = with("[space]\nlabel_fraction = { grid = [0.05, 0.4] }\n\n[fixed]\nd_model = 18\nn_heads = 4\n");
    only_error(&src, 10, 1, "d_model (18) must be divisible by n_heads (4)");
    // Swept itself, the parameter the reason names first is still the one blamed.
    let src = with("[fixed]\nn_heads = 4\n\n[space]\nd_model = { grid = [16, 18] }\n");
    only_error(&src, 10, 1, "d_model (18) must be divisible by n_heads (4)");
}

#[test]
fn oversized_sweep_is_refused() {
    let src = HEAD.replace(r#"["baseline", "dec"]"#, r#"["command"]"#)
        + "[command]\nprogram = [\"t\"]\n[space]\n"
        + &(0..5).map(|i| format!("p{i} = {{ grid = [0,1,2,3,4,5,6,7,8,9] }}\n")).collect::<String>();
    only_error(&src, 8, 1, "the sweep expands to 200000 trials");
}

#[test]
fn several_problems_are_reported_at_once_in_source_order() {
    let src = "[study]\nname = \"t\"\ndataset = \"d\"\npipelines = [\"dec\"]\nseeds = []\n[resources]\ngpus = 0\n[objective]\ndirection = \"up\"\n";
    let errs = errors(src);
    let at: Vec<(usize, usize)> = errs.iter().map(|e| (e.line, e.column)).collect();
    assert_eq!(at, vec![(5, 9), (7, 8), (9, 13)], "{}", listing(&errs));
}

#[test]
fn config_parameter_also_in_fixed() {
    let src = "[study]\nname = \"t\"\ndataset = \"d\"\nseeds = [0]\n[fixed]\nlabel_fraction = 0.4\n[[configs]]\npipeline = \"dec\"\nparams = { label_fraction = 1.0 }\n";
    only_error(src, 9, 12, "`label_fraction` is set in [fixed] (line 6) and in [[configs]] entry 1");
}

#[test]
fn repeated_config() {
    let src = "[study]\nname = \"t\"\ndataset = \"d\"\nseeds = [0]\n[[configs]]\npipeline = \"dec\"\n[[configs]]\npipeline = \"dec\"\n";
    only_error(src, 7, 1, "this [[configs]] entry repeats entry 1");
}

#[test]
fn single_bracket_configs_is_explained() {
    let src = "[study]\nname = \"t\"\ndataset = \"d\"\nseeds = [0]\n[configs]\npipeline = \"dec\"\n";
    only_error(src, 5, 1, "write [[configs]] (double brackets) above each entry");
}

/// A one-pipeline head for TPE specs; tests append from line 6.
const TPE_HEAD: &str = r#"[study]
name = "t"
dataset = { synthetic = { seed = 0 } }
pipelines = ["dec"]
seeds = [0, 1]
"#;

fn valid(src: &str) -> SweepSpec {
    SweepSpec::from_source(src, PATH, &LoadOptions { check_dataset: false }).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn tpe_sampler_reads_its_options_and_plans_adaptively() {
    let s = valid(&format!(
        "{TPE_HEAD}[sampler]\nkind = \"tpe\"\nn_trials = 30\nseed = 4\nn_startup_trials = 5\nn_ei_candidates = 48\nmultivariate = false\nconstant_liar = false\ngood_bandwidth_factor = 1\n[space]\nlr_ft = {{ loguniform = [1e-5, 1e-3] }}\nepochs_ft = {{ int = [10, 50], step = 10 }}\n[objective]\ndirection = \"maximize\"\n"
    ));
    let spec = s.sampler_spec();
    assert_eq!(spec.kind, crate::SamplerKind::Tpe);
    assert_eq!((spec.seed, spec.n_trials), (4, Some(30)));
    let t = &spec.tpe;
    assert_eq!((t.n_startup_trials, t.n_ei_candidates, t.multivariate, t.constant_liar), (5, 48, false, false));
    assert_eq!(t.good_bandwidth_factor, 1.0, "an integer is read as a number");
    assert!(s.is_adaptive() && s.trials().is_empty(), "tpe trials are planned as points are proposed");
    let mut sampler = s.sampler();
    let p = sampler.ask(&[], &[]).unwrap();
    assert_eq!(s.trials_for_point(&p).unwrap().len(), 2, "one configuration × two seeds");
    // Defaults.
    let d = valid(&format!(
        "{TPE_HEAD}[sampler]\nkind = \"tpe\"\nn_trials = 3\n[space]\nlr_ft = {{ uniform = [1e-5, 1e-3] }}\n"
    ));
    assert_eq!(d.sampler_spec().tpe, crate::TpeSettings::default());
    assert!(d.pruner().is_none());
}

#[test]
fn tpe_refusals_name_the_place() {
    only_error(
        &format!("{TPE_HEAD}[sampler]\nkind = \"tpe\"\n[space]\nlr_ft = {{ uniform = [1e-5, 1e-3] }}\n"),
        7,
        8,
        "the tpe sampler needs `n_trials`",
    );
    only_error(
        &format!("{TPE_HEAD}[sampler]\nkind = \"tpe\"\nn_trials = 5\n[space]\nlabel_fraction = {{ grid = [0.2, 0.4] }}\nlr_ft = {{ uniform = [1e-5, 1e-3] }}\n"),
        10,
        20,
        "cannot cross `space.label_fraction` as a grid",
    );
    only_error(
        &with("[sampler]\nkind = \"tpe\"\nn_trials = 5\n[space]\nlr_ft = { uniform = [1e-5, 1e-3] }\n"),
        7,
        8,
        "optimises one configuration, but this sweep has 2",
    );
    only_error(
        &format!("{TPE_HEAD}[sampler]\nkind = \"random\"\nn_trials = 5\nmultivariate = true\n[space]\nlr_ft = {{ uniform = [1e-5, 1e-3] }}\n"),
        9,
        1,
        "`multivariate` is an option of the tpe sampler",
    );
    only_error(
        &format!("{TPE_HEAD}[sampler]\nkind = \"tpe\"\nn_trials = 5\nn_ei_candidates = 0\n[space]\nlr_ft = {{ uniform = [1e-5, 1e-3] }}\n"),
        9,
        19,
        "expected at least 1",
    );
    only_error(
        &format!("{TPE_HEAD}[sampler]\nkind = \"tpe\"\nn_trials = 5\ngood_bandwidth_factor = 0.0\n[space]\nlr_ft = {{ uniform = [1e-5, 1e-3] }}\n"),
        9,
        25,
        "expected a number in (0, 10] for `sampler.good_bandwidth_factor`, found 0",
    );
}

#[test]
fn pruner_tables_are_read_with_defaults() {
    use crate::{PruneStage, PrunerKind};
    let s = valid(&with("[pruner]\nkind = \"median\"\nn_warmup_steps = 3\n"));
    let p = s.pruner().unwrap();
    assert_eq!(p.kind, PrunerKind::Median { n_startup_trials: 5, n_warmup_steps: 3, interval_steps: 1 });
    assert_eq!(p.stage, PruneStage::Finetune);
    let s = valid(&with("[pruner]\nkind = \"asha\"\nstage = \"dec\"\nreduction_factor = 4\n"));
    let p = s.pruner().unwrap();
    assert_eq!(p.kind, PrunerKind::Asha { min_resource: 1, reduction_factor: 4, min_early_stopping_rate: 0 });
    assert_eq!(p.stage, PruneStage::Dec);
}

#[test]
fn pruner_refusals_name_the_place() {
    only_error(&with("[pruner]\nn_warmup_steps = 3\n"), 6, 1, "missing `kind`");
    only_error(&with("[pruner]\nkind = \"hyperband\"\n"), 7, 8, "median");
    only_error(
        &with("[pruner]\nkind = \"median\"\nmin_resource = 2\n"),
        8,
        1,
        "`min_resource` is a parameter of the asha pruner",
    );
    only_error(&with("[pruner]\nkind = \"asha\"\nreduction_factor = 1\n"), 8, 20, "expected at least 2");
    only_error(&with("[pruner]\nkind = \"median\"\ninterval_steps = 0\n"), 8, 18, "expected at least 1");
    only_error(&with("[pruner]\nkind = \"median\"\nwarmup = 1\n"), 8, 1, "unknown key `warmup`");
    only_error(
        "[study]\nname = \"t\"\ndataset = { synthetic = { seed = 0 } }\npipelines = [\"baseline\"]\nseeds = [0]\n[pruner]\nkind = \"median\"\nstage = \"ae\"\n",
        8,
        9,
        "stage of the dec pipeline",
    );
}

#[test]
fn only_a_study_of_programs_may_leave_out_the_dataset() {
    let programs = "[study]\nname = \"p\"\npipelines = [\"command\"]\nseeds = [0]\n\n[command]\nprogram = [\"python3\", \"train.py\"]\n";
    let spec = SweepSpec::from_source(programs, PATH, &LoadOptions { check_dataset: false }).unwrap();
    assert_eq!(*spec.dataset(), crate::Dataset::None);
    let models = "[study]\nname = \"m\"\npipelines = [\"baseline\", \"dec\"]\nseeds = [0]\n";
    only_error(models, 1, 1, "only a study whose pipelines are all \"command\" may leave it out");
}
