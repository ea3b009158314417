//! The correctness oracle. [`Image`] captures the parent before a fork; [`check_fork`] holds
//! the parent and child after the fork against the rules the kernel must keep (child PTE bits,
//! parent write-protection, mapcounts and refcounts adding up, swap counts, batches never
//! crossing a folio, VMA or page-table end, arch PTE rules); [`logical_state`] gives a
//! strategy-independent view for the differential check between strategies.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;

use crate::arch::{Arch, Pte, PteView};
use crate::mm::{Mm, VmFlags, Vma, rss, vma_needs_copy};
use crate::model::{Model, pte_at, view_at};
use crate::ops::BatchEvent;
use crate::page::{MapcountModel, MapcountRules, pg};
use crate::types::{PTRS_PER_PTE, Pfn, VirtAddr};

/// The parent as it was before the fork.
#[derive(Debug, Clone)]
pub struct Image {
    /// Every non-none parent PTE inside a VMA, as `ptep_get` sees it.
    pub ptes: BTreeMap<VirtAddr, PteView>,
    /// Pages that were PageAnonExclusive.
    pub exclusive: HashSet<Pfn>,
    /// The parent's VMAs.
    pub vmas: Vec<Vma>,
    /// MMF_HAS_PINNED.
    pub has_pinned: bool,
}

impl Image {
    /// Capture the parent of `model`.
    pub fn capture<A: Arch>(model: &Model<A>) -> Image {
        let mut ptes = BTreeMap::new();
        let mut exclusive = HashSet::new();
        for vma in &model.parent.vmas {
            let mut a = vma.start;
            while a < vma.end {
                let v = model.parent_view(a);
                if v != PteView::None {
                    ptes.insert(a, v);
                    if let PteView::Present {
                        pfn,
                        special: false,
                        ..
                    } = v
                        && model.mem.pages.contains(pfn)
                        && model.mem.pages.page(pfn).flags.load(Relaxed) & pg::ANON_EXCLUSIVE != 0
                    {
                        exclusive.insert(pfn);
                    }
                }
                a = a.add_pages(1);
            }
        }
        Image {
            ptes,
            exclusive,
            vmas: model.parent.vmas.clone(),
            has_pinned: model.parent.has_pinned,
        }
    }
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub addr: Option<VirtAddr>,
    pub what: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.addr {
            Some(a) => write!(f, "{a:?}: {}", self.what),
            None => f.write_str(&self.what),
        }
    }
}

struct Report(Vec<Violation>);

impl Report {
    fn fail(&mut self, addr: Option<VirtAddr>, what: impl Into<String>) {
        // Cap the report: one bug usually breaks thousands of PTEs the same way.
        if self.0.len() < 64 {
            self.0.push(Violation {
                addr,
                what: what.into(),
            });
        }
    }
}

/// Whether fork must give the child its own copy of this page: an exclusive anon page of a
/// maybe-pinned folio in a COW mapping of a pinning mm.
fn must_copy<A: Arch>(model: &Model<A>, img: &Image, vma: &Vma, pfn: Pfn) -> bool {
    let pages = &model.mem.pages;
    if !pages.contains(pfn) {
        return false;
    }
    let folio = pages.folio_of(pfn);
    pages.folio_test_anon(folio)
        && vma.is_cow_mapping()
        && img.has_pinned
        && img.exclusive.contains(&pfn)
        && pages.folio_maybe_dma_pinned(folio)
}

/// Check a completed fork. `batches` are the batch events recorded during it.
pub fn check_fork<A: Arch>(
    img: &Image,
    model: &Model<A>,
    child: &Mm,
    batches: &[BatchEvent],
) -> Result<(), Vec<Violation>> {
    let mut r = Report(Vec::new());
    let pages = &model.mem.pages;

    // --- batches stay inside folio, VMA and page table ----------------------------------
    for b in batches {
        if b.nr == 0 {
            r.fail(Some(b.addr), "empty batch");
        }
        if b.addr.0 + b.nr * crate::types::PAGE_SIZE > b.vma_end.0 {
            r.fail(
                Some(b.addr),
                format!("batch of {} crosses the VMA end {:?}", b.nr, b.vma_end),
            );
        }
        if b.addr.pte_index() as u64 + b.nr > PTRS_PER_PTE as u64 {
            r.fail(
                Some(b.addr),
                format!("batch of {} crosses the page-table end", b.nr),
            );
        }
        if let Some(fs) = b.folio_start
            && (b.first_pfn < fs || b.first_pfn.0 + b.nr > fs.0 + b.folio_nr)
        {
            r.fail(
                Some(b.addr),
                format!(
                    "batch of {} from {:?} runs past its folio [{:?}, +{})",
                    b.nr, b.first_pfn, fs, b.folio_nr
                ),
            );
        }
    }

    // --- per-PTE rules ---------------------------------------------------------------------
    let mut child_rss = [0i64; rss::NR];
    for (vi, src) in img.vmas.iter().enumerate() {
        let Some(dst) = child.vmas.get(vi) else {
            r.fail(None, format!("child lacks VMA {vi}"));
            continue;
        };
        if (dst.start, dst.end) != (src.start, src.end) {
            r.fail(Some(src.start), "child VMA bounds differ");
        }
        let copied = vma_needs_copy(dst, src);
        let cow = src.is_cow_mapping();
        let shared = src.flags.contains(VmFlags::SHARED);
        let mut a = src.start;
        while a < src.end {
            let before = img.ptes.get(&a).copied().unwrap_or(PteView::None);
            let parent = model.parent_view(a);
            let kid = view_at::<A>(&model.mem, child, a);
            for (who, p) in [
                ("parent", model.parent_pte(a)),
                ("child", pte_at(&model.mem, child, a)),
            ] {
                if let Err(e) = A::check_pte(p) {
                    r.fail(Some(a), format!("{who} PTE {p:?}: {e}"));
                }
            }
            if !copied {
                if kid != PteView::None {
                    r.fail(Some(a), "child has a PTE in a VMA fork must not copy");
                }
                if parent != before {
                    r.fail(Some(a), "parent PTE changed in an uncopied VMA");
                }
                a = a.add_pages(1);
                continue;
            }
            match (before, parent, kid) {
                (PteView::None, pv, kv) => {
                    if pv != PteView::None || kv != PteView::None {
                        r.fail(Some(a), "none PTE became something");
                    }
                }
                (
                    PteView::Swap {
                        entry,
                        soft_dirty,
                        uffd_wp,
                        ..
                    },
                    pv,
                    kv,
                ) => {
                    child_rss[rss::SWAP] += 1;
                    let want_parent = PteView::Swap {
                        entry,
                        soft_dirty,
                        uffd_wp,
                        exclusive: false,
                    };
                    let want_child = PteView::Swap {
                        entry,
                        soft_dirty,
                        uffd_wp: uffd_wp && dst.userfaultfd_wp(),
                        exclusive: false,
                    };
                    if pv != want_parent {
                        r.fail(
                            Some(a),
                            format!("parent swap PTE {pv:?}, want {want_parent:?}"),
                        );
                    }
                    if kv != want_child {
                        r.fail(
                            Some(a),
                            format!("child swap PTE {kv:?}, want {want_child:?}"),
                        );
                    }
                }
                (
                    PteView::Present {
                        pfn,
                        write,
                        dirty,
                        young,
                        soft_dirty,
                        uffd_wp,
                        special,
                    },
                    pv,
                    kv,
                ) => {
                    if must_copy(model, img, src, pfn) {
                        // Parent untouched and still exclusive; child owns a copy.
                        if parent != before {
                            r.fail(Some(a), "parent PTE of a copied pinned page changed");
                        }
                        if pages.page(pfn).flags.load(Relaxed) & pg::ANON_EXCLUSIVE == 0 {
                            r.fail(Some(a), "pinned page lost PageAnonExclusive");
                        }
                        match kv {
                            PteView::Present {
                                pfn: cp,
                                write: cw,
                                dirty: cd,
                                uffd_wp: cu,
                                ..
                            } => {
                                child_rss[rss::ANON] += 1;
                                if cp == pfn {
                                    r.fail(Some(a), "child shares a page that had to be copied");
                                } else if !pages.contains(cp) {
                                    r.fail(Some(a), "child maps a copy outside the arena");
                                } else {
                                    let (orig, copy) = (pages.page(pfn), pages.page(cp));
                                    if orig.content.load(Relaxed) != copy.content.load(Relaxed) {
                                        r.fail(Some(a), "copied page has different contents");
                                    }
                                    if copy.flags.load(Relaxed) & pg::ANON_EXCLUSIVE == 0 {
                                        r.fail(Some(a), "child's copy is not exclusive");
                                    }
                                }
                                // A uffd-wp marker write-protects the copy (pte_mkuffd_wp).
                                if cw != (dst.flags.contains(VmFlags::WRITE) && !cu) || !cd {
                                    r.fail(Some(a), "child copy must be dirty, writable iff VM_WRITE and not uffd-wp");
                                }
                                if cu != (uffd_wp && dst.userfaultfd_wp()) {
                                    r.fail(Some(a), "child copy uffd-wp wrong");
                                }
                            }
                            other => r.fail(Some(a), format!("child of copied page is {other:?}")),
                        }
                    } else {
                        let is_normal = !special && pages.contains(pfn);
                        if is_normal {
                            let f = pages.folio_of(pfn);
                            child_rss[if pages.folio_test_anon(f) {
                                rss::ANON
                            } else {
                                rss::FILE
                            }] += 1;
                            if pages.folio_test_anon(f)
                                && pages.page(pfn).flags.load(Relaxed) & pg::ANON_EXCLUSIVE != 0
                            {
                                r.fail(Some(a), "shared anon page is still PageAnonExclusive");
                            }
                        }
                        let want_parent = PteView::Present {
                            pfn,
                            write: write && !cow,
                            dirty,
                            young,
                            soft_dirty,
                            uffd_wp,
                            special,
                        };
                        if pv != want_parent {
                            r.fail(Some(a), format!("parent PTE {pv:?}, want {want_parent:?}"));
                        }
                        match kv {
                            PteView::Present {
                                pfn: kp,
                                write: kw,
                                dirty: kd,
                                young: ky,
                                soft_dirty: ks,
                                uffd_wp: ku,
                                special: ksp,
                            } => {
                                if kp != pfn {
                                    r.fail(Some(a), format!("child maps {kp:?}, parent {pfn:?}"));
                                }
                                let write_ok = if cow {
                                    !kw
                                } else {
                                    kw == write
                                        || (kw && merged_write_allowed(img, src, a, pfn, pages))
                                };
                                if !write_ok {
                                    r.fail(
                                        Some(a),
                                        format!(
                                            "child write bit {kw} (parent had {write}, cow {cow})"
                                        ),
                                    );
                                }
                                // A contiguous block's dirtiness is one bit for 16 entries
                                // (fold gathers it), so over-reporting there is allowed.
                                let cont = A::pte_is_cont(pte_at(&model.mem, child, a));
                                if kd != (dirty && !shared) && !(kd && cont) {
                                    r.fail(
                                        Some(a),
                                        format!("child dirty {kd}, want {}", dirty && !shared),
                                    );
                                }
                                if ky {
                                    r.fail(Some(a), "child PTE is young");
                                }
                                if src.soft_dirty_enabled() && ks != soft_dirty {
                                    r.fail(Some(a), "child soft-dirty not inherited");
                                }
                                if ku != (uffd_wp && dst.userfaultfd_wp()) {
                                    r.fail(Some(a), format!("child uffd-wp {ku}"));
                                }
                                if ksp != special {
                                    r.fail(Some(a), "child special bit differs");
                                }
                            }
                            other => r.fail(Some(a), format!("child of present PTE is {other:?}")),
                        }
                    }
                }
            }
            a = a.add_pages(1);
        }
    }
    if child.rss != child_rss {
        r.fail(
            None,
            format!("child RSS {:?}, PTEs say {:?}", child.rss, child_rss),
        );
    }

    // --- accounting: mapcounts, refcounts, swap counts ------------------------------------
    check_accounting(model, child, &mut r);

    if r.0.is_empty() { Ok(()) } else { Err(r.0) }
}

/// For a shared mapping, v6.9's batch makes every child PTE writable when any later PTE of the
/// same folio in the batch was (`any_writable`; FPB_MERGE_WRITE later). Allowed when another
/// PTE of the same folio in the same VMA and page table was writable.
fn merged_write_allowed(
    img: &Image,
    vma: &Vma,
    addr: VirtAddr,
    pfn: Pfn,
    pages: &crate::page::PageArena,
) -> bool {
    if !pages.contains(pfn) {
        return false;
    }
    let folio = pages.folio_of(pfn);
    let table_start = VirtAddr(addr.0 - addr.pte_index() as u64 * crate::types::PAGE_SIZE);
    let lo = table_start.max(vma.start);
    let hi = VirtAddr(table_start.0 + crate::types::PMD_SIZE).min(vma.end);
    img.ptes.range(lo..hi).any(|(_, &v)| match v {
        PteView::Present {
            pfn: p,
            write: true,
            special: false,
            ..
        } => pages.contains(p) && pages.folio_of(p) == folio,
        _ => false,
    })
}

/// Every page's mapcount equals the PTEs mapping it (parent + child); every folio's refcount
/// equals its mappings plus pins; every swap slot's count equals the entries naming it.
fn check_accounting<A: Arch>(model: &Model<A>, child: &Mm, r: &mut Report) {
    let pages = &model.mem.pages;
    for (who, mm) in [("parent", &model.parent), ("child", child)] {
        for (&pmd, &tid) in &mm.tables {
            let base = VirtAddr(pmd * crate::types::PMD_SIZE);
            if let Err(e) = A::check_table(pages, model.mem.tables.get(tid), base) {
                r.fail(None, format!("{who} table at {base:?}: {e}"));
            }
        }
    }
    let mut per_page: HashMap<Pfn, i64> = HashMap::new();
    let mut swap_refs: HashMap<u64, i64> = HashMap::new();
    for mm in [&model.parent, child] {
        for &tid in mm.tables.values() {
            let t = model.mem.tables.get(tid);
            for i in 0..PTRS_PER_PTE {
                let p = Pte(t.load(i));
                if A::pte_none(p) {
                    continue;
                }
                if !A::pte_present(p) {
                    *swap_refs.entry(A::pte_to_swp_entry(p).offset).or_default() += 1;
                } else if !A::pte_special(p) && pages.contains(A::pte_pfn(p)) {
                    *per_page.entry(A::pte_pfn(p)).or_default() += 1;
                }
            }
        }
    }
    // The counts the fork's strategy keeps (the parent keeps at least those).
    let mapcount = child.mapcount;
    for head in pages.folios() {
        let order = pages.folio_order(head);
        let nr = 1u64 << order;
        let mut total = 0i64;
        for i in 0..nr {
            let pfn = head.add(i);
            let maps = per_page.get(&pfn).copied().unwrap_or(0);
            total += maps;
            if mapcount.per_page(order) {
                let mc = pages.page(pfn).mapcount.load(Relaxed) as i64 + 1;
                if mc != maps {
                    r.fail(
                        None,
                        format!(
                            "page {pfn:?}: mapcount {mc} but {maps} PTEs map it (Bad page state)"
                        ),
                    );
                }
            }
        }
        if mapcount.large(order) {
            let lm = pages.page(head).large_mapcount.load(Relaxed) as i64 + 1;
            if lm != total {
                r.fail(
                    None,
                    format!("folio {head:?}: large mapcount {lm}, {total} PTEs"),
                );
            }
        }
        let rc = pages.page(head).refcount.load(Relaxed) as i64;
        let want = total + pages.pin_references(head) as i64;
        if rc != want {
            r.fail(
                None,
                format!(
                    "folio {head:?} (order {order}): refcount {rc}, want {want} (Bad page state)"
                ),
            );
        }
    }
    for (&offset, &refs) in &swap_refs {
        let c = model.mem.swap.count(offset) as i64;
        if c != refs {
            r.fail(
                None,
                format!("swap slot {offset}: count {c}, {refs} entries"),
            );
        }
    }
}

/// A strategy-independent view of one PTE.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LogicalPte {
    None,
    /// A mapping of a page both processes may share.
    Page(PteView),
    /// The child's private copy, identified by its contents.
    Copy {
        content: u64,
        view: PteView,
    },
}

/// Parent and child PTEs plus per-page accounting, normalised so that any correct strategy
/// gives the same value (soft-dirty is masked where tracking is off; page copies are named by
/// contents, not by frame; the write bit of shared mappings is masked, see `check_fork`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalState {
    pub parent: Vec<(VirtAddr, LogicalPte)>,
    pub child: Vec<(VirtAddr, LogicalPte)>,
    /// (pfn, mapcount, refcount, exclusive) of every page of the parent's original folios.
    pub pages: Vec<(Pfn, i32, i32, bool)>,
    pub child_rss: [i64; rss::NR],
}

/// The logical state of a parent and its child.
pub fn logical_state<A: Arch>(
    model: &Model<A>,
    child: &Mm,
    original_folios: &[Pfn],
) -> LogicalState {
    let pages = &model.mem.pages;
    let norm = |vma: &Vma, v: PteView, is_child: bool| -> LogicalPte {
        let mut v = v;
        if let PteView::Present {
            soft_dirty, write, ..
        } = &mut v
        {
            if !vma.soft_dirty_enabled() {
                *soft_dirty = false;
            }
            if is_child && vma.flags.contains(VmFlags::SHARED) {
                *write = false;
            }
        }
        match v {
            PteView::None => LogicalPte::None,
            PteView::Present { pfn, .. }
                if is_child
                    && pages.contains(pfn)
                    && !original_folios.contains(&pages.folio_of(pfn)) =>
            {
                let mut view = v;
                if let PteView::Present { pfn, .. } = &mut view {
                    *pfn = Pfn(0);
                }
                LogicalPte::Copy {
                    content: pages.page(pfn).content.load(Relaxed),
                    view,
                }
            }
            _ => LogicalPte::Page(v),
        }
    };
    let mut parent = Vec::new();
    let mut kid = Vec::new();
    for (vi, vma) in model.parent.vmas.iter().enumerate() {
        let mut a = vma.start;
        while a < vma.end {
            parent.push((a, norm(vma, model.parent_view(a), false)));
            kid.push((
                a,
                norm(&child.vmas[vi], view_at::<A>(&model.mem, child, a), true),
            ));
            a = a.add_pages(1);
        }
    }
    gather_dirty_per_block(&mut kid, pages);
    let mut page_states = Vec::new();
    for &head in original_folios {
        for i in 0..(1u64 << pages.folio_order(head)) {
            let p = pages.page(head.add(i));
            page_states.push((
                head.add(i),
                p.mapcount.load(Relaxed),
                if i == 0 { p.refcount.load(Relaxed) } else { 0 },
                p.flags.load(Relaxed) & pg::ANON_EXCLUSIVE != 0,
            ));
        }
    }
    LogicalState {
        parent,
        child: kid,
        pages: page_states,
        child_rss: child.rss,
    }
}

/// Coarsen child dirtiness to 64 KiB blocks of one folio: arm64 contpte may fold a child
/// block and gather dirty over it, which is as correct as per-PTE dirtiness.
fn gather_dirty_per_block(kid: &mut [(VirtAddr, LogicalPte)], pages: &crate::page::PageArena) {
    const BLOCK: u64 = 16 * crate::types::PAGE_SIZE;
    let folio_of = |v: &LogicalPte| match v {
        LogicalPte::Page(PteView::Present {
            pfn,
            special: false,
            ..
        }) if pages.contains(*pfn) => Some(pages.folio_of(*pfn)),
        _ => None,
    };
    let mut i = 0;
    while i < kid.len() {
        let block = kid[i].0.0 / BLOCK;
        let mut j = i;
        while j < kid.len() && kid[j].0.0 / BLOCK == block {
            j += 1;
        }
        let f0 = folio_of(&kid[i].1);
        if j - i == 16 && f0.is_some() && kid[i..j].iter().all(|(_, v)| folio_of(v) == f0) {
            let any = kid[i..j]
                .iter()
                .any(|(_, v)| matches!(v, LogicalPte::Page(PteView::Present { dirty: true, .. })));
            for (_, v) in &mut kid[i..j] {
                if let LogicalPte::Page(PteView::Present { dirty, .. }) = v {
                    *dirty = any;
                }
            }
        }
        i = j;
    }
}

/// Convenience for tests and `forkbench check`: the folio heads present before a fork.
pub fn folio_heads<A: Arch>(model: &Model<A>) -> Vec<Pfn> {
    model.mem.pages.folios().collect()
}

/// Whether the mapcount model keeps anything the oracle can check for this order.
pub fn mapcount_checked(m: MapcountModel, order: u8) -> bool {
    m.per_page(order) || m.large(order)
}

/// What [`check_layout`] found for one strategy.
#[derive(Debug, Clone)]
pub struct StrategyCheck {
    pub strategy: crate::strategy::StrategyId,
    pub ops: crate::ops::Ops,
    pub batches: usize,
}

/// A failed check: which strategy, which fork, what broke.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{strategy} (fork {fork}): {}", .violations.iter().map(|v| v.to_string()).take(5).collect::<Vec<_>>().join("; "))]
pub struct CheckFailure {
    pub strategy: String,
    pub fork: u32,
    pub violations: Vec<Violation>,
}

/// The logical states one strategy left after each of its forks on a layout: what every
/// other strategy must leave, on any engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub strategy: String,
    pub states: Vec<LogicalState>,
}

/// Run every strategy in `strategies` on `layout`: two forks each (the second on the already
/// forked parent, as `steady` mode does), checking every fork with [`check_fork`], then that
/// all strategies agree on the logical state after each fork, and that teardown plus `fresh`
/// restore gives back the original accounting.
pub fn check_layout<A: Arch>(
    layout: &crate::layout::Layout,
    cfg: crate::fork::ForkConfig,
    strategies: &[crate::strategy::StrategyId],
) -> Result<Vec<StrategyCheck>, CheckFailure> {
    check_layout_against::<A>(layout, cfg, strategies, &mut None)
}

/// [`check_layout`] across engines: the strategies must also agree with `reference` (the
/// states another engine's strategies left on the same layout); an empty `reference` is set
/// from the first strategy. x86_64's two PTE codes are two engines, so a check of `v6.1`
/// beside the others runs twice on one reference.
pub fn check_layout_against<A: Arch>(
    layout: &crate::layout::Layout,
    cfg: crate::fork::ForkConfig,
    strategies: &[crate::strategy::StrategyId],
    reference: &mut Option<Reference>,
) -> Result<Vec<StrategyCheck>, CheckFailure> {
    use crate::ops::Recorder;
    let fail = |s: &str, fork: u32, what: String| CheckFailure {
        strategy: s.to_string(),
        fork,
        violations: vec![Violation { addr: None, what }],
    };
    let mut results = Vec::new();
    for &s in strategies {
        let mut model = Model::<A>::with_layout(layout, cfg)
            .map_err(|e| fail(s.name(), 0, format!("layout: {e}")))?;
        let heads = folio_heads(&model);
        let pristine = parent_only_state(&model, &heads);
        let mut states = Vec::new();
        let mut first_ops = None;
        let mut first_batches = 0;
        for fork in 1..=2u32 {
            let img = Image::capture(&model);
            let mut rec = Recorder::default();
            let child = model.fork_with(s, &mut rec);
            check_fork(&img, &model, &child, &rec.batches).map_err(|violations| CheckFailure {
                strategy: s.name().to_string(),
                fork,
                violations,
            })?;
            states.push(logical_state(&model, &child, &heads));
            if first_ops.is_none() {
                first_ops = Some(rec.ops);
                first_batches = rec.batches.len();
            }
            // The child exits before the next fork, as in the benchmark's repeat loop.
            model.zap(child);
        }
        model.restore_fresh();
        let restored = parent_only_state(&model, &heads);
        if restored != pristine {
            return Err(fail(
                s.name(),
                0,
                "teardown + fresh restore did not give back the populated state".into(),
            ));
        }
        match reference {
            None => {
                *reference = Some(Reference {
                    strategy: s.name().to_string(),
                    states,
                })
            }
            Some(r) => {
                for (i, (a, b)) in r.states.iter().zip(&states).enumerate() {
                    if a != b {
                        return Err(fail(
                            s.name(),
                            i as u32 + 1,
                            format!(
                                "logical state differs from {}: {}",
                                r.strategy,
                                first_difference(a, b)
                            ),
                        ));
                    }
                }
            }
        }
        results.push(StrategyCheck {
            strategy: s,
            ops: first_ops.unwrap_or_default(),
            batches: first_batches,
        });
    }
    Ok(results)
}

/// The logical state of the parent alone (an empty child with the same VMAs).
fn parent_only_state<A: Arch>(model: &Model<A>, heads: &[Pfn]) -> LogicalState {
    let no_child = Mm {
        vmas: model.parent.vmas.clone(),
        ..Mm::default()
    };
    logical_state(model, &no_child, heads)
}

fn first_difference(a: &LogicalState, b: &LogicalState) -> String {
    for (x, y) in a.parent.iter().zip(&b.parent) {
        if x != y {
            return format!("parent {:?}: {:?} vs {:?}", x.0, x.1, y.1);
        }
    }
    for (x, y) in a.child.iter().zip(&b.child) {
        if x != y {
            return format!("child {:?}: {:?} vs {:?}", x.0, x.1, y.1);
        }
    }
    for (x, y) in a.pages.iter().zip(&b.pages) {
        if x != y {
            return format!("page {:?}: {:?} vs {:?}", x.0, x, y);
        }
    }
    if a.child_rss != b.child_rss {
        return format!("child rss {:?} vs {:?}", a.child_rss, b.child_rss);
    }
    "lengths differ".into()
}
