//! The instruction model's section of `results/fidelity.md` (deterministic text): the
//! summary of both tests against their goals; per group (arch, build) the chosen feature set,
//! a per-layout table per kernel, the fitted instructions per op with their sd, the rows that
//! miss a goal with their likely cause, and where order 0's instructions went from 6.1 to
//! 6.12; then Debian's pair against the self-built one (configuration or code).

use contract::{OpCounter, Size};

use super::data::Build;
use super::fit::Held;
use super::model::{
    GroupModel, Growth, InstrModel, KernelModel, LOLO_GOAL, ObsRow, TRANSFER_GOAL, Transfer,
};
use super::terms::Part;

/// `8.810 M`, `153.6 k`, `41.2`: 4 significant digits with a k/M prefix.
pub fn count(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    let (v, p) = match x.abs() {
        a if a >= 1e6 => (x / 1e6, " M"),
        a if a >= 1e4 => (x / 1e3, " k"),
        _ => (x, ""),
    };
    if v.abs() < 5e-4 {
        return "0".into();
    }
    let digits = (v.abs().log10().floor() as i32 + 1).clamp(1, 4);
    format!("{v:.*}{p}", (4 - digits) as usize)
}

/// `+1.23%`, `−0.40%` (typographic minus); `0.00%` for what rounds to it.
pub fn pct(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    if x.abs() < 5e-5 {
        return "0.00%".into();
    }
    format!("{:+.2}%", x * 100.0).replace('-', "−")
}

/// `1.23%`: a size of error, no sign.
fn magnitude(x: f64) -> String {
    pct(x.abs()).trim_start_matches('+').to_string()
}

/// A signed count: `+2.906 M`, `−27.0 k`.
pub(super) fn signed(x: f64) -> String {
    if count(x.abs()) == "0" {
        "0".into()
    } else if x < 0.0 {
        format!("−{}", count(-x))
    } else {
        format!("+{}", count(x))
    }
}

pub(super) fn held_text(h: Option<Held>, goal: f64) -> String {
    match h {
        None => "—".into(),
        Some(h) if !h.determined => format!("{} (n/d)", pct(h.error)),
        Some(h) if h.error.abs() > goal => format!("**{}**", pct(h.error)),
        Some(h) => pct(h.error),
    }
}

pub(super) fn layout_cell(r: &ObsRow) -> String {
    format!("{} {}", r.obs.layout, Size(r.obs.mem_bytes))
}

fn op(r: &ObsRow, c: OpCounter) -> u64 {
    r.ops.get(&c).copied().unwrap_or(0)
}

/// The section, from the model of the exact files.
pub fn render_section(m: &InstrModel) -> String {
    let mut s = String::new();
    s.push_str(
        "## Instruction model: Debian's and self-built 6.1 and 6.12 against their stand-ins\n\n",
    );
    s.push_str("<!-- Rendered by `cargo xtask fidelity` from results/exact/*.json (exact runs: guest instructions under QEMU icount) and results/exact-counts.json (the stand-ins' op counts, `cargo xtask fidelity --counts`); do not edit. -->\n\n");
    s.push_str(
        "Each kernel's instructions per fork (the median of its runs' median forks) are priced from the op counts of the model strategy that stands for it (`v6.1`: the per-PTE loop; `v6.12`: the batched path with the large mapcount; arm64 6.1 without contpte, arm64 6.12 with it), in steady mode at each layout and memory size. Instructions per op are fitted by NNLS (rows weighted by 1/instructions), with sd from the residual covariance; one feature set per arch and build, the candidate whose worst leave-one-layout-out error over both kernels is smallest. **(a)** within a kernel, each layout predicted from the others (both memory sizes left out), goal ±3%; **(b)** across kernels, one kernel's costs applied to the other's stand-in counts, goal ±10%. `n/d`: the fitted rows do not determine the prediction (it needs a cost they do not carry); bold: the goal is missed. How it works: docs/model.md, \"The instruction model\".\n\n",
    );
    if m.groups.is_empty() {
        s.push_str("No exact result files in `results/exact/` yet: the section fills in when they are committed (see docs/model.md for the sweep's commands).\n\n");
        return s;
    }
    s.push_str(&format!(
        "Inputs: {}.\n\n",
        m.files
            .iter()
            .map(|f| format!("`results/exact/{f}`"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    for l in &m.left_out {
        s.push_str(&format!("Left out: {l}.\n\n"));
    }
    summary(&mut s, m);
    for g in &m.groups {
        group(&mut s, g);
    }
    config_or_code(&mut s, m);
    s
}

fn summary(s: &mut String, m: &InstrModel) {
    s.push_str("### Summary\n\n");
    s.push_str("| arch | build | kernel (stand-in) | feature set | (a) worst held-out | (a) ±3% | (b) worst from the other kernel | (b) ±10% |\n");
    s.push_str("|---|---|---|---|---|---|---|---|\n");
    for g in &m.groups {
        for (i, k) in g.kernels.iter().enumerate() {
            let a = k.worst_held(&g.scored);
            let b = g
                .transfers
                .iter()
                .filter(|t| t.to == i)
                .flat_map(|t| transfer_scored(g, t))
                .fold(None::<f64>, |acc, e| Some(acc.unwrap_or(0.0).max(e.abs())));
            s.push_str(&format!(
                "| {} | {} | {} ({}) | {} | {} | {} | {} | {} |\n",
                g.arch,
                g.build.name(),
                k.kernel.label,
                k.kernel.stand_in.label(),
                g.set.name,
                magnitude(a),
                mark(a <= LOLO_GOAL),
                b.map_or("—".into(), magnitude),
                b.map_or("—", |b| mark(b <= TRANSFER_GOAL)),
            ));
        }
    }
    s.push_str("\n(a) and (b) count the layouts some feature set determines, except `untouched` (it anchors the fixed cost); (b) counts only predictions the source kernel determines.\n\n");
}

fn mark(ok: bool) -> &'static str {
    if ok { "met" } else { "missed" }
}

/// The transfer errors (b) counts: determined predictions of scored layouts.
fn transfer_scored<'a>(g: &'a GroupModel, t: &'a Transfer) -> impl Iterator<Item = f64> + 'a {
    g.kernels[t.to]
        .rows
        .iter()
        .zip(&t.held)
        .filter(|(r, h)| h.determined && g.scored.contains(&r.obs.layout))
        .map(|(_, h)| h.error)
}

fn group(s: &mut String, g: &GroupModel) {
    s.push_str(&format!("### {} {} kernels\n\n", g.arch, g.build.name()));
    s.push_str(&format!(
        "Feature set: **{}** ({}). Worst held-out error of each candidate over the group: {}.\n\n",
        g.set.name,
        g.set.idea,
        g.scores
            .iter()
            .map(|(n, e)| format!("{n} {}", pct(*e)))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    for (i, k) in g.kernels.iter().enumerate() {
        layout_table(s, g, i, k);
    }
    costs_table(s, g);
    super::causes::misses(s, g);
    for ((i, j), growth) in &g.growth {
        growth_table(s, g, *i, *j, growth);
    }
}

fn layout_table(s: &mut String, g: &GroupModel, i: usize, k: &KernelModel) {
    let from: Vec<&Transfer> = g.transfers.iter().filter(|t| t.to == i).collect();
    s.push_str(&format!(
        "**{}** ({}, release {}), stand-in `{}`:\n\n",
        k.kernel.label,
        k.kernel.series.name(),
        k.kernel.release,
        k.kernel.stand_in.label()
    ));
    let mut head = "| layout | runs | spread | PTEs | batches | large | instructions | fitted | (a) held out |".to_string();
    let mut rule = "|---|---|---|---|---|---|---|---|---|".to_string();
    for t in &from {
        head.push_str(&format!(" (b) from {} |", g.kernels[t.from].kernel.label));
        rule.push_str("---|");
    }
    s.push_str(&format!("{head}\n{rule}\n"));
    for (ri, r) in k.rows.iter().enumerate() {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            layout_cell(r),
            r.obs.run_values.len(),
            pct(r.obs.spread()).trim_start_matches('+'),
            op(r, OpCounter::PteWrites),
            op(r, OpCounter::Batches),
            op(r, OpCounter::LargeMapcountAtomics),
            count(r.value),
            count(r.fitted),
            held_text(r.held, LOLO_GOAL),
        ));
        for t in &from {
            s.push_str(&format!(
                " {} |",
                held_text(t.held.get(ri).copied(), TRANSFER_GOAL)
            ));
        }
        s.push('\n');
    }
    s.push('\n');
}

fn cost_cell(k: &KernelModel, j: usize) -> String {
    let c = k.fit.cost[j];
    if !k.fit.identified[j] {
        return format!("{} (n/i)", count(c));
    }
    match k.fit.sd[j] {
        Some(sd) => format!("{} ± {}", count(c), count(sd)),
        None if c == 0.0 => "0 (bound)".into(),
        None => count(c),
    }
}

fn costs_table(s: &mut String, g: &GroupModel) {
    s.push_str("Instructions per op (± sd; `n/i`: not identified by this kernel's layouts, only its sum with another term is; `bound`: NNLS held it at 0):\n\n");
    let mut head = "| term |".to_string();
    let mut rule = "|---|".to_string();
    for k in &g.kernels {
        head.push_str(&format!(" {} |", k.kernel.label));
        rule.push_str("---|");
    }
    s.push_str(&format!("{head} what it is |\n{rule}---|\n"));
    for (j, t) in g.set.terms.iter().enumerate() {
        s.push_str(&format!("| `{}` |", t.name));
        for k in &g.kernels {
            let present = k.rows.iter().any(|r| t.feature(&r.ops) != 0.0);
            let cell = if present {
                cost_cell(k, j)
            } else {
                "— (no such op)".into()
            };
            s.push_str(&format!(" {cell} |"));
        }
        s.push_str(&format!(" {} |\n", t.description));
    }
    s.push('\n');
}

fn growth_table(s: &mut String, g: &GroupModel, i: usize, j: usize, rows: &[Growth]) {
    if rows.is_empty() {
        return;
    }
    let (a, b) = (&g.kernels[i].kernel.label, &g.kernels[j].kernel.label);
    s.push_str(&format!(
        "Order 0 from {a} to {b}, by part (each kernel's own fit):\n\n"
    ));
    s.push_str("| memory | 6.1 | 6.12 | change | outside the copy | per table | PTE copy path | of which op counts | of which instructions per op | not fitted |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    for gr in rows {
        let d = |p: Part| {
            gr.parts
                .iter()
                .find(|(q, _, _)| *q == p)
                .map_or(0.0, |(_, x, y)| y - x)
        };
        let total = gr.new - gr.old;
        let fitted: f64 = gr.parts.iter().map(|(_, x, y)| y - x).sum();
        let with_share = |x: f64| format!("{} ({})", signed(x), share(x, total));
        s.push_str(&format!(
            "| {} | {} | {} | {} ({}) | {} | {} | {} | {} | {} | {} |\n",
            Size(gr.mem_bytes),
            count(gr.old),
            count(gr.new),
            signed(total),
            pct(gr.new / gr.old - 1.0),
            with_share(d(Part::Outside)),
            with_share(d(Part::Table)),
            with_share(d(Part::CopyPath)),
            signed(gr.copy_counts),
            signed(gr.copy_costs),
            signed(total - fitted),
        ));
    }
    s.push('\n');
    if let Some(gr) = rows.iter().max_by_key(|gr| gr.mem_bytes) {
        let copy = gr
            .parts
            .iter()
            .find(|(p, _, _)| *p == Part::CopyPath)
            .map_or(0.0, |(_, x, y)| y - x);
        let total = gr.new - gr.old;
        let inside = copy.abs() >= 0.5 * total.abs();
        s.push_str(&format!(
            "At {}: order 0 changes by {} ({}); the PTE copy path carries {} of it ({} instructions per PTE, {} of them from the stand-ins' op counts), so the change is {} the copy path.\n\n",
            Size(gr.mem_bytes),
            signed(total),
            pct(gr.new / gr.old - 1.0),
            share(copy, total),
            signed(copy / gr.ptes.max(1.0)),
            signed(gr.copy_counts / gr.ptes.max(1.0)),
            if inside { "mostly inside" } else { "mostly outside" }
        ));
    }
}

fn share(x: f64, total: f64) -> String {
    if total == 0.0 {
        return "n/a".into();
    }
    format!("{:.0}%", 100.0 * x / total).replace('-', "−")
}

/// Debian's growth beside the self-built pair's, per arch: one config for both self-built
/// kernels, so what Debian's pair adds beyond it is configuration.
fn config_or_code(s: &mut String, m: &InstrModel) {
    let mut lines = Vec::new();
    for arch in [contract::Arch::X86_64, contract::Arch::Arm64] {
        let per_pte = |build: Build| -> Option<(f64, f64)> {
            let g = m
                .groups
                .iter()
                .find(|g| g.arch == arch && g.build == build)?;
            let gr = g.growth.first()?.1.iter().max_by_key(|gr| gr.mem_bytes)?;
            let copy = gr
                .parts
                .iter()
                .find(|(p, _, _)| *p == Part::CopyPath)
                .map_or(0.0, |(_, x, y)| y - x);
            Some((gr.new / gr.old - 1.0, copy / gr.ptes.max(1.0)))
        };
        let (Some(deb), Some(own)) = (per_pte(Build::Debian), per_pte(Build::SelfBuilt)) else {
            continue;
        };
        lines.push(format!(
            "| {arch} | {} | {} | {} | {} | {} |",
            pct(deb.0),
            signed(deb.1),
            pct(own.0),
            signed(own.1),
            signed(deb.1 - own.1)
        ));
    }
    if lines.is_empty() {
        return;
    }
    s.push_str("### Configuration or code\n\n");
    s.push_str("The self-built kernels share one config (tinyconfig + `crates/bisect/kernel/forkbench.config`), so their 6.1 → 6.12 change is the code's; what Debian's pair changes beyond it comes with Debian's configurations. Order 0 at the larger memory size:\n\n");
    s.push_str("| arch | Debian change | Debian copy path per PTE | self-built change | self-built copy path per PTE | configuration's share per PTE |\n");
    s.push_str("|---|---|---|---|---|---|\n");
    s.push_str(&lines.join("\n"));
    s.push_str("\n\n");
}
