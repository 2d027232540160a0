//! Link-time layout of the deploy build: the functions a running bot executes first,
//! side by side (deploy/order-symbols.py says why and how the list is made).
//!
//! Only for `--profile deploy` on x86_64 Linux with rustc's default linker (lld): GNU
//! ld has no `--symbol-ordering-file`, so a build that picks another linker through
//! RUSTFLAGS gets no ordering rather than a failed link. `PEERLINE_SYMBOL_ORDER=off`
//! turns it off by hand (to measure without it).

use std::env;
use std::path::{Path, PathBuf};

const ORDER_FILE: &str = "deploy/symbol-order.txt";

fn main() {
    println!("cargo::rerun-if-changed={ORDER_FILE}");
    println!("cargo::rerun-if-changed=Cargo.lock");
    println!("cargo::rerun-if-env-changed=PEERLINE_SYMBOL_ORDER");

    let var = |name: &str| env::var(name).unwrap_or_default();
    if var("PEERLINE_SYMBOL_ORDER") == "off" {
        return;
    }
    // Cargo tells a build script the profile it inherits from ("release"), not the
    // custom profile's name; the output directory is target/<profile>/build/<pkg>/out.
    let out_dir = PathBuf::from(var("OUT_DIR"));
    let profile = out_dir.ancestors().nth(3).and_then(Path::file_name);
    if profile.is_none_or(|p| p != "deploy") {
        return;
    }
    if var("CARGO_CFG_TARGET_ARCH") != "x86_64"
        || var("CARGO_CFG_TARGET_OS") != "linux"
        || var("CARGO_CFG_TARGET_ENV") != "gnu"
    {
        return;
    }
    let rustflags = var("CARGO_ENCODED_RUSTFLAGS");
    if rustflags.contains("linker") || rustflags.contains("link-self-contained") {
        return;
    }

    let root = PathBuf::from(var("CARGO_MANIFEST_DIR"));
    let order = root.join(ORDER_FILE);
    let Ok(list) = std::fs::read_to_string(&order) else {
        return;
    };
    if let Ok(lock) = std::fs::read(root.join("Cargo.lock")) {
        let recorded = list.lines().find_map(|l| l.strip_prefix("# Cargo.lock fnv1a64 "));
        let now = format!("{:016x}", fnv1a64(&lock));
        if recorded.is_some_and(|r| r.trim() != now) {
            println!(
                "cargo::warning={ORDER_FILE} was made for another Cargo.lock: the code a bot runs is laid out only \
                 partly together until it is made again (deploy/order-symbols.py, BENCHMARKS.md)"
            );
        }
    }
    println!("cargo::rustc-link-arg-bin=peerline=-Wl,--symbol-ordering-file={}", order.display());
    // Names the linker does not find (a function inlined away) are expected.
    println!("cargo::rustc-link-arg-bin=peerline=-Wl,--no-warn-symbol-ordering");
}

/// The same hash deploy/order-symbols.py writes into the file's header.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}
