//! The printed report of a calibration: the profile's caption, real vs model per layout, the
//! cost terms, cross-validation, the calibrated prediction of the other strategy and the
//! diagnostic fits.

use contract::fmt_ns;

use super::fit::{FITTED_STRATEGY, OTHER_STRATEGY};
use crate::profile::{CostProfile, fmt_cost_ns};

fn pct(x: f64) -> String {
    format!("{:+.1}%", x * 100.0)
}

/// Human-readable report of a profile (markdown).
pub fn render_report(p: &CostProfile) -> String {
    let mut s = String::new();
    s.push_str(&format!("{}\n\n", p.caption()));
    s.push_str(
        "| layout | real fork (mean ± sd of run means) | model before (measured userspace) | model after (fitted costs × counts) | residual |\n|---|---|---|---|---|\n",
    );
    for l in &p.layouts {
        s.push_str(&format!(
            "| {} | {} ± {} | {} | {} | {} |\n",
            l.layout,
            fmt_ns(l.real_mean_ns),
            fmt_ns(l.real_std_ns),
            l.model_measured_ns.map_or("—".into(), fmt_ns),
            fmt_ns(l.fitted_ns),
            pct(l.residual_rel)
        ));
    }
    let base = p
        .layouts
        .iter()
        .find(|l| l.order.is_some_and(|o| o.get() == 0));
    if let Some(b) = base {
        s.push_str("\n| ratio | real | model before | model after |\n|---|---|---|---|\n");
        for l in p
            .layouts
            .iter()
            .filter(|l| l.order.is_some_and(|o| o.get() > 0))
        {
            let before = match (l.model_measured_ns, b.model_measured_ns) {
                (Some(x), Some(y)) => format!("{:.3}", x / y),
                _ => "—".into(),
            };
            s.push_str(&format!(
                "| {}/{} | {:.3} | {} | {:.3} |\n",
                l.layout,
                b.layout,
                l.real_mean_ns / b.real_mean_ns,
                before,
                l.fitted_ns / b.fitted_ns
            ));
        }
    }
    s.push_str("\n| cost term | ns | source | feature |\n|---|---|---|---|\n");
    for t in &p.costs {
        let f: Vec<&str> = t.counters.iter().map(|(c, _)| c.name()).collect();
        s.push_str(&format!(
            "| {} | {:.3} | {} | {} |\n",
            t.name,
            t.ns,
            t.source,
            if f.is_empty() {
                "1 per fork".into()
            } else {
                f.join(" + ")
            }
        ));
    }
    s.push_str("\n| cross-validation: held out | fitted on | predicted | real | error |\n|---|---|---|---|---|\n");
    for c in &p.cross_validation {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            c.held_out,
            c.fitted_on
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            fmt_ns(c.predicted_ns),
            fmt_ns(c.real_ns),
            pct(c.error_rel)
        ));
    }
    // Calibrated prediction of the other strategy against the fitted one.
    let mut rows = String::new();
    for pr in p
        .predictions
        .iter()
        .filter(|x| x.strategy == OTHER_STRATEGY)
    {
        if let Some(up) = p
            .predictions
            .iter()
            .find(|x| x.strategy == FITTED_STRATEGY && x.layout == pr.layout)
        {
            let meas = match (up.model_measured_ns, pr.model_measured_ns) {
                (Some(u), Some(m)) => pct(u / m - 1.0),
                _ => "—".into(),
            };
            rows.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                pr.layout,
                fmt_ns(pr.predicted_ns),
                fmt_ns(up.predicted_ns),
                pct(up.predicted_ns / pr.predicted_ns - 1.0),
                meas
            ));
        }
    }
    if !rows.is_empty() {
        s.push_str(&format!(
            "\n| layout | {OTHER_STRATEGY} predicted | {FITTED_STRATEGY} predicted | change (calibrated) | change (model measured) |\n|---|---|---|---|---|\n{rows}"
        ));
    }
    for a in &p.alternative_fits {
        let c: Vec<String> = a
            .costs
            .iter()
            .filter(|t| t.source == "fitted")
            .map(|t| format!("{} {}", t.name, fmt_cost_ns(t.ns)))
            .collect();
        let r: Vec<String> = a
            .residual_rel
            .iter()
            .map(|(l, x)| format!("{l} {}", pct(*x)))
            .collect();
        s.push_str(&format!(
            "\ndiagnostic fit \"{}\": {}; residuals {}. {}\n",
            a.name,
            c.join(", "),
            r.join(", "),
            a.note
        ));
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
