//! From a submitted spec to the rows of a new study.

use decsweep_api::wire::{CreateStudy, TrialJob};
use decsweep_search::{Direction, Job, LoadOptions, SweepSpec, TrialPlan};

use crate::error::{Error, Result};
use crate::ops::{DatasetRow, NewStudy, NewTrial};

/// Parses and validates a spec; every problem becomes one `path:line:col: message` detail.
/// `options.check_dataset` only where the spec's paths are this machine's (see [`crate::intake`]).
pub(crate) fn parse(req: &CreateStudy, options: &LoadOptions) -> Result<SweepSpec> {
    SweepSpec::from_source(&req.spec, &req.spec_path, options)
        .map_err(|errors| Error::Spec { details: errors.iter().map(|e| e.to_string()).collect() })
}

/// The stored form of one planned trial. A command trial is stored as the exact invocation the
/// worker runs, so the worker needs nothing from the spec.
pub(crate) fn trial_row(plan: &TrialPlan) -> Result<NewTrial> {
    let job = match &plan.job {
        Job::Model { pipeline, params } => TrialJob::Model { pipeline: *pipeline, params: params.clone() },
        Job::Command { command, params } => {
            let inv = command.invocation(params, plan.seed, &plan.trial_key, &plan.config_id);
            TrialJob::Command { argv: inv.argv, env: inv.env, workdir: inv.workdir, stop_grace_s: inv.stop_grace_s }
        }
    };
    let encode =
        |what: &str, e: serde_json::Error| Error::Internal(format!("cannot encode the {what} of a trial: {e}"));
    Ok(NewTrial {
        trial_key: plan.trial_key.clone(),
        pipeline: plan.pipeline_name().to_string(),
        job_json: serde_json::to_string(&job).map_err(|e| encode("job", e))?,
        params_json: serde_json::to_string(&plan.param_map()).map_err(|e| encode("parameters", e))?,
        seed: plan.seed,
        config_id: plan.config_id.clone(),
        label: plan.label.clone(),
    })
}

/// Everything needed to insert the study, once its dataset is stored.
pub(crate) fn new_study(req: &CreateStudy, spec: &SweepSpec, dataset: DatasetRow) -> Result<NewStudy> {
    let trials = spec.trials().iter().map(trial_row).collect::<Result<Vec<_>>>()?;
    Ok(NewStudy {
        name: spec.name().to_string(),
        spec: req.spec.clone(),
        spec_path: req.spec_path.clone(),
        dataset,
        retries: spec.retries(),
        objective_metric: spec.objective().metric.clone(),
        maximize: spec.objective().direction == Direction::Maximize,
        adaptive: spec.is_adaptive(),
        trials,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMAND_SPEC: &str = r#"
[study]
name = "cmd"
dataset = { synthetic = { seed = 0, n = 8 } }
pipelines = ["command"]
seeds = [0, 1]

[command]
program = ["python3", "train.py"]

[space]
lr = { grid = [0.1, 0.01] }
"#;

    #[test]
    fn command_trials_store_their_invocation() {
        let req = CreateStudy::new(COMMAND_SPEC, "cmd.toml");
        let spec = parse(&req, &LoadOptions::default()).unwrap();
        let rows: Vec<NewTrial> = spec.trials().iter().map(|p| trial_row(p).unwrap()).collect();
        assert_eq!(rows.len(), 4);
        let job: TrialJob = serde_json::from_str(&rows[0].job_json).unwrap();
        let TrialJob::Command { argv, env, .. } = job else { panic!("not a command") };
        assert_eq!(argv[..2], ["python3".to_string(), "train.py".to_string()]);
        assert!(argv.contains(&"--lr".to_string()) && argv.contains(&"--seed".to_string()));
        assert_eq!(env["DECSWEEP_TRIAL_KEY"], rows[0].trial_key);
        assert_eq!(rows[0].pipeline, "command");
        assert!(rows[0].params_json.contains("\"lr\""));
    }

    #[test]
    fn spec_errors_list_every_location() {
        let req = CreateStudy::new("[study]\nnmae = 1\n", "bad.toml");
        let Err(Error::Spec { details }) = parse(&req, &LoadOptions::default()) else { panic!("accepted a bad spec") };
        assert!(details.iter().any(|d| d.starts_with("bad.toml:2:1: ")), "{details:?}");
        assert!(details.len() >= 2, "{details:?}");
    }
}
