//! `decsweep reproduce STUDY TRIAL_ID`: rerun a completed trial here from its manifest and say
//! whether the numbers come out the same.
//!
//! The trial's pipeline, parameters and seed come from the store; its dataset is the study's
//! file (from the database's data directory, or downloaded from the coordinator) and must still
//! hash to what the manifest recorded. `decsweep-worker train` runs it with the manifest's thread
//! count on `--device` (default: the manifest's device). Every stored metric but the timings is
//! compared: exactly on CPU, within the manifest's stated tolerance on CUDA, within 0.01%
//! (relative) for a trial trained in a pack (rerun alone, as a pack of one), or within
//! `--tolerance` when given (a check across machines). Exit 0 when every metric matches and the
//! dataset is the same, 1 otherwise; the environment's differences from the manifest (build,
//! libtorch, device, threads, CPU) are listed either way.
//!
//! CPU results are bit-identical only for the same build, libtorch, thread count and CPU
//! instruction set: MKL, oneDNN and ATen choose kernels by the CPU's extensions. When metrics
//! differ and the manifest's CPU is not this one, the message names both ([`cpu_difference`]).

use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;
use clap::Args;
use decsweep_api::wire::TrialStatus;
use decsweep_coordinator::Coordinator;
use serde_json::Value;

use super::connection::Explain;
use super::source::Source;

#[derive(Debug, Args)]
pub struct ReproduceArgs {
    /// The study's name.
    #[arg(value_name = "STUDY")]
    study: String,
    /// The completed trial to rerun (its id in `trials.csv`).
    #[arg(value_name = "TRIAL_ID")]
    trial: i64,
    /// Where the trial and its dataset are read from.
    #[command(flatten)]
    source: super::source::StudySource,
    /// `cpu`, `cuda` or `cuda:K`. Default: the device the trial ran on, as its manifest says.
    #[arg(long)]
    device: Option<String>,
    /// The worker binary. Default: $DECSWEEP_WORKER, else `decsweep-worker` beside this binary,
    /// else on PATH.
    #[arg(long, value_name = "PATH")]
    worker_bin: Option<PathBuf>,
    /// How far each metric may move and still count as the same, for a rerun on another machine:
    /// `0.002` is an absolute difference (accuracy and F1 are fractions: 0.002 is 0.2 points),
    /// `0.5%` a difference relative to the stored value. Default: exact on CPU, which holds only
    /// for the same build, libtorch, thread count and CPU instruction set; on CUDA the
    /// manifest's stated bound; 0.01% for a trial trained in a pack, which reruns alone and
    /// rounds differently in a pack of another size.
    #[arg(long, value_name = "ABS|REL%", value_parser = Tolerance::parse)]
    tolerance: Option<Tolerance>,
}

/// How close a rerun's metric must come to the stored one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tolerance {
    /// Bit-identical.
    Exact,
    /// |rerun − stored| ≤ this.
    Absolute(f64),
    /// |rerun − stored| ≤ this × |stored| (a fraction: `0.5%` is 0.005).
    Relative(f64),
}

impl Tolerance {
    /// `0.002` (absolute) or `0.5%` (relative); finite and ≥ 0.
    fn parse(text: &str) -> Result<Tolerance, String> {
        let (number, relative) = match text.trim().strip_suffix('%') {
            Some(n) => (n.trim(), true),
            None => (text.trim(), false),
        };
        match number.parse::<f64>() {
            Ok(x) if x.is_finite() && x >= 0.0 && relative => Ok(Tolerance::Relative(x / 100.0)),
            Ok(x) if x.is_finite() && x >= 0.0 => Ok(Tolerance::Absolute(x)),
            _ => {
                Err(format!("`{text}` is neither an absolute difference ≥ 0 (e.g. 0.002) nor a percentage (e.g. 0.5%)"))
            }
        }
    }

    /// Whether `rerun` counts as `stored`.
    fn accepts(self, stored: f64, rerun: f64) -> bool {
        rerun.to_bits() == stored.to_bits()
            || match self {
                Tolerance::Exact => false,
                Tolerance::Absolute(t) => (rerun - stored).abs() <= t,
                Tolerance::Relative(t) => (rerun - stored).abs() <= t * stored.abs(),
            }
    }

    fn describe(self, cuda: bool) -> String {
        match self {
            Tolerance::Exact => "exactly (CPU)".to_string(),
            Tolerance::Absolute(t) if cuda => format!("within {t} (CUDA)"),
            Tolerance::Absolute(t) => format!("within {t} (absolute)"),
            Tolerance::Relative(t) => format!("within {}% of the stored value", t * 100.0),
        }
    }
}

/// When the manifest's CPU (or the kernels libtorch picked) is not this machine's, a sentence
/// naming both and what differs; `None` when they agree, or the manifest predates CPU records.
pub fn cpu_difference(recorded: &Value, here: &Value) -> Option<String> {
    let (then, now) = (&recorded["cpu"], &here["cpu"]);
    if then.is_null() {
        return None;
    }
    let capability = |m: &Value| m["libtorch_build"]["cpu_capability"].as_str().map(str::to_string);
    if then == now && capability(recorded) == capability(here) {
        return None;
    }
    let flags = |cpu: &Value| -> Vec<String> {
        cpu["flags"].as_array().into_iter().flatten().filter_map(|f| f.as_str().map(str::to_string)).collect()
    };
    let (flags_then, flags_now) = (flags(then), flags(now));
    let side = |cpu: &Value, own: &[String], other: &[String], kernels: Option<String>| {
        let name = [cpu["vendor"].as_str(), cpu["model"].as_str()]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let name = if name.is_empty() { "an unnamed CPU".to_string() } else { name };
        // The flags only one side has are the ones that can change a kernel.
        let distinct: Vec<&str> = own.iter().filter(|f| !other.contains(f)).map(String::as_str).collect();
        let mut text = name;
        if !distinct.is_empty() {
            text.push_str(&format!(" with {}", distinct.join(",")));
        }
        if let Some(kernels) = kernels {
            text.push_str(&format!(" (ATen kernels: {kernels})"));
        }
        text
    };
    Some(format!(
        "recorded on {}; this machine is {}: different MKL/oneDNN/ATen kernels may be chosen, so CPU results \
         need not be bit-identical (compare with --tolerance)",
        side(then, &flags_then, &flags_now, capability(recorded)),
        side(now, &flags_now, &flags_then, capability(here)),
    ))
}

/// Metrics that measure time or the stage cache, not the result.
fn is_timing(name: &str) -> bool {
    name.starts_with("time_") || matches!(name, "wall_s" | "cache_reuses" | "resumes")
}

pub fn run(args: ReproduceArgs) -> anyhow::Result<()> {
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let (trial, dataset) = match args.source.open()? {
        Source::Db(db) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let c = Coordinator::open_reader(db)?;
                let info = c.study(&args.study).await.map_err(super::coordinator_error)?;
                let trial = c.trial(args.trial).await.map_err(super::coordinator_error)?;
                let (path, _) = c.dataset_path(&info.dataset_sha256).await.map_err(super::coordinator_error)?;
                anyhow::Ok((trial, path))
            })?
        }
        Source::Coordinator(client) => {
            let info = client.study(&args.study).explain(&client, || format!("GET studies/{}", args.study))?;
            let trial = client.trial(args.trial).explain(&client, || format!("GET trials/{}", args.trial))?;
            let path = scratch.path().join("dataset.safetensors");
            let dataset = format!("datasets/{}", info.dataset_sha256);
            // A failed download is never bad input (exit 1), as before the client was shared.
            let bytes = client.get_bytes(&dataset).with_context(|| format!("GET {dataset}"))?;
            std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
            (trial, path)
        }
    };
    let bad = |m: String| -> anyhow::Error { crate::exit::BadInput(m).into() };
    if trial.study != args.study {
        return Err(bad(format!("trial {} belongs to study `{}`, not `{}`", trial.id, trial.study, args.study)));
    }
    if trial.status != TrialStatus::Completed {
        return Err(bad(format!("trial {} is {}: only a completed trial can be reproduced", trial.id, trial.status)));
    }
    if trial.pipeline == "command" {
        return Err(bad("a `command` trial runs the user's program, which decsweep cannot rerun faithfully".into()));
    }
    let manifest = trial.manifest.clone().ok_or_else(|| {
        bad(format!("trial {} has no manifest (completed by a worker older than `decsweep reproduce`)", trial.id))
    })?;
    let stored_device = manifest["device"].as_str().unwrap_or("cpu").to_string();
    let device = args.device.clone().unwrap_or(stored_device);
    let threads = manifest["threads"].as_u64().unwrap_or(1);

    // The dataset the trial read, as the manifest recorded it.
    let recorded = manifest["dataset_sha256"].as_str().unwrap_or("").to_string();
    let now = decsweep_data::content_hash(&dataset).map_err(|e| bad(format!("{}: {e}", dataset.display())))?;
    let dataset_same = now == recorded;

    let out = scratch.path().join("trial");
    let worker = super::run::find_worker(args.worker_bin.as_deref())?;
    let mut cmd = Command::new(&worker);
    // A trial trained in a pack reruns through the packed engine, as a pack of one: its masks
    // and arithmetic do not depend on its pack-mates (crates/model/src/packed), but libtorch
    // rounds batched products differently for another K, so the numbers are compared within
    // PACK_SIZE_TOLERANCE (relative) unless --tolerance says otherwise.
    let packed = manifest.get("pack").is_some_and(|p| !p.is_null());
    if packed {
        let mut params = decsweep_api::Params::default();
        for (name, value) in &trial.params {
            params.set(name, value).map_err(|e| bad(format!("trial {}: {e}", trial.id)))?;
        }
        let pack = decsweep_api::pack::PackFile {
            pack_id: None,
            members: vec![decsweep_api::pack::PackFileMember {
                trial_id: trial.id,
                seed: trial.seed,
                params,
                out: out.clone(),
                checkpoint: None,
            }],
        };
        let pack_file = scratch.path().join("pack.json");
        std::fs::write(&pack_file, serde_json::to_vec(&pack)?)
            .with_context(|| format!("writing {}", pack_file.display()))?;
        cmd.arg("train-pack").arg("--pack-file").arg(&pack_file).arg("--out").arg(scratch.path().join("pack"));
    } else {
        cmd.arg("train").arg("--seed").arg(trial.seed.to_string()).arg("--out").arg(&out);
        for (name, value) in &trial.params {
            cmd.arg("--set").arg(format!("{name}={value}"));
        }
    }
    cmd.arg("--data").arg(&dataset).args(["--pipeline", &trial.pipeline]).args([
        "--device",
        &device,
        "--threads",
        &threads.to_string(),
    ]);
    eprintln!(
        "rerunning trial {} ({} seed {}{}) on {device} with {threads} thread(s)…",
        trial.id,
        trial.pipeline,
        trial.seed,
        if packed { ", trained in a pack: as a pack of one" } else { "" }
    );
    let status = cmd.status().with_context(|| format!("starting {}", worker.display()))?;
    if !status.success() {
        anyhow::bail!("the rerun failed ({status}); see its messages above");
    }
    let rerun: Value = serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json"))?)?;
    let fresh = decsweep_api::wire::flatten_metrics(&rerun);
    let cuda = device.starts_with("cuda");
    let tolerance = match args.tolerance {
        Some(given) => given,
        None if cuda => Tolerance::Absolute(manifest["determinism"]["cuda_tolerance"].as_f64().unwrap_or(1e-3)),
        None if packed => Tolerance::Relative(decsweep_api::pack::PACK_SIZE_TOLERANCE),
        None => Tolerance::Exact,
    };

    println!("| metric | stored | rerun | |");
    println!("| --- | ---: | ---: | --- |");
    let mut all_match = true;
    for (name, &stored) in trial.metrics.iter().filter(|(k, _)| !is_timing(k)) {
        let (cell, ok) = match fresh.get(name) {
            Some(&x) => (format!("{x}"), tolerance.accepts(stored, x)),
            None => ("—".to_string(), false),
        };
        all_match &= ok;
        println!("| {name} | {stored} | {cell} | {} |", if ok { "same" } else { "DIFFERS" });
    }

    let mut differences = Vec::new();
    if !dataset_same {
        differences.push(format!(
            "dataset differs: the manifest recorded SHA-256 {recorded}, {} is now {now}",
            dataset.display()
        ));
    }
    let here = &rerun["manifest"];
    for key in ["decsweep_version", "git_revision", "trainer_revision", "libtorch", "device", "threads", "cuda"] {
        if manifest[key] != here[key] {
            differences.push(format!("{key}: {} then, {} now", manifest[key], here[key]));
        }
    }
    for key in ["mkl", "onednn", "cpu_capability"] {
        let (then, now) = (&manifest["libtorch_build"][key], &here["libtorch_build"][key]);
        if !manifest["libtorch_build"].is_null() && then != now {
            differences.push(format!("libtorch {key}: {then} then, {now} now"));
        }
    }
    let cpu = cpu_difference(&manifest, here);
    if manifest["cpu"].is_null() {
        differences.push("cpu: not recorded (the trial ran on a worker older than CPU records)".to_string());
    } else if cpu.is_some() {
        differences.push(format!("cpu: {} then, {} now", manifest["cpu"], here["cpu"]));
    }
    if differences.is_empty() {
        println!("\nenvironment: as recorded in the manifest");
    } else {
        println!("\nenvironment differences:");
        for d in &differences {
            println!("- {d}");
        }
    }
    let rule = tolerance.describe(cuda);
    if all_match && dataset_same {
        println!("\nreproduced: every metric matches {rule}");
        Ok(())
    } else if !dataset_same {
        anyhow::bail!("not reproduced: the dataset differs")
    } else {
        let why = format!("some metrics do not match {rule}");
        match cpu {
            Some(cpu) if !cuda => {
                println!("\n{cpu}");
                anyhow::bail!("not reproduced: {why}; {cpu}")
            }
            _ => anyhow::bail!("not reproduced: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tolerances_are_absolute_or_a_percentage_of_the_stored_value() {
        assert_eq!(Tolerance::parse("0.002"), Ok(Tolerance::Absolute(0.002)));
        assert_eq!(Tolerance::parse("0.5%"), Ok(Tolerance::Relative(0.005)));
        for bad in ["-1", "NaN", "inf", "a%", "", "%"] {
            let err = Tolerance::parse(bad).unwrap_err();
            assert!(err.contains(&format!("`{bad}`")) && err.contains("0.5%"), "{err}");
        }
        assert!(Tolerance::Absolute(0.01).accepts(0.80, 0.805) && !Tolerance::Absolute(0.01).accepts(0.80, 0.82));
        assert!(Tolerance::Relative(0.01).accepts(2.0, 2.019) && !Tolerance::Relative(0.01).accepts(2.0, 2.03));
        assert!(Tolerance::Exact.accepts(0.1, 0.1) && !Tolerance::Exact.accepts(0.1, 0.1 + 1e-15));
        assert!(Tolerance::Exact.accepts(f64::NAN, f64::NAN), "the same bits, even NaN's, are the same");
    }

    fn manifest(vendor: &str, model: &str, flags: &[&str], kernels: &str) -> Value {
        json!({ "cpu": { "vendor": vendor, "model": model, "flags": flags },
                "libtorch_build": { "cpu_capability": kernels } })
    }

    #[test]
    fn a_different_cpu_is_named_with_the_flags_only_one_side_has() {
        let xeon =
            manifest("GenuineIntel", "Intel(R) Xeon(R) Platinum 8480+", &["avx2", "avx512f", "amx_tile"], "AVX512");
        let epyc = manifest("AuthenticAMD", "AMD EPYC 7763 64-Core Processor", &["avx2", "fma"], "AVX2");
        let text = cpu_difference(&xeon, &epyc).unwrap();
        assert!(
            text.starts_with("recorded on GenuineIntel Intel(R) Xeon(R) Platinum 8480+ with avx512f,amx_tile (ATen kernels: AVX512); \
             this machine is AuthenticAMD AMD EPYC 7763 64-Core Processor with fma (ATen kernels: AVX2)"),
            "{text}"
        );
        assert!(text.contains("different MKL/oneDNN/ATen kernels") && text.contains("--tolerance"), "{text}");
        assert_eq!(cpu_difference(&xeon, &xeon.clone()), None, "the same CPU");
        assert_eq!(cpu_difference(&json!({}), &epyc), None, "an old manifest records no CPU");
    }
}
