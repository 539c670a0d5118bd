//! Choosing the libtorch device.

use anyhow::{bail, Context};
use tch::Device;

/// `cpu`, `cuda`, `cuda:K` or `auto`.
pub fn parse(spec: &str) -> anyhow::Result<Device> {
    match spec {
        "cpu" => Ok(Device::Cpu),
        "auto" => Ok(Device::cuda_if_available()),
        "cuda" => cuda(0),
        other => match other.strip_prefix("cuda:") {
            Some(k) => cuda(k.parse().with_context(|| format!("--device {other}: `{k}` is not a GPU index"))?),
            None => bail!("--device {other}: expected cpu, cuda, cuda:K or auto"),
        },
    }
}

fn cuda(index: usize) -> anyhow::Result<Device> {
    let count = tch::Cuda::device_count() as usize;
    if !tch::Cuda::is_available() || index >= count {
        bail!("--device cuda:{index}: CUDA is not available here ({count} device(s) visible to libtorch)");
    }
    Ok(Device::Cuda(index))
}

pub fn describe(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".to_string(),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// `decsweep-worker info`: one JSON line (`decsweep run` reads `cuda_available` and
/// `cuda_devices` from it to place workers on GPUs).
pub fn print_info() {
    let info = serde_json::json!({
        "libtorch": crate::libtorch_build::LibtorchBuild::here(),
        "cpu": crate::cpu::Cpu::here(),
        "threads": tch::get_num_threads(),
        "interop_threads": tch::get_num_interop_threads(),
        "mkl": tch::utils::has_mkl(),
        "mkldnn": tch::utils::has_mkldnn(),
        "openmp": tch::utils::has_openmp(),
        "cuda_available": tch::Cuda::is_available(),
        "cudnn_available": tch::Cuda::cudnn_is_available(),
        "cuda_devices": tch::Cuda::device_count(),
        // 0 when libtorch was built without CUDA.
        "cudart_version": if tch::utils::has_cudart() { tch::utils::version_cudart() } else { 0 },
        "cudnn_version": if tch::Cuda::cudnn_is_available() { tch::utils::version_cudnn() } else { 0 },
    });
    println!("{info}");
}
