//! Link-time options for the `mcp-warden` binary, both about how much of it stays in
//! memory.
//!
//! - On Linux with glibc 2.36 or later, relative relocations are packed (`DT_RELR`): the
//!   loader then reads a few kilobytes at start instead of a table of most of a megabyte,
//!   which otherwise stays resident for the life of the process.
//! - Where the linker is Rust's own LLD (the default for x86_64 Linux), the functions
//!   listed in `link/hot-symbols.txt` (those that run while the gateway starts and serves;
//!   `link/hot-symbols.sh` writes the list) are placed next to each other. The kernel maps
//!   code around every page first touched; with the running code scattered over the whole
//!   binary, most of it ended up resident. Names the list has and the binary lacks (after
//!   a dependency or the toolchain changed) are skipped without a warning.
//!
//! Elsewhere, or where the glibc version or the linker cannot be told, the binary is
//! linked as usual.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=link/hot-symbols.txt");
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let linux_gnu = var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu";
    let native = var("HOST") == var("TARGET");
    if linux_gnu && native && glibc_has_relr() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    let order = Path::new(&var("CARGO_MANIFEST_DIR")).join("link/hot-symbols.txt");
    if var("TARGET") == "x86_64-unknown-linux-gnu" && default_linker() && order.is_file() {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}

/// Whether this machine's glibc (`getconf GNU_LIBC_VERSION`: `glibc 2.36`) loads packed
/// relocations: 2.36 and later.
fn glibc_has_relr() -> bool {
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(version) = text.trim().strip_prefix("glibc ") else {
        return false;
    };
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (2, 36)
}

/// Whether the build links with the toolchain's default linker (LLD on x86_64 Linux): no
/// flag chooses another linker or linker flavour.
fn default_linker() -> bool {
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    // Cargo sets RUSTC_LINKER when a linker is configured for the target.
    std::env::var_os("RUSTC_LINKER").is_none()
        && !flags.split('\x1f').any(|f| {
            f.contains("linker") || f.contains("link-self-contained") || f.contains("fuse-ld")
        })
}
