//! Boot test against Debian's arm64 6.12 kernel under `qemu-system-aarch64 -M virt` (TCG;
//! 1-2 min here): the guest says Hello and an mthp-64k step (contpte-backed on this kernel)
//! comes back verified. Own binary, so it runs after the x86_64 guests, not beside them.

mod boot_support;

use boot_support::{Collected, kit};
use contract::{Accel, Arch, RealLayout, RealOpts, Size, Variant};
use guest::plan::{GuestPlan, GuestStep};
use guest::qemu::{AccelChoice, Guest, GuestConfig};

#[test]
fn arm64_6_12_boots_and_runs_a_verified_mthp_64k_step() {
    let Some(kit) = kit("6.12", Arch::Arm64) else {
        return;
    };
    let layout = RealLayout::Mthp { kb: 64 };
    let step = GuestStep::Real(RealOpts {
        mem: Size(16 << 20),
        iters: 5,
        runs: 1,
        ..RealOpts::new(layout)
    });
    let mut cfg = GuestConfig::new(kit.image, kit.payload, GuestPlan::new(true, vec![step]));
    cfg.accel = AccelChoice::Tcg;
    let mut g = Guest::boot(cfg).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("arm64 6.12 boot-to-hello: {} ms", g.boot_ms());
    let hello = g.hello().clone();
    assert!(hello.kernel_release.starts_with("6.12."), "{hello:?}");
    assert!(hello.mthp_sizes.iter().any(|s| s == "64kB"), "{hello:?}");
    let mut got = Collected::default();
    let done = g
        .run_step(0, &mut |e| got.on_event(e))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(done.ok, "{done:?}");
    assert_eq!(got.contexts.len(), 1);
    assert!(got.contexts[0].pre.ok, "{:?}", got.contexts[0].pre);
    let boot = got.guest();
    assert_eq!(boot.accel, Accel::Tcg);
    assert_eq!(boot.guest_arch, "aarch64");
    assert!(
        boot.config
            .iter()
            .any(|(k, v)| k.contains("ARM64_CONTPTE") && v == "y"),
        "{:?}",
        boot.config
    );
    assert_eq!(got.runs.len(), 1);
    let Variant::Real(v) = &got.runs[0].variant else {
        panic!("not a real-fork run")
    };
    assert_eq!(v.accel, Accel::Tcg);
    assert_eq!(v.arch, Arch::Arm64);
    assert_eq!(v.layout, layout);
    assert!(!v.unverified);
    g.shutdown().unwrap_or_else(|e| panic!("shutdown: {e}"));
}
