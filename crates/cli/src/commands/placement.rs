//! How many local workers `decsweep run` starts, and on which device each one runs.
//!
//! On a CPU machine a trial takes `[resources] cpus` cores (1 when unset), so the default is
//! cores ÷ cpus workers. With CUDA, a trial takes `[resources] gpus` of one GPU (a whole GPU when
//! unset; 0.25 = four trials share one), so the default is GPUs ÷ gpus workers, capped by the CPU
//! count, and worker `i` gets GPU `i mod GPUs`. The GPU count comes from the worker binary
//! (`decsweep-worker info`), because this binary does not link libtorch.

use std::path::Path;
use std::process::Command;

use anyhow::Context;
use decsweep_search::Resources;

/// What a placement needs to know about the machine.
#[derive(Clone, Copy, Debug)]
pub struct Machine {
    pub cores: usize,
    /// Usable CUDA devices, as the worker binary sees them.
    pub cuda_devices: usize,
}

/// The device of every local worker (one entry per worker), or why there can be none.
pub fn place(
    requested: Option<usize>,
    device: &str,
    resources: &Resources,
    machine: Machine,
) -> Result<Vec<String>, String> {
    let cpus = resources.cpus.unwrap_or(1.0).max(0.01);
    let cpu_slots = ((machine.cores as f64 / cpus).floor() as usize).max(1);
    let share = resources.gpus.filter(|g| *g > 0.0).unwrap_or(1.0);
    let gpu_slots = |gpus: usize| ((gpus as f64 / share + 1e-9).floor() as usize).max(1);
    let on_cpu = |device: &str| vec![device.to_string(); requested.unwrap_or(cpu_slots).max(1)];
    match device {
        "cpu" => Ok(on_cpu("cpu")),
        "auto" if machine.cuda_devices == 0 => Ok(on_cpu("cpu")),
        "auto" | "cuda" => {
            if machine.cuda_devices == 0 {
                return Err(
                    "`--device cuda`, but decsweep-worker finds no usable CUDA device (see `decsweep-worker info`)"
                        .into(),
                );
            }
            let n = requested.unwrap_or(gpu_slots(machine.cuda_devices).min(cpu_slots)).max(1);
            Ok((0..n).map(|i| format!("cuda:{}", i % machine.cuda_devices)).collect())
        }
        d if d.starts_with("cuda:") => {
            let index: usize =
                d["cuda:".len()..].parse().map_err(|_| format!("`--device {d}`: expected cuda:K with K a number"))?;
            if index >= machine.cuda_devices {
                return Err(format!(
                    "`--device {d}`, but decsweep-worker finds {} CUDA device(s) (see `decsweep-worker info`)",
                    machine.cuda_devices
                ));
            }
            Ok(vec![d.to_string(); requested.unwrap_or(gpu_slots(1).min(cpu_slots)).max(1)])
        }
        other => Ok(on_cpu(other)),
    }
}

/// The number of usable CUDA devices according to `worker_bin info` (a JSON line with
/// `cuda_available` and `cuda_devices`).
pub fn cuda_devices(worker_bin: &Path) -> anyhow::Result<usize> {
    let out = Command::new(worker_bin)
        .arg("info")
        .env("RUST_LOG", "error")
        .output()
        .with_context(|| format!("running {} info", worker_bin.display()))?;
    if !out.status.success() {
        anyhow::bail!("{} info failed: {}", worker_bin.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let info: serde_json::Value = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .with_context(|| format!("{} info printed no JSON: {text}", worker_bin.display()))?;
    let available = info["cuda_available"].as_bool().unwrap_or(false);
    Ok(if available { info["cuda_devices"].as_u64().unwrap_or(0) as usize } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(cpus: Option<f64>, gpus: Option<f64>) -> Resources {
        Resources { cpus, gpus, checkpoint_every: None, pack: None }
    }

    const CPU_BOX: Machine = Machine { cores: 8, cuda_devices: 0 };
    const GPU_BOX: Machine = Machine { cores: 16, cuda_devices: 2 };

    #[test]
    fn cpu_machines_get_cores_over_cpus_per_trial() {
        assert_eq!(place(None, "auto", &res(None, None), CPU_BOX).unwrap(), vec!["cpu"; 8]);
        assert_eq!(place(None, "cpu", &res(Some(2.0), None), CPU_BOX).unwrap(), vec!["cpu"; 4]);
        assert_eq!(place(Some(3), "auto", &res(Some(2.0), Some(0.5)), CPU_BOX).unwrap(), vec!["cpu"; 3]);
        // cpu even where there are GPUs, when asked.
        assert_eq!(place(None, "cpu", &res(None, Some(0.25)), GPU_BOX).unwrap().len(), 16);
    }

    #[test]
    fn gpu_machines_get_gpus_over_the_share_of_one_trial_spread_over_the_devices() {
        // A whole GPU per trial by default: one worker per GPU, not one per core.
        assert_eq!(place(None, "auto", &res(None, None), GPU_BOX).unwrap(), ["cuda:0", "cuda:1"]);
        // A quarter each: four per GPU, alternating.
        let four = place(None, "cuda", &res(None, Some(0.25)), GPU_BOX).unwrap();
        assert_eq!(four.len(), 8);
        assert_eq!(four.iter().filter(|d| *d == "cuda:1").count(), 4);
        // Capped by the cores a trial needs: 16 cores / 4 per trial = 4 workers.
        assert_eq!(place(None, "auto", &res(Some(4.0), Some(0.1)), GPU_BOX).unwrap().len(), 4);
        // One named GPU: its share only.
        assert_eq!(place(None, "cuda:1", &res(None, Some(0.5)), GPU_BOX).unwrap(), ["cuda:1", "cuda:1"]);
        // An explicit count wins, still spread.
        assert_eq!(place(Some(3), "auto", &res(None, None), GPU_BOX).unwrap(), ["cuda:0", "cuda:1", "cuda:0"]);
    }

    #[test]
    fn impossible_devices_are_refused_with_the_reason() {
        let e = place(None, "cuda", &res(None, None), CPU_BOX).unwrap_err();
        assert!(e.contains("no usable CUDA device"), "{e}");
        let e = place(None, "cuda:2", &res(None, None), GPU_BOX).unwrap_err();
        assert!(e.contains("finds 2 CUDA device(s)"), "{e}");
        let e = place(None, "cuda:x", &res(None, None), GPU_BOX).unwrap_err();
        assert!(e.contains("expected cuda:K"), "{e}");
    }
}
