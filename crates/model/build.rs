//! Link flags every binary and test that touches libtorch needs (shared by decsweep-worker).
//!
//! - rpath to the libtorch folder torch-sys built against, so binaries run without
//!   `LD_LIBRARY_PATH`;
//! - `--no-as-needed` before `-ltorch_cuda`/`-ltorch`: libtorch registers its CUDA backend from a
//!   static initialiser, so no symbol of `libtorch_cuda.so` is referenced and the linker would
//!   otherwise drop it, leaving `tch::Cuda::is_available()` silently false on a GPU machine.
use std::path::Path;

pub fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB") else { return };
    let lib = Path::new(&lib);
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-ltorch_cuda");
    }
    println!("cargo:rustc-link-arg=-ltorch");
}
