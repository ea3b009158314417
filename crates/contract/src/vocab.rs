//! The words forkbench's runner and drivers share, each with exactly one spelling: strategies,
//! engines, layouts, modes, scheduling, mapcount models, op counters, where a kernel ran.
//! Every enum parses (`FromStr`), prints (`Display`), (de)serialises as that one name, and with
//! the `clap` feature is a clap `ValueEnum`, so a CLI flag, a JSON field and a table row can
//! never disagree.

use std::fmt;
use std::str::FromStr;

/// A name that is not one of an enum's spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} '{got}' (expected one of: {expected})")]
pub struct UnknownName {
    /// What kind of word was expected (`strategy`, `layout`, ...).
    pub what: &'static str,
    pub got: String,
    /// The accepted spellings, comma-separated.
    pub expected: String,
}

/// Defines a closed vocabulary: the enum, `ALL` (selectable values in canonical order), `name`,
/// `Display`, `FromStr`, serde as the name, and clap's `ValueEnum`. Variants listed after
/// `hidden:` exist (for tests) but are neither in `ALL` nor parseable.
macro_rules! vocab {
    (
        $(#[$meta:meta])*
        $vis:vis enum $ty:ident : $what:literal {
            $( $(#[$vmeta:meta])* $var:ident = $name:literal, )+
        }
        $( hidden: { $( $(#[$hmeta:meta])* $hvar:ident = $hname:literal, )+ } )?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[allow(clippy::manual_non_exhaustive)]
        $vis enum $ty {
            $( $(#[$vmeta])* $var, )+
            $( $( $(#[$hmeta])* #[doc(hidden)] $hvar, )+ )?
        }

        impl $ty {
            /// Every selectable value, in canonical (table) order.
            pub const ALL: &'static [$ty] = &[$($ty::$var),+];

            /// The one spelling of this value.
            pub const fn name(self) -> &'static str {
                match self {
                    $( $ty::$var => $name, )+
                    $( $( $ty::$hvar => $hname, )+ )?
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.name())
            }
        }

        impl FromStr for $ty {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, UnknownName> {
                $ty::ALL
                    .iter()
                    .copied()
                    .find(|v| v.name() == s)
                    .ok_or_else(|| UnknownName {
                        what: $what,
                        got: s.to_string(),
                        expected: $ty::ALL.iter().map(|v| v.name()).collect::<Vec<_>>().join(", "),
                    })
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        #[cfg(feature = "clap")]
        impl clap::ValueEnum for $ty {
            fn value_variants<'a>() -> &'a [Self] {
                $ty::ALL
            }
            fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
                Some(clap::builder::PossibleValue::new(self.name()))
            }
        }
    };
}

vocab! {
    /// Which instrument produced a run.
    pub enum Instrument: "instrument" {
        /// The userspace model of the kernel's fork-copy path.
        Sim = "sim",
        /// The real `fork()` on a running kernel.
        Real = "real",
    }
}

vocab! {
    /// The fork-copy strategies of the LKML thread ("kernels"), named as the thread names them,
    /// `current`, the path of today's kernels, and the stand-ins for two released kernels
    /// (`v6.1`, `v6.12`: Debian's 6.1.176 and 6.12.117), named by version.
    /// The model (`forkmodel`) gives each its behaviour; adding one means a variant here and
    /// its walk there.
    pub enum Strategy: "strategy" {
        /// v6.7 per-PTE loop, two `ptep_get` per present PTE.
        MmUnstable = "mm-unstable",
        /// The same loop on David's rmap API cleanups; identical counts.
        HugetlbRmapCleanups = "hugetlb-rmap-cleanups",
        /// Ryan's v4: arch `pte_batch_remaining`, one `ptep_get` per batch.
        RyanV4 = "ryan-v4",
        /// David's Dec 2023 prototype: `folio_pte_batch`, `ptep_get` on every PTE, no hint.
        ForkBatching = "fork-batching",
        /// v6.9: `folio_pte_batch` + `pte_batch_hint`.
        Upstream = "upstream",
        /// Today's kernels (≈v6.15+): the batch capped at the folio's end (no read past it)
        /// and the large-folio mapcount (≥ v6.11).
        Current = "current",
        /// v6.1 (Debian 12's 6.1.y): the per-PTE loop with one PTE load per PTE (the source's
        /// plain dereferences, merged by the compiler), and x86_64's pre-v6.6 PTE code
        /// ([`X86PteCode::NoSavedDirty`]).
        V6_1 = "v6.1",
        /// v6.12 (Debian 13's 6.12.y): `folio_pte_batch` with the hint and the folio-end cap
        /// (backported to 6.12.y) and the large-folio mapcount; counts as `current` does.
        V6_12 = "v6.12",
    }
    hidden: {
        /// Test-only mutant: `upstream` without the same-folio stop ("Bad page state").
        OverrunMutant = "overrun-mutant",
    }
}

impl Strategy {
    /// The mapcount model this strategy's kernel runs with when `requested` is asked for.
    /// `current` (≥ v6.11) always keeps `_large_mapcount`, so the thread's `per-page` becomes
    /// `per-page+large` for it; `large-only` (CONFIG_NO_PAGE_MAPCOUNT) stays as asked. The
    /// thread's kernels run with whatever is requested.
    pub const fn effective_mapcount(self, requested: Mapcount) -> Mapcount {
        match (self, requested) {
            (Strategy::Current | Strategy::V6_12, Mapcount::PerPage) => Mapcount::PerPageAndLarge,
            (_, m) => m,
        }
    }

    /// The x86_64 PTE code of this strategy's kernel. It follows the kernel version, not a
    /// config option, so the strategy fixes it: `v6.1` has the pre-v6.6 code, every other
    /// strategy (the thread's kernels are v6.7-based) the v6.6+ code.
    pub const fn x86_pte_code(self) -> X86PteCode {
        match self {
            Strategy::V6_1 => X86PteCode::NoSavedDirty,
            _ => X86PteCode::SavedDirty,
        }
    }
}

/// Which x86_64 PTE code a modelled kernel has. The v6.6 x86 shadow-stack series changed it
/// for every x86 kernel, whatever `CONFIG_X86_USER_SHADOW_STACK` says, because Write=0 with
/// Dirty=1 became the shadow-stack encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum X86PteCode {
    /// Before v6.6 (6.1): `ptep_set_wrprotect` is one locked clear of the RW bit (no load);
    /// a write-protected dirty PTE keeps Dirty; `pte_mkuffd_wp` only sets the bit (until v6.5).
    NoSavedDirty,
    /// v6.6+: `ptep_set_wrprotect` is a load and a `try_cmpxchg` loop; write-protecting moves
    /// Dirty to SavedDirty (bit 58).
    SavedDirty,
}

impl X86PteCode {
    /// A short name for messages and docs.
    pub const fn name(self) -> &'static str {
        match self {
            X86PteCode::NoSavedDirty => "no-saved-dirty",
            X86PteCode::SavedDirty => "saved-dirty",
        }
    }
}

vocab! {
    /// A page-table architecture (the model's engine, or the arch a real kernel ran on).
    pub enum Arch: "arch" {
        X86_64 = "x86_64",
        Arm64 = "arm64",
    }
}

impl Arch {
    /// The arch this binary was built for, if forkbench knows it.
    pub fn host() -> Option<Arch> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Arch::X86_64),
            "aarch64" => Some(Arch::Arm64),
            _ => None,
        }
    }
}

vocab! {
    /// arm64 contiguous-PTE (contpte) support in the modelled kernel, as the thread's rows name
    /// it (`contpte-dis`, `contpte-ena`, `contpte-basic`).
    pub enum Contpte: "contpte mode" {
        /// contpte disabled: the pre-contpte arm64 kernel.
        Dis = "dis",
        /// contpte with the fork helpers (v6.9: `wrprotect_ptes`, `pte_batch_hint`).
        Ena = "ena",
        /// contpte without the fork helpers.
        Basic = "basic",
    }
}

impl Contpte {
    /// The row label the thread uses, e.g. `contpte-ena`.
    pub fn label(self) -> String {
        format!("contpte-{}", self.name())
    }
}

vocab! {
    /// How repeated timed forks treat the parent.
    pub enum Mode: "mode" {
        /// Before each fork (untimed) the parent is made as after populating: PTEs writable,
        /// pages exclusive.
        Fresh = "fresh",
        /// The same parent forks again: after the first fork its PTEs stay write-protected.
        Steady = "steady",
    }
}

vocab! {
    /// Scheduling policy of the timed process.
    pub enum Sched: "sched policy" {
        /// SCHED_OTHER: the child may preempt the parent inside fork() (flagged).
        Other = "other",
        /// SCHED_BATCH: unprivileged; the child does not wake-up-preempt its parent.
        Batch = "batch",
        /// SCHED_FIFO for parent and children, pausing between forks for RT throttling.
        Fifo = "fifo",
    }
}

vocab! {
    /// How `--sched fifo` pauses between forks (outside the timed section).
    pub enum Pause: "pause" {
        /// nanosleep: the CPU may idle.
        Sleep = "sleep",
        /// Drop to SCHED_OTHER and busy-wait: the CPU never idles.
        Spin = "spin",
    }
}

vocab! {
    /// How the modelled kernel keeps mapcounts.
    #[derive(Default)]
    pub enum Mapcount: "mapcount model" {
        /// Per-page `_mapcount` only (v6.7 .. v6.10): the thread's kernels.
        #[default]
        PerPage = "per-page",
        /// Per-page `_mapcount` plus `_large_mapcount` per rmap call (v6.11+).
        PerPageAndLarge = "per-page+large",
        /// CONFIG_NO_PAGE_MAPCOUNT: only `_large_mapcount` for large folios.
        LargeOnly = "large-only",
    }
}

vocab! {
    /// Where the measured kernel ran.
    #[derive(Default)]
    pub enum Accel: "accelerator" {
        /// The kernel this machine booted.
        #[default]
        Host = "host",
        /// A guest under KVM.
        Kvm = "kvm",
        /// A guest under QEMU's TCG (emulated: code-path differences, not hardware costs).
        Tcg = "tcg",
    }
}

vocab! {
    /// What a real-fork sample counts. Under QEMU's `-icount shift=0,sleep=off` the guest's
    /// clock advances exactly 1 ns per executed guest instruction, so a "nanosecond" read inside
    /// such a guest is one instruction: the guest kernel's instruction path length, exact and
    /// immune to host load, but blind to caches, atomics' cost and TLB maintenance.
    #[derive(Default)]
    pub enum Clock: "clock" {
        /// Real time: samples are nanoseconds (host, KVM, or plain timed TCG).
        #[default]
        Wall = "wall",
        /// QEMU icount: samples are guest instructions.
        Icount = "icount",
    }
}

impl Clock {
    /// The unit a sample of this clock is in.
    pub const fn unit(self) -> SampleUnit {
        match self {
            Clock::Wall => SampleUnit::Nanoseconds,
            Clock::Icount => SampleUnit::Instructions,
        }
    }
}

/// The unit of a run's samples: what tables, exports, plots and comparisons must say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum SampleUnit {
    /// Time (every model run, host and KVM runs, timed TCG).
    #[default]
    Nanoseconds,
    /// Guest instructions (QEMU icount).
    Instructions,
}

impl SampleUnit {
    /// The short suffix a table uses (`ns`, `instr`).
    pub const fn suffix(self) -> &'static str {
        match self {
            SampleUnit::Nanoseconds => "ns",
            SampleUnit::Instructions => "instr",
        }
    }
}

vocab! {
    /// The model's operation counters: exact counts of one fork. `forkmodel::Ops` has one field
    /// per counter, in this order (checked by a test there).
    pub enum OpCounter: "op counter" {
        /// Calls of the arch's `ptep_get()`.
        PtepGetCalls = "ptep_get_calls",
        /// Raw PTE loads inside `ptep_get()` (17 per call on an arm64 contpte block).
        PtepGetRawReads = "ptep_get_raw_reads",
        /// All raw PTE loads.
        PteReads = "pte_reads",
        /// Raw PTE stores.
        PteWrites = "pte_writes",
        /// Atomic read-modify-writes on PTEs.
        PteAtomics = "pte_atomics",
        /// Range TLB invalidations (arm64 contpte fold/unfold).
        Tlbi = "tlbi",
        /// `flush_tlb_mm()` calls.
        TlbFlushMm = "tlb_flush_mm",
        /// Atomics on a folio's `_refcount`.
        RefcountAtomics = "refcount_atomics",
        /// Atomics on a page's `_mapcount`.
        MapcountAtomics = "mapcount_atomics",
        /// Atomics on a large folio's `_large_mapcount`.
        LargeMapcountAtomics = "large_mapcount_atomics",
        /// PageAnonExclusive clears.
        AnonExclusiveClears = "anon_exclusive_clears",
        /// rmap duplicate calls.
        RmapCalls = "rmap_calls",
        /// Batches copied (one `copy_present_ptes` each).
        Batches = "batches",
        /// `need_resched()` checks.
        ReschedChecks = "resched_checks",
        /// Pages copied (pinned anon pages).
        PageCopies = "page_copies",
        /// `copy_pte_range` calls.
        PteRangeCalls = "pte_range_calls",
        /// `copy_pte_range` restarts.
        PteRangeRestarts = "pte_range_restarts",
        /// Lazy-MMU sections entered.
        LazyMmuEnters = "lazy_mmu_enters",
        /// Child PTE tables allocated.
        PteTablesAllocated = "pte_tables_allocated",
        /// `add_mm_rss_vec` flushes.
        RssFlushes = "rss_flushes",
        /// Swap entries duplicated.
        SwapDups = "swap_dups",
        /// Folios allocated (copies).
        FolioAllocs = "folio_allocs",
    }
}

/// A folio order of the model (0..=9): order-N folios of 2^N pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelOrder(u8);

impl ModelOrder {
    pub const MAX: u8 = 9;

    pub fn new(order: u8) -> Result<Self, UnknownName> {
        if order <= Self::MAX {
            Ok(ModelOrder(order))
        } else {
            Err(UnknownName {
                what: "folio order",
                got: order.to_string(),
                expected: "0..=9".into(),
            })
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

impl fmt::Display for ModelOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for ModelOrder {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        let bad = || UnknownName {
            what: "folio order",
            got: s.to_string(),
            expected: "0..=9".into(),
        };
        let n: u8 = s.trim().parse().map_err(|_| bad())?;
        ModelOrder::new(n).map_err(|_| bad())
    }
}

impl serde::Serialize for ModelOrder {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ModelOrder {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ModelOrder::new(u8::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Base page size every layout is built from (4 KiB on every kernel forkbench measures).
pub const PAGE_SIZE: u64 = 4096;
/// PMD size with 4 KiB pages.
pub const PMD_SIZE: u64 = 2 << 20;

/// A real-fork memory layout: how the 1 GiB region is populated before timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RealLayout {
    /// Order-0 folios (THP off for the region).
    Order0,
    /// PMD-sized THPs, then PTE-mapped (order-9 folios behind PTEs).
    PteOrder9,
    /// PMD-mapped THPs.
    PmdOrder9,
    /// mTHP folios of this size in KiB (a power of two, 8 KiB < size < PMD size).
    Mthp { kb: u64 },
    /// Mixed: the region's 64 KiB blocks alternate, even blocks one 64 KiB mTHP folio each,
    /// odd blocks 16 order-0 pages. Half the PTEs take the large-folio batch path, half the
    /// single-PTE path, in one region.
    Mix64k,
    /// Mixed: the region's 2 MiB chunks alternate, even chunks PMD-mapped THPs, odd chunks
    /// PTE-mapped order-9 THPs. Half the region takes `copy_huge_pmd`, half the PTE batches.
    MixPmd,
    /// Mapped, never touched: no PTEs to copy.
    Untouched,
}

impl RealLayout {
    /// The fixed layouts, in table order (mTHP sizes depend on the kernel).
    pub const FIXED: [RealLayout; 4] = [
        RealLayout::Order0,
        RealLayout::PteOrder9,
        RealLayout::PmdOrder9,
        RealLayout::Untouched,
    ];

    /// Folio order every populated page should be in; `None` for `untouched` and for the
    /// mixed layouts (which have no single order: see [`RealLayout::is_mixed`]).
    pub fn folio_order(self) -> Option<u32> {
        match self {
            RealLayout::Order0 => Some(0),
            RealLayout::PteOrder9 | RealLayout::PmdOrder9 => Some(9),
            RealLayout::Mthp { kb } => Some((kb / (PAGE_SIZE / 1024)).trailing_zeros()),
            RealLayout::Mix64k | RealLayout::MixPmd | RealLayout::Untouched => None,
        }
    }

    /// Whether the layout mixes two folio sizes or mappings in one region (`mix-64k`,
    /// `mix-pmd`): populated, but with no single folio order.
    pub fn is_mixed(self) -> bool {
        matches!(self, RealLayout::Mix64k | RealLayout::MixPmd)
    }

    /// The mTHP size (KiB) whose `hugepages-<size>kB/enabled` knob populating switches to
    /// `always`: the size of `mthp-<size>`, 64 for `mix-64k`, none otherwise.
    pub fn mthp_knob_kb(self) -> Option<u64> {
        match self {
            RealLayout::Mthp { kb } => Some(kb),
            RealLayout::Mix64k => Some(64),
            _ => None,
        }
    }

    /// Whether the layout writes its pages.
    pub fn populated(self) -> bool {
        !matches!(self, RealLayout::Untouched)
    }

    /// Whether the layout needs PMD-sized THP.
    pub fn needs_pmd_thp(self) -> bool {
        matches!(
            self,
            RealLayout::PteOrder9 | RealLayout::PmdOrder9 | RealLayout::MixPmd
        )
    }

    /// Table order: order0, the mTHP sizes ascending, pte-order9, pmd-order9, mix-64k,
    /// mix-pmd, untouched.
    pub fn rank(self) -> (u8, u64) {
        match self {
            RealLayout::Order0 => (0, 0),
            RealLayout::Mthp { kb } => (1, kb),
            RealLayout::PteOrder9 => (2, 0),
            RealLayout::PmdOrder9 => (3, 0),
            RealLayout::Mix64k => (4, 0),
            RealLayout::MixPmd => (5, 0),
            RealLayout::Untouched => (6, 0),
        }
    }
}

impl fmt::Display for RealLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RealLayout::Order0 => f.pad("order0"),
            RealLayout::PteOrder9 => f.pad("pte-order9"),
            RealLayout::PmdOrder9 => f.pad("pmd-order9"),
            RealLayout::Mthp { kb } => f.pad(&format!("mthp-{kb}k")),
            RealLayout::Mix64k => f.pad("mix-64k"),
            RealLayout::MixPmd => f.pad("mix-pmd"),
            RealLayout::Untouched => f.pad("untouched"),
        }
    }
}

impl FromStr for RealLayout {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        let bad = || {
            UnknownName {
            what: "layout",
            got: s.to_string(),
            expected:
                "order0, pte-order9, pmd-order9, mthp-<size> (e.g. mthp-64k), mix-64k, mix-pmd, untouched"
                    .into(),
        }
        };
        Ok(match s {
            "order0" => RealLayout::Order0,
            "pte-order9" => RealLayout::PteOrder9,
            "pmd-order9" => RealLayout::PmdOrder9,
            "mix-64k" => RealLayout::Mix64k,
            "mix-pmd" => RealLayout::MixPmd,
            "untouched" => RealLayout::Untouched,
            _ => {
                let size = s.strip_prefix("mthp-").ok_or_else(bad)?;
                let bytes = crate::size::parse_size(size).map_err(|_| bad())?;
                let kb = bytes / 1024;
                let valid = bytes.is_multiple_of(1024)
                    && kb.is_power_of_two()
                    && bytes > PAGE_SIZE
                    && bytes < PMD_SIZE;
                if !valid {
                    return Err(UnknownName {
                        what: "mTHP size",
                        got: size.to_string(),
                        expected: "a power of two above 4K and below 2M, e.g. 16k, 64k".into(),
                    });
                }
                RealLayout::Mthp { kb }
            }
        })
    }
}

impl serde::Serialize for RealLayout {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for RealLayout {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T>(all: &[T])
    where
        T: Copy + PartialEq + fmt::Debug + fmt::Display + FromStr + serde::Serialize,
        T: for<'de> serde::Deserialize<'de>,
        <T as FromStr>::Err: fmt::Debug,
    {
        for &v in all {
            let name = v.to_string();
            assert_eq!(name.parse::<T>().unwrap(), v, "{name}");
            let json = serde_json::to_string(&v).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<T>(&json).unwrap(), v);
        }
    }

    #[test]
    fn every_word_has_one_spelling_that_round_trips() {
        round_trips(Instrument::ALL);
        round_trips(Strategy::ALL);
        round_trips(Arch::ALL);
        round_trips(Contpte::ALL);
        round_trips(Mode::ALL);
        round_trips(Sched::ALL);
        round_trips(Pause::ALL);
        round_trips(Mapcount::ALL);
        round_trips(Accel::ALL);
        round_trips(OpCounter::ALL);
        round_trips(&[
            RealLayout::Order0,
            RealLayout::PteOrder9,
            RealLayout::PmdOrder9,
            RealLayout::Mthp { kb: 64 },
            RealLayout::Mthp { kb: 16 },
            RealLayout::Mix64k,
            RealLayout::MixPmd,
            RealLayout::Untouched,
        ]);
    }

    #[test]
    fn only_current_and_v6_12_raise_the_mapcount_model() {
        use Mapcount::*;
        for &s in Strategy::ALL.iter().chain([&Strategy::OverrunMutant]) {
            for &m in Mapcount::ALL {
                let want = if matches!(s, Strategy::Current | Strategy::V6_12) && m == PerPage {
                    PerPageAndLarge
                } else {
                    m
                };
                assert_eq!(s.effective_mapcount(m), want, "{s} {m}");
            }
        }
    }

    #[test]
    fn only_v6_1_has_the_pre_saved_dirty_x86_code() {
        for &s in Strategy::ALL.iter().chain([&Strategy::OverrunMutant]) {
            let want = if s == Strategy::V6_1 {
                X86PteCode::NoSavedDirty
            } else {
                X86PteCode::SavedDirty
            };
            assert_eq!(s.x86_pte_code(), want, "{s}");
        }
        assert_eq!(X86PteCode::NoSavedDirty.name(), "no-saved-dirty");
    }

    #[test]
    fn mixed_layouts_have_no_single_order_and_say_what_they_need() {
        for (name, l) in [
            ("mix-64k", RealLayout::Mix64k),
            ("mix-pmd", RealLayout::MixPmd),
        ] {
            assert_eq!(name.parse::<RealLayout>().unwrap(), l);
            assert_eq!(l.to_string(), name);
            assert!(l.is_mixed() && l.populated(), "{l}");
            assert_eq!(l.folio_order(), None, "{l}: no single folio order");
        }
        // mix-64k switches the 64K knob like mthp-64k; mix-pmd needs PMD THP like pmd-order9.
        assert_eq!(RealLayout::Mix64k.mthp_knob_kb(), Some(64));
        assert_eq!(RealLayout::Mthp { kb: 16 }.mthp_knob_kb(), Some(16));
        assert_eq!(RealLayout::MixPmd.mthp_knob_kb(), None);
        assert!(RealLayout::MixPmd.needs_pmd_thp());
        assert!(!RealLayout::Mix64k.needs_pmd_thp());
        assert!(!RealLayout::Order0.is_mixed() && !RealLayout::Untouched.is_mixed());
        for bad in ["mix-32k", "mix", "mix-PMD", "mix64k"] {
            let e = bad.parse::<RealLayout>().unwrap_err();
            assert!(e.to_string().contains("mix-64k, mix-pmd"), "{bad}: {e}");
        }
    }

    #[test]
    fn unknown_words_name_the_choices_and_hidden_ones_stay_hidden() {
        let e = "v6.7".parse::<Strategy>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown strategy 'v6.7' (expected one of: mm-unstable, hugetlb-rmap-cleanups, ryan-v4, fork-batching, upstream, current, v6.1, v6.12)"
        );
        assert!("overrun-mutant".parse::<Strategy>().is_err());
        assert!(!Strategy::ALL.contains(&Strategy::OverrunMutant));
        assert_eq!(Strategy::OverrunMutant.name(), "overrun-mutant");
        assert!("on".parse::<Contpte>().is_err());
        assert_eq!(Contpte::Ena.label(), "contpte-ena");
    }

    #[test]
    fn layouts_parse_sizes_and_reject_non_mthp_sizes() {
        assert_eq!(
            "mthp-64k".parse::<RealLayout>().unwrap(),
            RealLayout::Mthp { kb: 64 }
        );
        assert_eq!(
            "mthp-1M".parse::<RealLayout>().unwrap(),
            RealLayout::Mthp { kb: 1024 }
        );
        for bad in [
            "mthp-4k",
            "mthp-2M",
            "mthp-48k",
            "mthp-",
            "order9",
            "pte-order0",
        ] {
            assert!(bad.parse::<RealLayout>().is_err(), "{bad}");
        }
        assert_eq!(RealLayout::Mthp { kb: 64 }.folio_order(), Some(4));
        let mut v = [
            RealLayout::Untouched,
            RealLayout::PteOrder9,
            RealLayout::Mthp { kb: 64 },
            RealLayout::Order0,
            RealLayout::Mthp { kb: 16 },
            RealLayout::MixPmd,
            RealLayout::Mix64k,
        ];
        v.sort_by_key(|l| l.rank());
        let names: Vec<String> = v.iter().map(|l| l.to_string()).collect();
        assert_eq!(
            names,
            [
                "order0",
                "mthp-16k",
                "mthp-64k",
                "pte-order9",
                "mix-64k",
                "mix-pmd",
                "untouched"
            ]
        );
    }

    #[test]
    fn orders() {
        assert_eq!("9".parse::<ModelOrder>().unwrap().get(), 9);
        assert!("10".parse::<ModelOrder>().is_err());
        assert!(serde_json::from_str::<ModelOrder>("12").is_err());
    }

    #[cfg(feature = "clap")]
    #[test]
    fn clap_sees_the_same_spellings() {
        use clap::ValueEnum;
        let names: Vec<String> = Strategy::value_variants()
            .iter()
            .map(|v| v.to_possible_value().unwrap().get_name().to_string())
            .collect();
        let expected: Vec<&str> = Strategy::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(names, expected);
    }
}
