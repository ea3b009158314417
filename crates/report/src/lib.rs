//! Renders forkbench results: groups result files into cases ([`cases`]), prints the LKML
//! thread's tables and an extended table with CI, p-value and verdict ([`tables`]), exports
//! CSV/JSON for pandas ([`export`]) and draws SVG plots ([`svg`]). Exact rows (guest
//! instruction counts) have tables of their own ([`exact`]); long kernel row names get short
//! ones and a legend ([`legend`]). It reads result files and
//! statistics; it measures nothing and does no file I/O.
//!
//! ```text
//! | kernel                |   mean_rel |   std_rel |
//! |:----------------------|-----------:|----------:|
//! | mm-unstable           |       0.0% |      0.8% |
//! ```

pub mod cases;
pub mod exact;
pub mod exact_pmu;
pub mod export;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod legend;
pub mod svg;
pub mod svg_style;
pub mod tables;

pub use cases::{Case, CaseError, Row, build_cases, kernel_order, kernel_row_name, layout_heading};
pub use tables::{
    Combined, EMULATED_NOTE, RealSpread, RelRow, combined_from_cases, combined_table, emulated,
    extended_table, extended_tables, extended_tables_verbose, has_kernel_rows, pct, real_spread,
    rel_rows, thread_table, thread_tables, verdict_table,
};

#[cfg(test)]
mod exact_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod verdict_tests;
