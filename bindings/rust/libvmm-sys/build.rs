//! Finds libvmm for the linker: $LIBVMM_LIB_DIR, then `pkg-config libvmm`, then the
//! standard library directories. No crates: this must build offline on a fresh machine.
//! LIBVMM_STATIC=1 links libvmm.a (plus libfdt and pthread) instead of libvmm.so.
use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn has_lib(dir: &Path, file: &str) -> bool {
    dir.join(file).exists()
}

fn pkg_config_dirs() -> Vec<PathBuf> {
    let out = match Command::new("pkg-config").args(["--libs-only-L", "libvmm"]).output() {
        Ok(o) if o.status.success() => o.stdout,
        _ => return Vec::new(),
    };
    String::from_utf8_lossy(&out)
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("-L"))
        .map(PathBuf::from)
        .collect()
}

fn main() {
    println!("cargo:rerun-if-env-changed=LIBVMM_LIB_DIR");
    println!("cargo:rerun-if-env-changed=LIBVMM_STATIC");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-changed=build.rs");
    let static_link = env::var("LIBVMM_STATIC").map(|v| v == "1").unwrap_or(false);
    let file = if static_link { "libvmm.a" } else { "libvmm.so" };

    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = env::var_os("LIBVMM_LIB_DIR") {
        candidates.push(PathBuf::from(dir));
    }
    candidates.extend(pkg_config_dirs());
    for d in [
        "/usr/local/lib/x86_64-linux-gnu",
        "/usr/local/lib64",
        "/usr/local/lib",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
    ] {
        candidates.push(PathBuf::from(d));
    }
    match candidates.iter().find(|d| has_lib(d, file)) {
        Some(dir) => {
            println!("cargo:rustc-link-search=native={}", dir.display());
            // Visible to dependent build scripts as DEP_VMM_LIB_DIR.
            println!("cargo:lib_dir={}", dir.display());
        }
        None => println!(
            "cargo:warning=libvmm ({}) not found in LIBVMM_LIB_DIR, pkg-config or the standard \
             library directories; set LIBVMM_LIB_DIR=<cmake build dir>",
            file
        ),
    }
    if static_link {
        println!("cargo:rustc-link-lib=static=vmm");
        println!("cargo:rustc-link-lib=dylib=fdt");
        println!("cargo:rustc-link-lib=dylib=pthread");
    } else {
        println!("cargo:rustc-link-lib=dylib=vmm");
    }
}
