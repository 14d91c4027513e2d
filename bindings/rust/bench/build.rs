//! Compiles the C baseline of the benchmark (c/bench_helper.c) with the system's C
//! compiler (no crates: `cc` through std::process::Command) into a static library.
use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let include = env::var_os("LIBVMM_INCLUDE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../../../include"));
    let src = manifest.join("c/bench_helper.c");
    let obj = out.join("bench_helper.o");
    let lib = out.join("libbench_helper.a");
    let cc = env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let status = Command::new(&cc)
        .args(["-std=gnu11", "-O2", "-fPIC", "-Wall", "-Wextra", "-c", "-I"])
        .arg(&include)
        .arg("-o")
        .arg(&obj)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{}`: {}", cc, e));
    assert!(status.success(), "compiling {} failed", src.display());
    let _ = std::fs::remove_file(&lib);
    let status = Command::new("ar").arg("rcs").arg(&lib).arg(&obj).status().expect("cannot run ar");
    assert!(status.success(), "ar failed");
    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rustc-link-lib=static=bench_helper");
    println!("cargo:rerun-if-changed=c/bench_helper.c");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=LIBVMM_INCLUDE_DIR");
}
