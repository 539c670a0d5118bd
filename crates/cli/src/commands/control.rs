//! `decsweep cancel`, `resume`, `retry`, `fail` and `add-seeds`: steer a study on a running
//! coordinator through the same `/v1` actions the dashboard uses.

use clap::Args;
use decsweep_api::wire::{AddSeeds, FailByUser, RetryTrials};

use super::connection::{Connection, Explain};

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The study to cancel.
    #[arg(value_name = "STUDY")]
    study: String,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The cancelled study to resume.
    #[arg(value_name = "STUDY")]
    study: String,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The study whose failed trials go back to the queue.
    #[arg(value_name = "STUDY")]
    study: String,
    /// Only this trial (it must have failed; a cancelled trial comes back with `resume`).
    #[arg(long, value_name = "ID")]
    trial: Option<i64>,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Args)]
pub struct FailArgs {
    /// The trial's id (as `decsweep status STUDY --trials` lists it).
    #[arg(value_name = "TRIAL")]
    trial: i64,
    /// Why; stored as the trial's error. Default: "failed by user".
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Args)]
pub struct AddSeedsArgs {
    /// The study to extend.
    #[arg(value_name = "STUDY")]
    study: String,
    /// The new seeds, e.g. `10 11 12`.
    #[arg(value_name = "SEED", required = true, num_args = 1..)]
    seeds: Vec<u64>,
    #[command(flatten)]
    connection: Connection,
}

pub fn cancel(args: CancelArgs) -> anyhow::Result<()> {
    let client = args.connection.client()?;
    let out = client.cancel_study(&args.study).explain(&client, || format!("POST studies/{}/cancel", args.study))?;
    println!(
        "study `{}`: {} pending trial(s) cancelled, {} running trial(s) cancelled and told to stop",
        args.study, out.cancelled, out.stopping
    );
    Ok(())
}

pub fn resume(args: ResumeArgs) -> anyhow::Result<()> {
    let client = args.connection.client()?;
    let out = client.resume_study(&args.study).explain(&client, || format!("POST studies/{}/resume", args.study))?;
    if out.was_cancelled {
        println!("study `{}` resumed: {} cancelled trial(s) back in the queue", args.study, out.resumed);
    } else {
        println!("study `{}` was not cancelled; nothing changed", args.study);
    }
    Ok(())
}

pub fn retry(args: RetryArgs) -> anyhow::Result<()> {
    let client = args.connection.client()?;
    let out = client
        .retry_trials(&args.study, &RetryTrials { trial_id: args.trial })
        .explain(&client, || format!("POST studies/{}/retry", args.study))?;
    println!("study `{}`: {} failed trial(s) back in the queue", args.study, out.retried);
    Ok(())
}

pub fn fail(args: FailArgs) -> anyhow::Result<()> {
    let client = args.connection.client()?;
    let out = client
        .fail_trial(args.trial, &FailByUser { reason: args.reason })
        .explain(&client, || format!("POST trials/{}/fail", args.trial))?;
    if out.failed {
        println!("trial {} marked failed", args.trial);
    } else {
        println!("trial {} had already failed; nothing changed", args.trial);
    }
    Ok(())
}

pub fn add_seeds(args: AddSeedsArgs) -> anyhow::Result<()> {
    let client = args.connection.client()?;
    let out = client
        .add_seeds(&args.study, &AddSeeds { seeds: args.seeds })
        .explain(&client, || format!("POST studies/{}/seeds", args.study))?;
    println!("study `{}`: {} trial(s) added", args.study, out.added);
    if !out.skipped.is_empty() {
        let seeds: Vec<String> = out.skipped.iter().map(u64::to_string).collect();
        println!("skipped seed(s) the study already has: {}", seeds.join(" "));
    }
    Ok(())
}
