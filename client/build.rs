//! Link settings for tufctl's start-up cost (a process per command).
//!
//! On GNU/Linux the Rust standard library links libgcc_s.so for unwinding;
//! loading it costs each tufctl process about 0.15 ms, most of it the
//! CPU-feature probe in its constructor (CPUID traps on virtual machines).
//! The same unwinder is linked statically from libgcc_eh.a instead, so the
//! linker's --as-needed drops libgcc_s. Panics and backtraces behave the
//! same.

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let static_crt = std::env::var("CARGO_CFG_TARGET_FEATURE")
        .is_ok_and(|f| f.split(',').any(|f| f == "crt-static"));
    if os == "linux" && env == "gnu" && !static_crt {
        println!(
            "cargo:rustc-link-arg-bin=tufctl=-Wl,--push-state,--whole-archive,-lgcc_eh,--pop-state"
        );
    }
    println!("cargo:rerun-if-changed=build.rs");
}
