//! The journal of a suite run in progress (`<name>.partial` beside the result file it becomes):
//! JSON lines, a header holding the file's metadata (a [`ResultFile`] without contexts and
//! runs), then every context, run and skipped group as it arrives, each line flushed. A run
//! that fails late or is interrupted keeps what it measured; [`load`] reads such a journal
//! back as a result file (a torn last line, from a kill mid-write, is dropped).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{RealContext, ResultFile, ResultsError, RunRecord, fsio};

/// The extension of journals.
pub const EXTENSION: &str = "partial";

/// Marks the header line (and tells a journal from other JSON lines).
const MAGIC: &str = "forkbench-journal";

/// One journal line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Line {
    /// First line: the file's metadata; `journal` is [`MAGIC`].
    Header {
        journal: String,
        file: Box<ResultFile>,
    },
    /// Context indexes in runs count over the whole journal.
    Context(Box<RealContext>),
    Run(Box<RunRecord>),
    /// A group the runner could not do here, and why.
    Skipped {
        group: String,
        reason: String,
    },
}

/// The journal path of a result file: `x.json` → `x.json.partial`.
pub fn path_for(result: &Path) -> PathBuf {
    let mut s = result.as_os_str().to_owned();
    s.push(".");
    s.push(EXTENSION);
    PathBuf::from(s)
}

/// Whether `path` names a journal.
pub fn is_journal(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == EXTENSION)
}

/// An open journal being appended to.
#[derive(Debug)]
pub struct Writer {
    path: PathBuf,
    file: fs::File,
    /// Contexts written so far (runs' context indexes must be below it).
    contexts: u32,
    pub runs: usize,
}

impl Writer {
    /// Create a new journal at `path` (never over an existing file) and write its header: the
    /// metadata of `meta` (its contexts and runs are not written).
    pub fn create(path: &Path, meta: &ResultFile) -> Result<Writer, ResultsError> {
        let io = |source| {
            ResultsError::Fs(fsio::FsError::Io {
                path: path.to_owned(),
                source,
            })
        };
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    ResultsError::Exists {
                        path: path.to_owned(),
                    }
                } else {
                    io(e)
                }
            })?;
        let mut w = Writer {
            path: path.to_owned(),
            file,
            contexts: 0,
            runs: 0,
        };
        let header = ResultFile {
            contexts: Vec::new(),
            runs: Vec::new(),
            ..meta.clone()
        };
        let first = w.line(&Line::Header {
            journal: MAGIC.into(),
            file: Box::new(header),
        });
        // The header reaching the disk is the proof that results can be saved here.
        if let Err(e) = first.and_then(|()| w.file.sync_all().map_err(io)) {
            let _ = fs::remove_file(path);
            return Err(e);
        }
        Ok(w)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn line(&mut self, l: &Line) -> Result<(), ResultsError> {
        let mut text = serde_json::to_string(l).expect("journal lines serialise");
        text.push('\n');
        self.file
            .write_all(text.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|source| {
                ResultsError::Fs(fsio::FsError::Io {
                    path: self.path.clone(),
                    source,
                })
            })
    }

    /// Append a context; returns its index in the journal.
    pub fn context(&mut self, c: &RealContext) -> Result<u32, ResultsError> {
        self.line(&Line::Context(Box::new(c.clone())))?;
        self.contexts += 1;
        Ok(self.contexts - 1)
    }

    /// Append a run (its context index already counts over the journal).
    pub fn run(&mut self, r: &RunRecord) -> Result<(), ResultsError> {
        self.line(&Line::Run(Box::new(r.clone())))?;
        self.runs += 1;
        Ok(())
    }

    /// Record a skipped group.
    pub fn skipped(&mut self, group: &str, reason: &str) -> Result<(), ResultsError> {
        self.line(&Line::Skipped {
            group: group.into(),
            reason: reason.into(),
        })
    }
}

/// Read a journal back as a result file: the header's metadata with every context and run,
/// and `config.skipped` extended by the skipped groups; `config.partial` is `true`.
pub fn load(path: &Path) -> Result<ResultFile, ResultsError> {
    let text = fsio::read(path)?;
    parse(&text, path)
}

/// [`load`] on text; `path` names it in errors.
pub fn parse(text: &str, path: &Path) -> Result<ResultFile, ResultsError> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut file: Option<ResultFile> = None;
    let mut skipped = Vec::new();
    for (i, raw) in lines.iter().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let line: Line = match serde_json::from_str(raw) {
            Ok(l) => l,
            // A last line without its newline was torn by a kill mid-write.
            Err(_) if i + 1 == lines.len() && !raw.ends_with('\n') && file.is_some() => break,
            Err(source) => {
                return Err(ResultsError::Parse {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        match (line, file.as_mut()) {
            (Line::Header { journal, file: f }, None) if journal == MAGIC => {
                if f.schema != crate::SCHEMA_VERSION {
                    return Err(ResultsError::Schema {
                        path: path.to_owned(),
                        found: f.schema,
                    });
                }
                file = Some(*f);
            }
            (Line::Context(c), Some(f)) => f.contexts.push(*c),
            (Line::Run(r), Some(f)) => {
                if r.real
                    .as_ref()
                    .is_some_and(|x| x.context as usize >= f.contexts.len())
                {
                    return Err(ResultsError::Journal {
                        path: path.to_owned(),
                        why: format!("line {}: a run refers to a context not written", i + 1),
                    });
                }
                f.runs.push(*r);
            }
            (Line::Skipped { group, reason }, Some(_)) => {
                skipped.push(serde_json::json!({"group": group, "reason": reason}));
            }
            (_, _) => {
                return Err(ResultsError::Journal {
                    path: path.to_owned(),
                    why: format!("line {}: a journal starts with one header line", i + 1),
                });
            }
        }
    }
    let mut f = file.ok_or_else(|| ResultsError::Journal {
        path: path.to_owned(),
        why: "empty journal (no header line)".into(),
    })?;
    if let Some(obj) = f.config.as_object_mut() {
        obj.insert("partial".into(), serde_json::Value::Bool(true));
        let list = obj
            .entry("skipped")
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if let Some(a) = list.as_array_mut() {
            a.extend(skipped);
        }
    }
    Ok(f)
}
