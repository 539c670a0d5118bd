//! The CPU a trial ran on, for its manifest: vendor, model name, and the instruction-set
//! extensions that make MKL, oneDNN and ATen's own kernels take different code paths (and so
//! produce different last bits). Two machines that agree on these run the same kernels for the
//! same build, libtorch and thread count; two that differ may not, which `decsweep reproduce`
//! names when a rerun's metrics differ.
//!
//! Linux reads `/proc/cpuinfo`; elsewhere the vendor and model are unknown and the flags are
//! what the running process detects (`is_x86_feature_detected!`).

use serde::{Deserialize, Serialize};

/// The flags that choose kernels: the x86 vector and matrix extensions MKL, oneDNN and ATen
/// dispatch on (`avx512*` and `amx*` as families), and AArch64's SIMD and SVE.
const KERNEL_FLAGS: &[&str] = &["sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "asimd", "sve", "sve2"];
const KERNEL_FLAG_FAMILIES: &[&str] = &["avx512", "amx"];

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cpu {
    /// e.g. `GenuineIntel`, `AuthenticAMD`; empty when unknown.
    pub vendor: String,
    /// e.g. `Intel(R) Xeon(R) Platinum 8480+`; empty when unknown.
    pub model: String,
    /// The kernel-choosing flags it has, sorted.
    pub flags: Vec<String>,
}

impl Cpu {
    /// This machine's CPU.
    pub fn here() -> Cpu {
        match std::fs::read_to_string("/proc/cpuinfo") {
            Ok(text) => parse_cpuinfo(&text),
            Err(_) => Cpu { vendor: String::new(), model: String::new(), flags: detected_flags() },
        }
    }
}

fn is_kernel_flag(flag: &str) -> bool {
    KERNEL_FLAGS.contains(&flag) || KERNEL_FLAG_FAMILIES.iter().any(|family| flag.starts_with(family))
}

/// The first processor's entry of a `/proc/cpuinfo` text (x86: `vendor_id`, `model name`,
/// `flags`; AArch64: `CPU implementer`, no model name, `Features`).
pub fn parse_cpuinfo(text: &str) -> Cpu {
    let mut cpu = Cpu { vendor: String::new(), model: String::new(), flags: Vec::new() };
    for line in text.lines() {
        // Every processor repeats its entry; the first one's is the machine's.
        if line.trim().is_empty() && !cpu.flags.is_empty() {
            break;
        }
        let Some((key, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        match key.trim() {
            "vendor_id" | "CPU implementer" if cpu.vendor.is_empty() => cpu.vendor = value.to_string(),
            "model name" if cpu.model.is_empty() => cpu.model = value.to_string(),
            "flags" | "Features" if cpu.flags.is_empty() => {
                cpu.flags = value.split_whitespace().filter(|f| is_kernel_flag(f)).map(str::to_string).collect();
                cpu.flags.sort();
                cpu.flags.dedup();
            }
            _ => {}
        }
    }
    cpu
}

/// The kernel-choosing flags this process detects, where there is no `/proc/cpuinfo`.
fn detected_flags() -> Vec<String> {
    #[allow(unused_mut)]
    let mut flags: Vec<&str> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! detect {
            ($($feature:tt => $name:literal),*) => {
                $(if std::arch::is_x86_feature_detected!($feature) { flags.push($name); })*
            };
        }
        detect!("sse4.2" => "sse4_2", "avx" => "avx", "avx2" => "avx2", "fma" => "fma", "f16c" => "f16c",
                "avx512f" => "avx512f", "avx512bw" => "avx512bw", "avx512vl" => "avx512vl",
                "avx512dq" => "avx512dq", "avx512vnni" => "avx512_vnni", "avx512bf16" => "avx512_bf16");
    }
    let mut flags: Vec<String> = flags.into_iter().map(str::to_string).collect();
    flags.sort();
    flags
}

#[cfg(test)]
mod tests {
    use super::*;

    const XEON: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\n\
model name\t: Intel(R) Xeon(R) Platinum 8480+\n\
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma f16c avx512f avx512bw avx512_vnni amx_tile amx_int8 amx_bf16 lm\n\
\n\
processor\t: 1\nvendor_id\t: GenuineIntel\nmodel name\t: something else\nflags\t\t: fpu\n";

    #[test]
    fn the_first_processor_is_read_and_only_kernel_choosing_flags_are_kept() {
        let cpu = parse_cpuinfo(XEON);
        assert_eq!(cpu.vendor, "GenuineIntel");
        assert_eq!(cpu.model, "Intel(R) Xeon(R) Platinum 8480+");
        assert_eq!(
            cpu.flags,
            [
                "amx_bf16",
                "amx_int8",
                "amx_tile",
                "avx",
                "avx2",
                "avx512_vnni",
                "avx512bw",
                "avx512f",
                "f16c",
                "fma",
                "sse4_2"
            ]
        );
    }

    #[test]
    fn an_arm_machine_names_its_implementer_and_features() {
        let cpu =
            parse_cpuinfo("processor\t: 0\nFeatures\t: fp asimd evtstrm sve sve2 atomics\nCPU implementer\t: 0x41\n");
        assert_eq!((cpu.vendor.as_str(), cpu.model.as_str()), ("0x41", ""));
        assert_eq!(cpu.flags, ["asimd", "sve", "sve2"]);
    }

    #[test]
    fn this_machine_has_a_cpu_entry() {
        let cpu = Cpu::here();
        assert!(!cpu.flags.is_empty() || !cfg!(target_arch = "x86_64"), "an x86-64 CPU has SSE4.2 at least: {cpu:?}");
    }
}
