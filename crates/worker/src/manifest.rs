//! What a trial's result was computed with, stored beside its metrics (`metrics.json`
//! `"manifest"`, and by the coordinator with the completed trial) so `decsweep reproduce` can
//! rerun it and say what differs.
//!
//! On CPU a rerun is bit-identical only for the same build, libtorch, thread count *and CPU
//! instruction set*: MKL, oneDNN and ATen choose kernels by the CPU's vector and matrix
//! extensions (measured: the demo rerun on another machine of the same kind moved 5 of 18
//! validation accuracies and every loss in the fifth digit). So the manifest records the CPU
//! ([`crate::cpu::Cpu`]: vendor, model, kernel-choosing flags) and libtorch's own report of its
//! build ([`crate::libtorch_build::LibtorchBuild`]: MKL and oneDNN versions, the CPU capability
//! ATen dispatched to) beside the thread count.

use decsweep_api::{Params, Pipeline};
use serde_json::{json, Value};
use tch::Device;

/// How close a rerun must come on CUDA (absolute, per metric); on CPU it must be exact. cuDNN
/// and cuBLAS may pick non-deterministic kernels, so CUDA reruns are not bit-identical. The
/// figure is a stated bound, not yet measured on a GPU.
pub const CUDA_TOLERANCE: f64 = 1e-3;

/// `pack`: for a trial trained in a pack, who trained together ([`pack_entry`]); a rerun trains
/// it as a pack of one through the same engine.
pub fn manifest(
    pipeline: Pipeline,
    params: &Params,
    seed: u64,
    dataset_sha256: &str,
    device: Device,
    pack: Option<Value>,
) -> Value {
    let cuda = match device {
        Device::Cuda(_) => json!({
            "cudart": tch::utils::version_cudart(),
            "cudnn": tch::utils::version_cudnn(),
        }),
        _ => Value::Null,
    };
    let mut manifest = json!({
        "decsweep_version": env!("CARGO_PKG_VERSION"),
        "git_revision": env!("DECSWEEP_GIT_REVISION"),
        "trainer_revision": decsweep_model::TRAINER_REVISION,
        "libtorch": env!("DECSWEEP_LIBTORCH_VERSION"),
        "dataset_sha256": dataset_sha256,
        "pipeline": pipeline.name(),
        "params": params,
        "seed": seed,
        "device": crate::device::describe(device),
        "threads": tch::get_num_threads(),
        "cpu": crate::cpu::Cpu::here(),
        "libtorch_build": crate::libtorch_build::LibtorchBuild::here(),
        "cuda": cuda,
        "determinism": {
            "reseeding": "torch's generator is seeded from (seed, stage, epoch) at the start of every epoch",
            "cpu": "bit-identical for the same build, libtorch, thread count and CPU instruction set (cpu.flags, libtorch_build.cpu_capability)",
            "cuda_tolerance": CUDA_TOLERANCE,
        },
    });
    if let Some(pack) = pack {
        manifest["pack"] = pack;
    }
    manifest
}

/// The manifest's record of a packed trial: the pack's id (the coordinator's, when leased),
/// the trials trained together (this one included) and this trial's place among them.
pub fn pack_entry(pack_id: Option<&str>, trials: &[i64], member: usize) -> Value {
    json!({ "id": pack_id, "trials": trials, "member": member, "engine": "packed" })
}
