//! Link settings for tufctl's start-up cost: every command is a process,
//! so what the loader does before `main` is paid on every call.
//!
//! On GNU/Linux:
//! - The Rust standard library links libgcc_s.so for unwinding; loading it
//!   costs each process about 0.15 ms, most of it the CPU-feature probe in
//!   its constructor (CPUID traps on virtual machines). The same unwinder
//!   is linked statically from libgcc_eh.a instead, so the linker's
//!   --as-needed drops libgcc_s. Panics and backtraces behave the same.
//! - The executable stays position-independent (ASLR), but its ~13 500
//!   relative relocations are packed (`-z pack-relative-relocs`, DT_RELR),
//!   which the loader applies in about 0.1 ms less. Only when the linker
//!   and the C library here support it: a test program is linked with the
//!   flag and run first (glibc before 2.36 cannot load such a binary).

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let static_crt = var("CARGO_CFG_TARGET_FEATURE")
        .split(',')
        .any(|f| f == "crt-static");
    if var("CARGO_CFG_TARGET_OS") != "linux" || var("CARGO_CFG_TARGET_ENV") != "gnu" || static_crt {
        return;
    }
    println!(
        "cargo:rustc-link-arg-bin=tufctl=-Wl,--push-state,--whole-archive,-lgcc_eh,--pop-state"
    );
    let native = var("TARGET") == var("HOST");
    if native && packed_relocations_work(Path::new(&var("OUT_DIR"))) {
        println!("cargo:rustc-link-arg-bin=tufctl=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether a program linked with `-z pack-relative-relocs` by the C
/// compiler rustc links with (`cc`) builds and runs here.
fn packed_relocations_work(out: &Path) -> bool {
    let source = out.join("relr_probe.c");
    let program = out.join("relr_probe");
    let code = "static const char *s = \"ok\"; const char **p = &s; int main(void) { return **p != 'o'; }\n";
    if std::fs::write(&source, code).is_err() {
        return false;
    }
    let linked = Command::new("cc")
        .args(["-pie", "-fPIE", "-Wl,-z,pack-relative-relocs", "-o"])
        .arg(&program)
        .arg(&source)
        .output()
        .is_ok_and(|o| o.status.success());
    linked && Command::new(&program).status().is_ok_and(|s| s.success())
}
