//! What libtorch says about its own build: the text of `at::show_config()`, which PyTorch's
//! `torch.__config__.show()` prints, and the parts of it that decide CPU results: the MKL and
//! oneDNN versions and the CPU capability ATen dispatches to (`AVX2`, `AVX512`, ...). `info`
//! prints it and every trial's manifest records it (`crate::manifest`), so `decsweep reproduce`
//! can say which kernels a result was computed with.
//!
//! tch has no binding for `at::show_config()`; it is called here through its C++ symbol, which
//! only the Itanium C++ ABI on x86-64 Linux lets this crate declare without a C++ shim (see
//! [`ffi`]). Elsewhere the text is `None` and the versions are reported as unknown.

use std::sync::OnceLock;

use serde::Serialize;

/// The build facts a reader of a manifest or of `info` needs, each `None` when this libtorch
/// does not report it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LibtorchBuild {
    /// The libtorch release decsweep was built against (`torch/version.py`).
    pub version: String,
    /// e.g. `Intel(R) oneAPI Math Kernel Library Version 2024.2-Product Build 20240605 ...`.
    pub mkl: Option<String>,
    /// e.g. `Intel(R) MKL-DNN v3.10.2 (Git Hash f1d4719...)`.
    pub onednn: Option<String>,
    /// The CPU kernels ATen picked on this machine, e.g. `AVX512`: the same build on a CPU
    /// without AVX-512 reports `AVX2` and computes different last bits.
    pub cpu_capability: Option<String>,
    pub openmp: Option<String>,
    /// The CUDA and cuDNN versions libtorch was built with (not the driver's).
    pub cuda_runtime: Option<String>,
    pub cudnn: Option<String>,
}

impl LibtorchBuild {
    /// This process's libtorch, read once.
    pub fn here() -> &'static LibtorchBuild {
        static BUILD: OnceLock<LibtorchBuild> = OnceLock::new();
        BUILD.get_or_init(|| {
            let mut build = config_text().map(|text| parse(&text)).unwrap_or_default();
            build.version = env!("DECSWEEP_LIBTORCH_VERSION").to_string();
            build
        })
    }
}

/// The facts of a `show_config()` text: its `  - ` lines.
pub fn parse(text: &str) -> LibtorchBuild {
    let items: Vec<&str> = text.lines().filter_map(|l| l.trim().strip_prefix("- ")).map(str::trim).collect();
    let find = |test: &dyn Fn(&str) -> bool| items.iter().find(|i| test(i)).map(|i| i.to_string());
    LibtorchBuild {
        version: String::new(),
        mkl: find(&|i| i.contains("Math Kernel Library")),
        onednn: find(&|i| i.contains("MKL-DNN v") || i.contains("oneDNN v")),
        cpu_capability: items
            .iter()
            .find_map(|i| i.strip_prefix("CPU capability usage:"))
            .map(|c| c.trim().to_string()),
        openmp: find(&|i| i.starts_with("OpenMP")),
        cuda_runtime: items.iter().find_map(|i| i.strip_prefix("CUDA Runtime")).map(|c| c.trim().to_string()),
        cudnn: items.iter().find_map(|i| i.strip_prefix("CuDNN")).map(|c| c.trim().to_string()),
    }
}

/// `at::show_config()`'s text, where it can be called.
fn config_text() -> Option<String> {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        Some(ffi::show_config())
    }
    #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
    {
        None
    }
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod ffi {
    use std::mem::MaybeUninit;

    /// libstdc++'s `std::string` of the C++11 ABI (the `B5cxx11` tag in the symbol below says
    /// libtorch uses it): a pointer to the characters, their count, then 16 bytes that hold
    /// short strings inline or the capacity of long ones.
    #[repr(C)]
    struct CxxString {
        data: *const u8,
        len: usize,
        inline_or_capacity: [u8; 16],
    }

    #[link(name = "torch_cpu")]
    extern "C" {
        /// `std::string at::show_config()`. Under the Itanium C++ ABI on x86-64 a returned
        /// object with a non-trivial destructor is built in memory the caller provides, whose
        /// address is passed as a hidden first argument (in `rdi`, as a C function's first
        /// pointer argument is) and returned in `rax`: hence this declaration.
        #[link_name = "_ZN2at11show_configB5cxx11Ev"]
        fn at_show_config(out: *mut CxxString) -> *mut CxxString;
    }

    /// The text, copied out. The C++ string is never destroyed: its heap buffer (a few KiB) is
    /// left to the process, since freeing it would need libstdc++'s `operator delete`, and
    /// [`super::LibtorchBuild::here`] calls this once per process.
    pub(super) fn show_config() -> String {
        let mut out = MaybeUninit::<CxxString>::uninit();
        // SAFETY: `at_show_config` constructs a `std::string` at `out` (see its declaration);
        // the string is read in place (its data may point into `out` itself), never moved.
        unsafe {
            at_show_config(out.as_mut_ptr());
            let s = &*out.as_ptr();
            String::from_utf8_lossy(std::slice::from_raw_parts(s.data, s.len)).into_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `torch.__config__.show()` of the PyTorch 2.11.0 wheel this workspace builds against.
    const WHEEL: &str = "PyTorch built with:
  - GCC 13.3
  - C++ Version: 201703
  - Intel(R) oneAPI Math Kernel Library Version 2024.2-Product Build 20240605 for Intel(R) 64 architecture applications
  - Intel(R) MKL-DNN v3.10.2 (Git Hash f1d471933dc852f956fd05389f9313c7148783d5)
  - OpenMP 201511 (a.k.a. OpenMP 4.5)
  - LAPACK is enabled (usually provided by MKL)
  - CPU capability usage: AVX512
  - CUDA Runtime 13.0
  - CuDNN 91.9
  - Build settings: BLAS_INFO=mkl, TORCH_VERSION=2.11.0, USE_MKL=ON,
";

    #[test]
    fn the_kernel_choosing_facts_are_read_from_the_config_text() {
        let b = parse(WHEEL);
        assert!(b.mkl.as_deref().unwrap().starts_with("Intel(R) oneAPI Math Kernel Library Version 2024.2"));
        assert_eq!(
            b.onednn.as_deref(),
            Some("Intel(R) MKL-DNN v3.10.2 (Git Hash f1d471933dc852f956fd05389f9313c7148783d5)")
        );
        assert_eq!(b.cpu_capability.as_deref(), Some("AVX512"));
        assert_eq!(b.openmp.as_deref(), Some("OpenMP 201511 (a.k.a. OpenMP 4.5)"));
        assert_eq!((b.cuda_runtime.as_deref(), b.cudnn.as_deref()), (Some("13.0"), Some("91.9")));
        assert_eq!(parse("PyTorch built with:\n  - GCC 13.3\n"), LibtorchBuild::default(), "absent facts are None");
    }

    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    #[test]
    fn this_libtorch_reports_its_build_through_the_cxx_symbol() {
        let here = LibtorchBuild::here();
        assert!(here.mkl.is_some() || here.onednn.is_some() || here.cpu_capability.is_some(), "{here:?}");
        assert!(here.cpu_capability.is_some(), "ATen names its CPU kernels: {here:?}");
        assert!(!here.version.is_empty());
    }
}
