//! `forkbench doctor`: what the knob journal says about sysfs knobs that `forkbench real`
//! switched, and whether a run that died without restoring one (SIGKILL) left it switched.
//! Every journal entry gets one line; a knob is stale when its owner is gone and it differs from
//! its journalled original. `--repair` puts stale knobs back and drops the entries of dead
//! owners. Exit 0 when nothing is (left) stale, 1 when a stale knob was found and not repaired
//! or the journal could not be read.

use std::io::Write;

use hostenv::journal::{Journal, Status};

use crate::cli::DoctorArgs;

/// One line for one journal entry.
fn describe(s: &Status) -> String {
    let e = &s.entry;
    let path = e.path.display();
    let owner = if s.owner_alive {
        format!("pid {} (running)", e.owner_pid)
    } else {
        format!("pid {} (gone)", e.owner_pid)
    };
    match &s.current {
        None => format!("left over: {path} no longer exists; journalled by {owner}"),
        Some(now) if s.owner_alive => format!(
            "in use: {path} reads {now:?}, switched from {:?} to {:?} by {owner}",
            e.original, e.written
        ),
        Some(now) if *now == e.original => {
            format!("left over: {path} already reads its original {now:?}; journalled by {owner}")
        }
        Some(now) => format!(
            "stale: {path} reads {now:?}, not its journalled original {:?}; {owner} wrote {:?} and died before restoring it",
            e.original, e.written
        ),
    }
}

/// Run `forkbench doctor`, printing its report on stdout; returns the exit code.
pub fn run(args: &DoctorArgs) -> u8 {
    let journal = match &args.journal {
        Some(p) => Journal::at(p),
        None => Journal::default_location(),
    };
    match report(&journal, args.repair, &mut std::io::stdout().lock()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("forkbench: error: {e}");
            1
        }
    }
}

/// The report on `journal` (and, with `repair`, the repairs), written to `out`.
pub fn report(journal: &Journal, repair: bool, out: &mut dyn Write) -> Result<u8, String> {
    let io = |e: std::io::Error| format!("writing the report: {e}");
    let mut status = journal.status().map_err(|e| e.to_string())?;
    writeln!(
        out,
        "knob journal {}: {} entr{}",
        journal.path().display(),
        status.len(),
        if status.len() == 1 { "y" } else { "ies" }
    )
    .map_err(io)?;
    for s in &status {
        writeln!(out, "{}", describe(s)).map_err(io)?;
    }
    if repair {
        let repaired = journal.repair_stale(None).map_err(|e| e.to_string())?;
        for r in &repaired {
            writeln!(out, "repaired: {}", r.message()).map_err(io)?;
        }
        let before = status.len();
        status = journal.status().map_err(|e| e.to_string())?;
        let dropped = before.saturating_sub(status.len() + repaired.len());
        if dropped > 0 {
            writeln!(
                out,
                "dropped: {dropped} left-over entr{} of dead runs",
                if dropped == 1 { "y" } else { "ies" }
            )
            .map_err(io)?;
        }
    }
    let stale: Vec<&Status> = status.iter().filter(|s| s.is_stale()).collect();
    if stale.is_empty() {
        writeln!(out, "clean: no knob differs from its journalled original").map_err(io)?;
        return Ok(0);
    }
    for s in &stale {
        if repair {
            writeln!(out, "still {}", describe(s)).map_err(io)?;
        }
    }
    writeln!(
        out,
        "{} stale knob{}{}",
        stale.len(),
        if stale.len() == 1 { "" } else { "s" },
        if repair {
            " could not be repaired (in use by a process holding its lock?)"
        } else {
            "; `forkbench doctor --repair` restores the journalled originals"
        }
    )
    .map_err(io)?;
    Ok(1)
}
