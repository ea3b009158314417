//! The printed report of a calibration and the cost-model section of `results/fidelity.md`:
//! the profile's caption, real vs model per layout, the fitted costs with their uncertainty, the
//! leave-one-layout-out table of the selected feature set, every candidate set's held-out
//! errors, and the calibrated prediction of the other strategies.

use contract::fmt_ns;

use super::fit::FITTED_STRATEGY;
use crate::profile::{CostProfile, fmt_cost_ns};

fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:+.1}%", x * 100.0)
    } else {
        "—".into()
    }
}

/// The fitted costs with their bootstrap sd, and what each one stands for.
fn cost_table(p: &CostProfile) -> String {
    let mut s = String::from(
        "| cost term | ns per unit | ± sd (bootstrap) | source | what it stands for |\n|---|---|---|---|---|\n",
    );
    for t in &p.costs {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            t.name,
            fmt_cost_ns(t.ns),
            t.ns_sd.map_or("—".into(), fmt_cost_ns),
            t.source,
            t.description
        ));
    }
    s
}

/// Leave-one-layout-out of the selected feature set.
fn held_out_table(p: &CostProfile) -> String {
    let mut s = String::from(
        "| held-out layout | real (median of run means) | predicted from the others | error | determined by the others |\n|---|---|---|---|---|\n",
    );
    for c in &p.cross_validation {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            c.held_out,
            fmt_ns(c.real_ns),
            fmt_ns(c.predicted_ns),
            pct(c.error_rel),
            if c.determined {
                "yes"
            } else {
                "no: its own path is in no other layout"
            }
        ));
    }
    s
}

/// Every candidate set's held-out error per layout (columns) and its worst.
fn candidates_table(p: &CostProfile) -> String {
    let Some(first) = p.feature_sets.first() else {
        return String::new();
    };
    let layouts: Vec<String> = first
        .cross_validation
        .iter()
        .map(|c| c.held_out.to_string())
        .collect();
    let mut s = format!(
        "| feature set | worst | {} |\n|---|---|{}\n",
        layouts.join(" | "),
        "---|".repeat(layouts.len())
    );
    for e in &p.feature_sets {
        let mark = if e.name == p.feature_set {
            " (selected)"
        } else {
            ""
        };
        let cells: Vec<String> = e
            .cross_validation
            .iter()
            .map(|c| {
                let x = pct(c.error_rel);
                if c.determined { x } else { format!("{x}*") }
            })
            .collect();
        s.push_str(&format!(
            "| {}{mark} | {} | {} |\n",
            e.name,
            pct(e.worst_held_out_rel),
            cells.join(" | ")
        ));
    }
    let unscored: Vec<String> = first
        .cross_validation
        .iter()
        .filter(|c| !first.scored.contains(&c.held_out))
        .map(|c| format!("`{}`", c.held_out))
        .collect();
    s.push_str("\n\\* not determined by the other layouts (see above).");
    if !unscored.is_empty() {
        s.push_str(&format!(
            " \"worst\" leaves out {}: no feature set can predict it from the others (`untouched` is the only fork without page tables: it anchors the fixed cost).",
            unscored.join(", ")
        ));
    }
    s.push_str("\n\nWhat each set assumes:\n\n");
    for e in &p.feature_sets {
        s.push_str(&format!(
            "- **{}** ({}): {}.\n",
            e.name,
            e.terms.join(", "),
            e.idea
        ));
    }
    s
}

/// Real vs fitted per layout, with the model's measured userspace time before calibration.
fn layout_table(p: &CostProfile) -> String {
    let mut s = String::from(
        "| layout | real fork (median of run means, sd) | model before (measured userspace) | model after (fitted costs × counts) | residual |\n|---|---|---|---|---|\n",
    );
    for l in &p.layouts {
        s.push_str(&format!(
            "| {} | {} (sd {}) | {} | {} | {} |\n",
            l.layout,
            fmt_ns(l.real_mean_ns),
            fmt_ns(l.real_std_ns),
            l.model_measured_ns.map_or("—".into(), fmt_ns),
            fmt_ns(l.fitted_ns),
            pct(l.residual_rel)
        ));
    }
    s
}

/// Calibrated predictions of the other strategies against the fitted one, per layout.
fn strategy_table(p: &CostProfile) -> String {
    let mut rows = String::new();
    for fitted in p
        .predictions
        .iter()
        .filter(|x| x.strategy == FITTED_STRATEGY)
    {
        for other in p
            .predictions
            .iter()
            .filter(|x| x.layout == fitted.layout && x.strategy != FITTED_STRATEGY)
        {
            let meas = match (fitted.model_measured_ns, other.model_measured_ns) {
                (Some(f), Some(o)) => pct(f / o - 1.0),
                _ => "—".into(),
            };
            rows.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                fitted.layout,
                other.strategy,
                fmt_ns(other.predicted_ns),
                fmt_ns(fitted.predicted_ns),
                pct(fitted.predicted_ns / other.predicted_ns - 1.0),
                meas
            ));
        }
    }
    if rows.is_empty() {
        return rows;
    }
    format!(
        "| layout | other strategy | other, calibrated | {FITTED_STRATEGY}, calibrated | {FITTED_STRATEGY} vs other (calibrated) | same (model measured) |\n|---|---|---|---|---|---|\n{rows}"
    )
}

/// The cost-model section of `results/fidelity.md` (markdown, deterministic).
pub fn render_cost_model(p: &CostProfile) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "Profile: {}.\n\nSweep: {} (real fork, {} {}, {}x{} per layout, sched {}, interleaved round by round).\n\n",
        p.caption(),
        p.results_file.as_deref().unwrap_or("(not recorded)"),
        p.settings.mem,
        p.settings.mode,
        p.settings.iters,
        p.settings.runs,
        p.settings.sched
    ));
    s.push_str("### Fitted costs\n\n");
    s.push_str(&cost_table(p));
    s.push_str(&format!(
        "\n### Leave one layout out (\"{}\")\n\nEach layout is predicted by a fit on all the others (goal: within ±10%).\n\n",
        p.feature_set
    ));
    s.push_str(&held_out_table(p));
    s.push_str("\n### Candidate feature sets: held-out error per layout\n\n");
    s.push_str(&candidates_table(p));
    s.push_str("\n### Real and fitted per layout\n\n");
    s.push_str(&layout_table(p));
    s
}

/// Human-readable report of a profile (markdown).
pub fn render_report(p: &CostProfile) -> String {
    let mut s = render_cost_model(p);
    let st = strategy_table(p);
    if !st.is_empty() {
        s.push_str("\n### Other strategies priced with these costs\n\n");
        s.push_str(&st);
    }
    s.push_str(&format!(
        "\nfull-feature rank {} of {}; fit rms {:.2}%\n",
        p.full_feature_rank.0,
        p.full_feature_rank.1,
        p.residual_rms_rel * 100.0
    ));
    for n in &p.notes {
        s.push_str(&format!("- {n}\n"));
    }
    s
}
