//! Kernels under test, booted in QEMU: forkbench builds an initramfs whose `/init` is a static
//! forkbench, boots a kernel image with it, and talks to that init over the serial console.
//!
//! Guest side: [`init`] (PID 1; also a plan run in a board's own userspace). Shared: [`plan`]
//! (what the guest runs), [`frame`] (the console framing), [`transcript`] (frames as typed
//! messages; a whole console capture decoded), [`cpio`] and [`initramfs`] (the archive a kernel
//! under test boots with), [`image`] (kernel images and Debian packages). A LAVA lab boots the
//! same initramfs and its job log decodes through [`transcript`].
//! Host side: [`qemu`] (the launcher), [`payload`] (the static guest binary), [`fetch`] (Debian
//! kernel packages through a private apt configuration).
#![deny(unsafe_op_in_unsafe_fn)]

pub mod cpio;
pub mod fetch;
pub mod frame;
pub mod image;
pub mod init;
pub mod initramfs;
pub mod mirror;
pub mod payload;
pub mod plan;
pub mod qemu;
pub mod transcript;
