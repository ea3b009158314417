//! forkmodel: a userspace model of how Linux `fork()` copies page tables
//! (`copy_page_range` → `copy_pte_range` → `copy_present_ptes`), shared by every arch engine.
//!
//! "Physical memory" is an arena of 64-byte `struct page`-shaped records; page tables are
//! 512-entry arrays of raw `u64`; the copy path is generic over an [`Arch`] (the PTE format
//! and its hooks), a [`CopyStrategy`] (one of the thread's five kernels, or `current`) and a
//! [`Counter`] (exact op counts, or nothing at all for timed runs), and monomorphised over all
//! three.
//! The [`oracle`] checks every fork against the kernel's rules.
//!
//! The words it shares with the rest of forkbench (strategy, mode, mapcount model, op-counter
//! names) are the `contract` crate's; this crate gives them behaviour.
//!
//! This crate knows no concrete arch, does no I/O and never reads the clock.

#![deny(unsafe_code)]

pub mod arch;
pub mod fork;
pub mod layout;
pub mod mm;
pub mod model;
pub mod ops;
pub mod oracle;
pub mod page;
pub mod strategy;
pub mod table;
pub mod types;

pub use arch::{Arch, Pte, PteView, SwapEntry};
pub use fork::ForkConfig;
pub use layout::{Chunk, Layout, LayoutError, Region, Tweak, VmaPiece};
pub use mm::{Backing, Mm, VmFlags, Vma};
pub use model::{Memory, Mode, Model};
pub use ops::{Counter, NoCount, OpCounter, Ops, Recorder};
pub use page::{MapcountModel, MapcountRules};
pub use strategy::{CopyStrategy, StrategyId, StrategyVisitor, VisitStrategy};
pub use types::{Order, PAGE_SIZE, Pfn, VirtAddr};
