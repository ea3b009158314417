//! Kernels under test, booted in QEMU: forkbench builds an initramfs whose `/init` is a static
//! forkbench, boots a kernel image with it, and talks to that init over the serial console.
//!
//! Guest side: [`init`] (PID 1). Shared: [`plan`] (what the guest runs), [`frame`] (the console
//! framing), [`cpio`] (the initramfs writer), [`image`] (kernel images and Debian packages).
//! Host side: [`qemu`] (the launcher), [`payload`] (the static guest binary), [`fetch`] (Debian
//! kernel packages through a private apt configuration).
#![deny(unsafe_op_in_unsafe_fn)]

pub mod cpio;
pub mod fetch;
pub mod frame;
pub mod image;
pub mod init;
pub mod mirror;
pub mod payload;
pub mod plan;
pub mod qemu;
