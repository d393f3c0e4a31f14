//! Says, at build time, when the H.264 encoder is being built without its SIMD assembly.
//!
//! openh264-sys2 assembles OpenH264's x86 kernels only when the `nasm` assembler is on PATH (or
//! named by `NASM`); without it the encoder builds from C alone and packages about 2.5x slower.
//! Nothing fetched by cargo can provide an assembler, so the build says how to get the fast path.

use std::env;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=PATH");
    println!("cargo:rerun-if-env-changed=NASM");
    println!("cargo:rerun-if-env-changed=OPENH264_NO_ASM");
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if !matches!(arch.as_str(), "x86" | "x86_64") || env::var_os("OPENH264_NO_ASM").is_some() {
        return;
    }
    let named = env::var_os("NASM").is_some_and(|p| Path::new(&p).is_file());
    let on_path = env::var_os("PATH")
        .is_some_and(|paths| env::split_paths(&paths).any(|dir| dir.join("nasm").is_file()));
    if !named && !on_path {
        println!(
            "cargo:warning=nasm not found: the H.264 encoder is built without its SIMD assembly \
             and packages about 2.5x slower. For the fast path: install nasm (Debian/Ubuntu: \
             apt-get install nasm), then `cargo clean -p openh264-sys2` and build again."
        );
    }
}
