//! Boot-to-Hello time of each Debian kernel under TCG, three boots each (a measurement, run by
//! hand with `--ignored --nocapture`; it asserts only that every guest came up).

mod boot_support;

use contract::Arch;
use guest::plan::GuestPlan;
use guest::qemu::{AccelChoice, Guest, GuestConfig};

#[test]
#[ignore = "a measurement: nine TCG boots"]
fn boot_to_hello_ms_per_kernel() {
    for (release, arch) in [
        ("6.1", Arch::X86_64),
        ("6.12", Arch::X86_64),
        ("6.12", Arch::Arm64),
    ] {
        let Some(kit) = boot_support::kit(release, arch) else {
            continue;
        };
        let ms: Vec<u64> = (0..3)
            .map(|_| {
                let mut cfg = GuestConfig::new(
                    kit.image.clone(),
                    kit.payload.clone(),
                    GuestPlan::new(true, vec![]),
                );
                cfg.accel = AccelChoice::Tcg;
                let g = Guest::boot(cfg).unwrap_or_else(|e| panic!("{release} {arch}: {e}"));
                let ms = g.boot_ms();
                g.shutdown()
                    .unwrap_or_else(|e| panic!("{release} {arch}: {e}"));
                ms
            })
            .collect();
        eprintln!("boot-to-hello {arch} {release} (tcg, 2 vCPUs): {ms:?} ms");
    }
}
