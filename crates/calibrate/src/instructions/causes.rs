//! The rows that miss a goal, and the likely cause of each: a cost no other layout carries
//! (not determined), layouts the stand-in counts alike but the kernel does not (twins), work per
//! PTE outside the counts, or, across kernels, the part of the fork whose instructions per op
//! changed.

use super::fit::{self, Held, Row};
use super::model::{GroupModel, KernelModel, LOLO_GOAL, ObsRow, TRANSFER_GOAL};
use super::render::{count, pct, signed};
use super::terms::{PER_PTE, PER_TABLE, Part, Term};

/// One missed row: which test, its layout and error, its cause.
struct Miss {
    test: String,
    layout: String,
    mem_bytes: u64,
    error: String,
    cause: String,
}

/// The bullet list of misses: one line per (test, layout), errors of every memory size, the
/// cause at the largest; consecutive layouts of one test with the same cause share a line.
pub fn misses(s: &mut String, g: &GroupModel) {
    let mut all = Vec::new();
    for k in &g.kernels {
        for r in &k.rows {
            let Some(h) = r.held else { continue };
            if missed(g, r, h, LOLO_GOAL) {
                all.push(Miss {
                    test: format!("(a) {}", k.kernel.label),
                    layout: r.obs.layout.to_string(),
                    mem_bytes: r.obs.mem_bytes,
                    error: pct(h.error),
                    cause: lolo_cause(g, k, r, h),
                });
            }
        }
    }
    for t in &g.transfers {
        let (src, dst) = (&g.kernels[t.from], &g.kernels[t.to]);
        for (r, h) in dst.rows.iter().zip(&t.held) {
            if missed(g, r, *h, TRANSFER_GOAL) {
                all.push(Miss {
                    test: format!("(b) {} → {}", src.kernel.label, dst.kernel.label),
                    layout: r.obs.layout.to_string(),
                    mem_bytes: r.obs.mem_bytes,
                    error: pct(h.error),
                    cause: transfer_cause(g, src, dst, r, *h),
                });
            }
        }
    }
    if all.is_empty() {
        s.push_str("Every layout meets both goals.\n\n");
        return;
    }
    // Per (test, layout): the errors in memory order, the cause of the largest memory.
    let mut lines: Vec<(String, Vec<String>, String)> = Vec::new();
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len()
            && all[j + 1].test == all[i].test
            && all[j + 1].layout == all[i].layout
        {
            j += 1;
        }
        let errors = all[i..=j]
            .iter()
            .map(|m| m.error.clone())
            .collect::<Vec<_>>()
            .join(" / ");
        let last = all[i..=j]
            .iter()
            .max_by_key(|m| m.mem_bytes)
            .expect("non-empty");
        let entry = format!("`{}` {errors}", all[i].layout);
        match lines.last_mut() {
            Some((test, layouts, cause)) if *test == all[i].test && *cause == last.cause => {
                layouts.push(entry)
            }
            _ => lines.push((all[i].test.clone(), vec![entry], last.cause.clone())),
        }
        i = j + 1;
    }
    s.push_str("Misses (errors at each memory size) and their likely cause:\n\n");
    for (test, layouts, cause) in lines {
        s.push_str(&format!("- {test}: {}: {cause}\n", layouts.join(", ")));
    }
    s.push('\n');
}

fn missed(g: &GroupModel, r: &ObsRow, h: Held, goal: f64) -> bool {
    g.scored.contains(&r.obs.layout) && (!h.determined || h.error.abs() > goal)
}

/// Rows of one kernel at one memory size whose stand-in counts are the same (under the group's
/// terms): the model cannot tell them apart.
fn twins<'a>(g: &GroupModel, k: &'a KernelModel, r: &ObsRow) -> Vec<&'a ObsRow> {
    k.rows
        .iter()
        .filter(|o| {
            o.obs.layout != r.obs.layout
                && o.obs.mem_bytes == r.obs.mem_bytes
                && g.set
                    .terms
                    .iter()
                    .all(|t| t.feature(&o.ops) == t.feature(&r.ops))
        })
        .collect()
}

fn lolo_cause(g: &GroupModel, k: &KernelModel, r: &ObsRow, h: Held) -> String {
    let others: Vec<&ObsRow> = k
        .rows
        .iter()
        .filter(|o| o.obs.layout != r.obs.layout)
        .collect();
    if !h.determined {
        let only: Vec<&str> = g
            .set
            .terms
            .iter()
            .filter(|t| t.feature(&r.ops) != 0.0 && others.iter().all(|o| t.feature(&o.ops) == 0.0))
            .map(|t| t.name)
            .collect();
        return if only.is_empty() {
            "not determined: its counts mix the terms in a proportion no other layout has".into()
        } else {
            format!(
                "not determined: no other layout has `{}`, so nothing prices it",
                only.join("`, `")
            )
        };
    }
    if let Some(t) = twins(g, k, r).first() {
        return format!(
            "its stand-in counts equal `{}`'s, yet it runs {} instructions ({} per PTE): work that depends on the folio and that the stand-in does not count",
            t.obs.layout,
            pct(r.value / t.value - 1.0),
            signed((r.value - t.value) / PER_PTE.feature(&r.ops).max(1.0))
        );
    }
    let ptes = PER_PTE.feature(&r.ops);
    let gap = r.value - h.predicted;
    let own = if ptes > 0.0 {
        format!("{} instructions per PTE", signed(gap / ptes))
    } else {
        format!("{} instructions per fork", signed(gap))
    };
    let rest: Vec<Row<'_>> = others.iter().map(|o| (&o.ops, o.value)).collect();
    let lev = fit::leverage(&g.set.terms, &rest, &r.ops).unwrap_or(1.0);
    if lev > 10.0 {
        // Twins elsewhere in the kernel are the usual misfit it inherits.
        let pair = k.rows.iter().find_map(|a| {
            let b = twins(g, k, a)
                .into_iter()
                .find(|b| (b.value / a.value - 1.0).abs() > 0.005)?;
            Some((a, b))
        });
        let twins = pair.map_or(String::new(), |(a, b)| {
            format!(
                "; e.g. `{}` and `{}` have the same stand-in counts but differ by {}",
                a.obs.layout,
                b.obs.layout,
                pct(b.value / a.value - 1.0)
            )
        });
        return format!(
            "it runs {own} beyond its prediction, a difference of layouts {lev:.0}× its size: a misfit of {} there is {} here{twins}",
            pct(h.error.abs() / lev).trim_start_matches('+'),
            pct(h.error.abs()).trim_start_matches('+')
        );
    }
    format!(
        "it runs {own} beyond what the other layouts' costs give its counts: a cost the stand-in does not count"
    )
}

/// Why `src`'s costs mispredict a row of `dst`: the part of the fork whose instructions moved
/// most between the kernels' own fits, per its unit (per PTE, per table, per fork).
fn transfer_cause(
    g: &GroupModel,
    src: &KernelModel,
    dst: &KernelModel,
    r: &ObsRow,
    h: Held,
) -> String {
    let terms: Vec<(&Term, usize)> = g.set.terms.iter().zip(0..).collect();
    if !h.determined {
        let missing: Vec<&str> = terms
            .iter()
            .filter(|(t, _)| {
                t.feature(&r.ops) != 0.0 && src.rows.iter().all(|o| t.feature(&o.ops) == 0.0)
            })
            .map(|(t, _)| t.name)
            .collect();
        let unsplit: Vec<&str> = terms
            .iter()
            .filter(|(t, j)| {
                t.feature(&r.ops) != 0.0 && !src.fit.identified[*j] && !missing.contains(&t.name)
            })
            .map(|(t, _)| t.name)
            .collect();
        let mut why = Vec::new();
        if !missing.is_empty() {
            why.push(format!("runs no `{}`", missing.join("`, `")));
        }
        if !unsplit.is_empty() {
            why.push(format!(
                "does not identify `{}` (only sums with the terms it moves with)",
                unsplit.join("`, `")
            ));
        }
        return format!("not determined: {} {}", src.kernel.label, why.join(" and "));
    }
    let part_of = |k: &KernelModel, p: Part| -> f64 {
        terms
            .iter()
            .filter(|(t, _)| t.part == p)
            .map(|(t, j)| k.fit.cost[*j] * t.feature(&r.ops))
            .sum()
    };
    let (part, delta) = [Part::Outside, Part::Table, Part::CopyPath]
        .into_iter()
        .map(|p| (p, part_of(dst, p) - part_of(src, p)))
        .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
        .expect("three parts");
    let (unit, n) = match part {
        Part::Outside => ("per fork", 1.0),
        Part::Table => ("per table", PER_TABLE.feature(&r.ops)),
        Part::CopyPath => ("per PTE", PER_PTE.feature(&r.ops)),
    };
    let n = n.max(1.0);
    format!(
        "the {}: {} instructions {unit} at {}'s costs, {} at {}'s own ({} of this fork)",
        part.name(),
        count(part_of(src, part) / n),
        src.kernel.label,
        count(part_of(dst, part) / n),
        dst.kernel.label,
        pct(delta / r.value)
    )
}
