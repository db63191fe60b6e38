//! The audit log: one JSON line per operation that signs, changes keys or
//! changes who may sign, and per refusal, chained by hashes.
//!
//! Every line carries `seq` (1, 2, …) and `prev`, the hex SHA-256 of the
//! previous line's bytes (without its newline; 64 zeros before the first
//! line ever written). A head file beside the log (`audit.log.head`) holds
//! the last `seq` and that line's hash, rewritten in place after every
//! append (each line is synced before the operation goes on; the head is
//! synced on rotation, and completed on open after a crash when the chain
//! passes through the line it names). The head also names where the chain
//! starts: the seq and `prev` of the oldest line kept (1 and [`GENESIS`];
//! a head written before it held the start means that). [`verify`] then
//! detects an edited line (the next `prev` or the head no longer match),
//! an inserted or deleted line (`seq` or `prev` break), deleted oldest
//! files (the first line kept is not where the head says the chain
//! starts; the error names the missing seqs) and a truncated tail (the
//! head names a line that is gone). Old files are removed on purpose with
//! [`AuditLog::prune`] (`tufd --audit-prune-before SEQ`), which records the
//! pruning in the chain and moves the start.
//!
//! A mutating operation writes a `begin` line before it starts (when that
//! write fails the operation is refused; it names the caller, the
//! operation, the repositories and up to 32 tags with digests), synced
//! while the operation runs; the daemon answers only after that sync
//! succeeded. Then it writes an `end` line with the outcome and answers;
//! the `end` line is synced right after the answer. So every operation
//! that was answered has a durable record, the chain is never broken
//! (lines are written in order and the head only moves to durable lines),
//! and a crash within one fdatasync after an answer can lose that
//! answer's `end` line only — the same trace as a crash during the
//! operation: a `begin` without its `end`. Syncs are shared (group
//! commit, [`AuditLog::sync_through`]): one fdatasync covers every line
//! written before it started, so concurrent operations do not queue for
//! one fsync each, and no answer waits for a sync of its own `end` line.
//! Requests wait for their lines without holding a thread: one syncer
//! thread serves them all ([`AuditLog::sync_later`]).
//! Refusal lines are synced before the refusal is answered. The head may
//! name a `begin` line. Rotation renames the log to
//! `audit.log.<last seq, 20 digits>`; the new file continues the sequence
//! and the chain.
//!
//! A write that fails part-way (a full disk, the file-size limit) is cut
//! back to the last complete line before the error is returned, so the
//! chain stays whole and the next line continues it. An incomplete last
//! line found at open (the daemon died between such a write and the cut)
//! is cut off, logged as an error and recorded in the chain (phase
//! `recovery`, with the bytes' length and hash); the head never names such
//! a line, as it was never synced. Any other line that does not parse
//! stops the daemon: that is corruption or tampering, not a torn write.
//!
//! The chain makes edits evident to whoever keeps the head (or a copy of a
//! recent head, e.g. in the journal: each append is also logged at debug
//! level); someone who can rewrite both files and every copy of the head
//! can rewrite history, as with any unsigned log.

use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// The `prev` of the first line ever written.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Size of the head file: fixed, so an in-place rewrite is one write.
/// (Heads written before the chain's start was recorded are 128 bytes;
/// the first rewrite makes them this size.)
const HEAD_LEN: usize = 256;

/// Why the audit log cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    #[error("audit log {path}: {problem}")]
    Broken { path: PathBuf, problem: String },
}

fn io<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(std::io::Error) -> AuditError + 'a {
    move |source| AuditError::Io {
        path: path.to_owned(),
        action,
        source,
    }
}

/// Where the audit log lives and when it rotates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// The log file (its head file is `<path>.head`).
    pub path: PathBuf,
    /// Rotate once the file is larger than this many bytes (0: never).
    pub rotate_bytes: u64,
}

/// The caller as recorded: a socket caller's credentials, or a registry
/// mirror client's network address (which has no uid).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CallerRecord {
    /// User ID (socket callers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Primary group ID (socket callers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// Process ID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// Executable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    /// Command name (`/proc/PID/comm`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
    /// User name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Network address (registry mirror clients).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// A signed tag.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TagRecord {
    /// Repository.
    pub repository: String,
    /// Tag.
    pub tag: String,
    /// `sha256:…`, or empty when the registry supplies it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub digest: String,
}

/// A published role version.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Published {
    /// Repository.
    pub repository: String,
    /// Role.
    pub role: String,
    /// New version.
    pub version: u64,
}

/// The phase of an operation a line records.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Allowed, about to run.
    Begin,
    /// Finished (see `result`).
    End,
    /// Refused by the policy; nothing was done.
    Denied,
    /// The oldest files of the log were removed (`tufd
    /// --audit-prune-before`; `detail` names them).
    Prune,
    /// The log itself was repaired when the daemon started (`detail` says
    /// how: an incomplete last line cut off).
    Recovery,
}

/// One audit record (the chain fields are added when it is written).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Entry {
    /// Phase.
    pub phase: Phase,
    /// Who.
    pub caller: CallerRecord,
    /// Operation name (policy vocabulary).
    pub operation: String,
    /// Repositories.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<String>,
    /// Roles asked for or written.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Keys used, created or deleted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub key_ids: Vec<String>,
    /// Tags and digests.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<TagRecord>,
    /// Metadata versions published.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub published: Vec<Published>,
    /// Free detail: signer, token, target of the operation.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// "ok", "denied", or "error: …".
    #[serde(skip_serializing_if = "String::is_empty")]
    pub result: String,
}

#[derive(Serialize)]
struct Line<'a> {
    seq: u64,
    prev: &'a str,
    time: String,
    #[serde(flatten)]
    entry: &'a Entry,
}

struct Tail {
    file: std::sync::Arc<File>,
    seq: u64,
    last: String,
    /// Length of the file up to its last complete line.
    bytes: u64,
    /// A failed append left part of a line that could not be cut off yet:
    /// nothing is appended until it is.
    torn: bool,
}

/// An open, append-only audit log.
pub struct AuditLog {
    config: AuditConfig,
    head: File,
    /// Where the chain starts (kept in the head; moved by a pruning).
    start: Start,
    tail: Mutex<Tail>,
    /// The highest seq known durable (taken before `tail`, never after).
    synced: Mutex<u64>,
    /// `synced`, readable without waiting for a sync under way.
    durable: AtomicU64,
    /// The thread that syncs for async callers ([`AuditLog::sync_later`]),
    /// started on first use; `None` when it could not be started.
    syncer: OnceLock<Option<std::sync::mpsc::Sender<SyncRequest>>>,
}

/// A sync asked of the syncer thread: every line up to `seq`, and where to
/// say how it went.
struct SyncRequest {
    seq: u64,
    reply: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// Where a line stands on its way to the disk, for an async caller.
pub enum Durability {
    /// Durable already (an earlier sync covered it).
    Done,
    /// A sync that covers it is asked for; its outcome comes here.
    Pending(tokio::sync::oneshot::Receiver<Result<(), String>>),
}

impl Durability {
    /// Waits until the line is durable; the error says why it is not.
    pub async fn wait(self) -> Result<(), String> {
        match self {
            Durability::Done => Ok(()),
            Durability::Pending(rx) => rx
                .await
                .unwrap_or_else(|_| Err("the audit log's sync stopped".into())),
        }
    }
}

/// The syncer thread: takes every request waiting, syncs once through the
/// highest seq among them (one fdatasync for a burst of callers), answers
/// them all. Ends when the log is dropped.
fn serve_syncs(log: Weak<AuditLog>, requests: std::sync::mpsc::Receiver<SyncRequest>) {
    while let Ok(first) = requests.recv() {
        let mut batch = vec![first];
        batch.extend(requests.try_iter());
        let upto = batch.iter().map(|r| r.seq).max().unwrap_or(0);
        let result = match log.upgrade() {
            Some(log) => log.sync_through(upto).map_err(|e| e.to_string()),
            None => Err("the audit log is closed".into()),
        };
        if let Err(e) = &result {
            tracing::error!(error = %e, "audit log: a sync failed");
        }
        for r in batch {
            let _ = r.reply.send(result.clone());
        }
    }
}

/// `<path>.head`.
pub fn head_path(log: &Path) -> PathBuf {
    let mut p = log.as_os_str().to_owned();
    p.push(".head");
    PathBuf::from(p)
}

fn hash_line(line: &[u8]) -> String {
    hex::encode(Sha256::digest(line))
}

fn sync_dir(path: &Path) -> Result<(), AuditError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir, "syncing the directory"))
}

/// The head: last seq and hash, and where the chain starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Last sequence number written (0: none).
    pub seq: u64,
    /// Hash of that line.
    pub hash: String,
    /// Where the chain starts: the oldest line kept must carry this seq
    /// and `prev`, so deleting the oldest files shows.
    pub start: Start,
}

/// The first line of a chain: its seq and its `prev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// Sequence number of the oldest line kept (1 for a log whose old
    /// files were never removed).
    pub seq: u64,
    /// Its `prev` ([`GENESIS`] for seq 1).
    pub prev: String,
}

impl Start {
    /// The start of a log whose old files were never removed.
    pub fn genesis() -> Self {
        Start {
            seq: 1,
            prev: GENESIS.to_owned(),
        }
    }
}

fn read_head(path: &Path) -> Result<Option<Head>, AuditError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path, "reading the head")(e)),
    };
    let broken = || AuditError::Broken {
        path: path.to_owned(),
        problem: "the head file is not \"SEQ HASH [START_SEQ START_PREV]\"".into(),
    };
    let mut parts = text.split_whitespace();
    let seq = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(broken)?;
    let hash = parts.next().filter(|h| h.len() == 64).ok_or_else(broken)?;
    // A head without a start was written before the start was recorded,
    // when old files were never removed: the chain starts at seq 1.
    let start = match parts.next() {
        None => Start::genesis(),
        Some(s) => Start {
            seq: s.parse().map_err(|_| broken())?,
            prev: parts
                .next()
                .filter(|h| h.len() == 64)
                .ok_or_else(broken)?
                .to_owned(),
        },
    };
    Ok(Some(Head {
        seq,
        hash: hash.to_owned(),
        start,
    }))
}

/// Rewrites the head in place; `sync` also makes it durable. Appends do
/// not sync it: the line itself is synced, and a head that lags after a
/// crash is completed on the next open (the chain must pass through it).
fn write_head(file: &File, path: &Path, head: &Head, sync: bool) -> Result<(), AuditError> {
    let mut buf = format!(
        "{} {} {} {}\n",
        head.seq, head.hash, head.start.seq, head.start.prev
    )
    .into_bytes();
    buf.resize(HEAD_LEN, b' ');
    buf[HEAD_LEN - 1] = b'\n';
    file.write_all_at(&buf, 0)
        .and_then(|()| if sync { file.sync_data() } else { Ok(()) })
        .map_err(io(path, "writing the head"))
}

/// The hash of the line with sequence number `seq` in `files`.
fn hash_at(files: &[PathBuf], seq: u64) -> Result<Option<String>, AuditError> {
    for f in files {
        let file = match File::open(f) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(f, "opening")(e)),
        };
        for line in BufReader::new(file).split(b'\n') {
            let line = line.map_err(io(f, "reading"))?;
            let v: serde_json::Value = serde_json::from_slice(&line).unwrap_or_default();
            if v["seq"].as_u64() == Some(seq) {
                return Ok(Some(hash_line(&line)));
            }
        }
    }
    Ok(None)
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Files checked, oldest first.
    pub files: Vec<PathBuf>,
    /// Lines checked.
    pub lines: u64,
    /// First and last sequence numbers.
    pub first_seq: u64,
    /// Last sequence number (matches the head).
    pub last_seq: u64,
    /// Hash of the last line.
    pub last_hash: String,
    /// Lines after the one the head names (written since the head last
    /// moved; chained, but a truncation among them would not show).
    pub past_head: u64,
}

/// The rotated files of `log` (oldest first), then `log` itself.
fn chain_files(log: &Path) -> Result<Vec<PathBuf>, AuditError> {
    let dir = log
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = log
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!("{name}.");
    let mut rotated: Vec<(u64, PathBuf)> = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io(dir, "listing the directory"))? {
        let e = e.map_err(io(dir, "listing the directory"))?;
        let file = e.file_name().to_string_lossy().into_owned();
        if let Some(n) = file
            .strip_prefix(&prefix)
            .and_then(|s| s.parse::<u64>().ok())
        {
            rotated.push((n, e.path()));
        }
    }
    rotated.sort();
    let mut files: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    files.push(log.to_owned());
    Ok(files)
}

/// Where a walk along the chain stands.
#[derive(Default)]
struct Walk {
    /// Seq and hash of the last line read.
    seq: Option<u64>,
    prev: Option<String>,
    /// Lines read.
    lines: u64,
    /// The first line read: its seq, its `prev`, and its file.
    first: Option<(u64, String, PathBuf)>,
    /// The incomplete last line of the current file, when it may be cut.
    torn: Option<Torn>,
}

/// An incomplete last line (a write cut short): where it starts in the
/// current file and its bytes.
#[derive(Debug, Clone)]
struct Torn {
    offset: u64,
    bytes: Vec<u8>,
}

/// Walks one file's lines, continuing `w`. An incomplete last line (no
/// newline) is an error, unless `cut` (the current file, at open): then it
/// is left in `w.torn` for the caller to cut off.
fn walk(path: &Path, w: &mut Walk, current: bool, cut: bool) -> Result<(), AuditError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(path, "opening")(e)),
    };
    let broken = |n: usize, problem: String| AuditError::Broken {
        path: path.to_owned(),
        problem: format!("line {n}: {problem}"),
    };
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let mut offset = 0u64;
    let mut n = 0;
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(io(path, "reading"))?;
        if read == 0 {
            break;
        }
        n += 1;
        if line.pop_if(|b| *b == b'\n').is_none() {
            if cut && current {
                w.torn = Some(Torn {
                    offset,
                    bytes: std::mem::take(&mut line),
                });
                break;
            }
            return Err(broken(
                n,
                format!(
                    "incomplete ({} byte(s) without a newline): a write was cut short (a full disk, a file size limit, a crash){}",
                    line.len(),
                    if current {
                        "; tufd cuts an incomplete last line off when it starts, and records the cut in the chain"
                    } else {
                        ""
                    }
                ),
            ));
        }
        offset += read as u64;
        let v: serde_json::Value = serde_json::from_slice(&line)
            .map_err(|e| broken(n, format!("not a JSON record ({e})")))?;
        let s = v["seq"]
            .as_u64()
            .ok_or_else(|| broken(n, "no seq".into()))?;
        let p = v["prev"]
            .as_str()
            .ok_or_else(|| broken(n, "no prev".into()))?;
        match (&w.seq, &w.prev) {
            (Some(last), Some(h)) => {
                if s != last + 1 {
                    return Err(broken(
                        n,
                        format!(
                            "seq {s} follows seq {last}: {} line(s) deleted or inserted",
                            if s > last + 1 {
                                "a"
                            } else {
                                "an inserted or reordered"
                            }
                        ),
                    ));
                }
                if p != h {
                    return Err(broken(
                        n,
                        format!(
                            "seq {s}: prev does not match the hash of seq {last}: that line was edited, or lines were replaced"
                        ),
                    ));
                }
            }
            _ => {
                if s == 1 && p != GENESIS {
                    return Err(broken(n, "seq 1 does not start the chain".into()));
                }
                w.first = Some((s, p.to_owned(), path.to_owned()));
            }
        }
        w.seq = Some(s);
        w.prev = Some(hash_line(&line));
        w.lines += 1;
    }
    Ok(())
}

/// Checks the chain of `log` (and its rotated predecessors) against its
/// head file: every line follows the one before, the oldest line kept is
/// where the head says the chain starts, and the newest reaches the head.
pub fn verify(log: &Path) -> Result<Report, AuditError> {
    verify_cutting(log, false).map(|(report, _)| report)
}

/// [`verify`]; with `cut`, an incomplete last line of the current file is
/// returned instead of refused (the report covers the lines before it).
fn verify_cutting(log: &Path, cut: bool) -> Result<(Report, Option<Torn>), AuditError> {
    let files = chain_files(log)?;
    let mut w = Walk::default();
    for (i, f) in files.iter().enumerate() {
        walk(f, &mut w, i + 1 == files.len(), cut)?;
    }
    let head_file = head_path(log);
    let head = read_head(&head_file)?.ok_or_else(|| AuditError::Broken {
        path: head_file.clone(),
        problem: "the head file is missing".into(),
    })?;
    let start = &head.start;
    match &w.first {
        Some((seq, _, file)) if *seq > start.seq => {
            return Err(AuditError::Broken {
                path: log.to_owned(),
                problem: format!(
                    "seq {}..{} missing: the oldest file(s) of the log were deleted (the head records the chain starting at seq {}; the oldest file present, {}, starts at seq {seq})",
                    start.seq,
                    seq - 1,
                    start.seq,
                    file.display()
                ),
            });
        }
        Some((seq, _, file)) if *seq < start.seq => {
            // Lines older than the start: a pruning that stopped before
            // its files were removed. The chain must pass through the
            // start.
            let before = match start.seq {
                0 | 1 => None,
                s => hash_at(&files, s - 1)?,
            };
            if before.as_deref() != Some(start.prev.as_str()) {
                return Err(AuditError::Broken {
                    path: log.to_owned(),
                    problem: format!(
                        "the head records the chain starting at seq {} (prev {}), but the chain from seq {seq} in {} does not pass through it: lines were replaced or the head was edited",
                        start.seq,
                        start.prev,
                        file.display()
                    ),
                });
            }
        }
        Some((seq, prev, file)) if *seq != start.seq || *prev != start.prev => {
            return Err(AuditError::Broken {
                path: log.to_owned(),
                problem: format!(
                    "the chain starts at seq {seq} (prev {prev}) in {}, but the head records it starting at seq {} (prev {}): lines were replaced or the head was edited",
                    file.display(),
                    start.seq,
                    start.prev
                ),
            });
        }
        None if head.seq >= start.seq && head.seq > 0 => {
            return Err(AuditError::Broken {
                path: log.to_owned(),
                problem: format!(
                    "seq {}..{} missing: the head records them but no file of the log holds a line",
                    start.seq, head.seq
                ),
            });
        }
        _ => {}
    }
    let lines = w.lines;
    let first = w.first.as_ref().map(|(s, _, _)| *s);
    let (last_seq, last_hash) = (
        w.seq.unwrap_or(0),
        w.prev.unwrap_or_else(|| GENESIS.to_owned()),
    );
    if head.seq > last_seq {
        return Err(AuditError::Broken {
            path: log.to_owned(),
            problem: format!(
                "truncated: the head records seq {} but the log ends at seq {last_seq}",
                head.seq
            ),
        });
    }
    if head.seq < last_seq {
        // Lines written since the head last moved (an operation's `begin`
        // line, or a crash before the head reached the disk): the chain
        // must pass through the line the head names.
        if hash_at(&files, head.seq)?.as_deref() != Some(head.hash.as_str()) {
            return Err(AuditError::Broken {
                path: log.to_owned(),
                problem: format!(
                    "seq {} does not hash to the head: that line was edited",
                    head.seq
                ),
            });
        }
    } else if head.hash != last_hash {
        return Err(AuditError::Broken {
            path: log.to_owned(),
            problem: format!("seq {last_seq} does not hash to the head: the last line was edited"),
        });
    }
    Ok((
        Report {
            files,
            lines,
            first_seq: first.unwrap_or(0),
            last_seq,
            last_hash,
            past_head: last_seq - head.seq,
        },
        w.torn,
    ))
}

impl AuditLog {
    /// Opens (or creates) the log, after checking its chain against the
    /// head. Lines past the head whose chain passes through the head's line
    /// (a `begin` line, a crash before the head reached the disk) move the
    /// head; anything else broken stops the daemon.
    pub fn open(config: AuditConfig) -> Result<Self, AuditError> {
        let path = config.path.clone();
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io(dir, "creating the directory"))?;
        }
        let hp = head_path(&path);
        let head_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o640)
            .open(&hp)
            .map_err(io(&hp, "opening the head"))?;
        let (seq, last, start, torn) = if std::fs::metadata(&hp).map(|m| m.len()).unwrap_or(0) == 0
        {
            // A new log: nothing may be there yet.
            let files = chain_files(&path)?;
            let existing = files
                .iter()
                .any(|f| std::fs::metadata(f).is_ok_and(|m| m.len() > 0));
            if existing {
                return Err(AuditError::Broken {
                    path: path.clone(),
                    problem: "the log has lines but its head file is missing or empty; run `tufd --audit-verify` and move the log away to start a new one".into(),
                });
            }
            let start = Start::genesis();
            // The start is in the head before the first line is.
            write_head(
                &head_file,
                &hp,
                &Head {
                    seq: 0,
                    hash: GENESIS.to_owned(),
                    start: start.clone(),
                },
                true,
            )?;
            (0, GENESIS.to_owned(), start, None)
        } else {
            let (r, torn) = verify_cutting(&path, true)?;
            let start = read_head(&hp)?
                .map(|h| h.start)
                .unwrap_or_else(Start::genesis);
            if let Some(t) = &torn {
                cut_torn(&path, t, r.last_seq)?;
            }
            if r.past_head > 0 {
                tracing::info!(
                    head = r.last_seq - r.past_head,
                    seq = r.last_seq,
                    "audit log: moving the head past lines written after it"
                );
                write_head(
                    &head_file,
                    &hp,
                    &Head {
                        seq: r.last_seq,
                        hash: r.last_hash.clone(),
                        start: start.clone(),
                    },
                    true,
                )?;
            }
            (r.last_seq, r.last_hash, start, torn)
        };
        let file = std::sync::Arc::new(open_append(&path)?);
        let bytes = file
            .metadata()
            .map_err(io(&path, "reading metadata"))?
            .len();
        sync_dir(&path)?;
        let log = AuditLog {
            config,
            head: head_file,
            start,
            tail: Mutex::new(Tail {
                file,
                seq,
                last,
                bytes,
                torn: false,
            }),
            synced: Mutex::new(seq),
            durable: AtomicU64::new(seq),
            syncer: OnceLock::new(),
        };
        if let Some(t) = torn {
            log.record_cut(&t, seq)?;
        }
        Ok(log)
    }

    /// Records in the chain that an incomplete last line was cut off at
    /// open. When that record cannot be written, the cut bytes are put
    /// back (so the next start cuts them again and records it then).
    fn record_cut(&self, torn: &Torn, after: u64) -> Result<(), AuditError> {
        let path = &self.config.path;
        let entry = Entry {
            phase: Phase::Recovery,
            caller: this_process(),
            operation: "audit-recover".into(),
            repositories: vec![],
            roles: vec![],
            key_ids: vec![],
            tags: vec![],
            published: vec![],
            detail: format!(
                "cut {} incomplete byte(s) after seq {after} at offset {} of {} (a write cut short by a full disk, a file size limit or a crash; never synced, so never answered); sha256 of the bytes cut {}",
                torn.bytes.len(),
                torn.offset,
                path.display(),
                hash_line(&torn.bytes)
            ),
            result: "ok".into(),
        };
        if let Err(e) = self.append(&entry) {
            tracing::error!(error = %e, "audit log: the record of the cut cannot be written; putting the cut bytes back");
            let tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
            let restored = tail
                .file
                .set_len(torn.offset)
                .and_then(|()| (&*tail.file).write_all(&torn.bytes))
                .and_then(|()| tail.file.sync_data());
            if let Err(r) = restored {
                tracing::error!(error = %r, "audit log: the cut bytes cannot be put back");
            }
            return Err(e);
        }
        Ok(())
    }

    /// Removes the rotated files that hold only lines before seq
    /// `before`, for an operator who keeps older records elsewhere. First a
    /// record of the pruning (phase `prune`, naming the files and seqs) is
    /// appended to the chain, then the head records the chain starting at
    /// the oldest line kept, then the files are removed: verification then
    /// passes, and still fails for any other file removed. (Stopped
    /// between the two last steps, the older lines stay and still verify.)
    /// The caller holds the daemon's state lock, so nothing else appends.
    pub fn prune(&mut self, before: u64) -> Result<Pruned, AuditError> {
        let path = self.config.path.clone();
        let files = chain_files(&path)?;
        let rotated = &files[..files.len() - 1];
        let remove: Vec<PathBuf> = rotated
            .iter()
            .take_while(|f| rotated_last_seq(f).is_some_and(|last| last < before))
            .cloned()
            .collect();
        let Some(until) = remove.last().and_then(|f| rotated_last_seq(f)) else {
            return Err(AuditError::Broken {
                path,
                problem: match rotated.first() {
                    Some(f) => format!(
                        "nothing to prune before seq {before}: the oldest file, {}, holds lines up to seq {}",
                        f.display(),
                        rotated_last_seq(f).unwrap_or(0)
                    ),
                    None => format!(
                        "nothing to prune before seq {before}: the log has no rotated files"
                    ),
                },
            });
        };
        let names: Vec<String> = remove.iter().map(|f| f.display().to_string()).collect();
        let record = self.append(&Entry {
            phase: Phase::Prune,
            caller: this_process(),
            operation: "audit-prune".into(),
            repositories: vec![],
            roles: vec![],
            key_ids: vec![],
            tags: vec![],
            published: vec![],
            detail: format!(
                "removing seq {}..{until} ({} file(s): {}); the chain starts at seq {} from now on",
                self.start.seq,
                remove.len(),
                names.join(", "),
                until + 1
            ),
            result: "ok".into(),
        })?;
        // Appending may have rotated the log: list the files again.
        let next = chain_files(&path)?
            .get(remove.len())
            .cloned()
            .unwrap_or_else(|| path.clone());
        let start = first_line(&next)?
            .filter(|s| s.seq == until + 1)
            .ok_or_else(|| AuditError::Broken {
                path: next.clone(),
                problem: format!(
                    "the file after the ones to remove does not start at seq {}",
                    until + 1
                ),
            })?;
        self.start = start.clone();
        {
            let tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
            write_head(
                &self.head,
                &head_path(&path),
                &Head {
                    seq: tail.seq,
                    hash: tail.last.clone(),
                    start: start.clone(),
                },
                true,
            )?;
        }
        for f in &remove {
            std::fs::remove_file(f).map_err(io(f, "removing"))?;
        }
        sync_dir(&path)?;
        tracing::warn!(files = ?names, start = start.seq, record, "audit log pruned");
        Ok(Pruned {
            files: remove,
            start,
            record,
        })
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.config.path
    }

    /// Appends `entry`, syncs it (fdatasync) and updates the head; returns
    /// its seq. Blocking: call it off the async runtime's worker threads.
    pub fn append(&self, entry: &Entry) -> Result<u64, AuditError> {
        self.write(entry, true).map(|(seq, _)| seq)
    }

    /// Appends `entry` without waiting for the disk; the head is not moved
    /// past it. Returns its seq and a handle whose `sync_data` makes it
    /// durable (any later [`append`](Self::append) does too). For the
    /// `begin` line of an operation, synced while the operation runs.
    pub fn append_unsynced(
        &self,
        entry: &Entry,
    ) -> Result<(u64, std::sync::Arc<File>), AuditError> {
        self.write(entry, false)
    }

    /// [`append_unsynced`](Self::append_unsynced) when no other thread
    /// holds the log (the usual case), else `None` without waiting: a
    /// rotation holds it across fdatasyncs, which a runtime thread must not
    /// wait for. The write itself is one small append to the page cache, so
    /// an async caller writes inline and moves to a blocking thread only on
    /// `None` (every such move waits for a thread to be scheduled: most of a
    /// millisecond under a burst of callers on two cores).
    pub fn try_append_unsynced(
        &self,
        entry: &Entry,
    ) -> Option<Result<(u64, std::sync::Arc<File>), AuditError>> {
        let mut tail = match self.tail.try_lock() {
            Ok(t) => t,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        Some(self.write_locked(&mut tail, entry))
    }

    /// [`append_unsynced`](Self::append_unsynced) for an async caller:
    /// inline when nobody else holds the log (see
    /// [`try_append_unsynced`](Self::try_append_unsynced)), else on a
    /// blocking thread. Returns the line's seq, for
    /// [`sync_later`](Self::sync_later).
    pub async fn append_soon(self: &Arc<Self>, entry: Entry) -> Result<u64, AuditError> {
        if let Some(written) = self.try_append_unsynced(&entry) {
            return written.map(|(seq, _)| seq);
        }
        let log = Arc::clone(self);
        tokio::task::spawn_blocking(move || log.append_unsynced(&entry).map(|(seq, _)| seq))
            .await
            .unwrap_or_else(|e| {
                Err(AuditError::Io {
                    path: self.config.path.clone(),
                    action: "appending",
                    source: std::io::Error::other(e),
                })
            })
    }

    fn write(
        &self,
        entry: &Entry,
        durable: bool,
    ) -> Result<(u64, std::sync::Arc<File>), AuditError> {
        let (seq, file) = self.write_line(entry)?;
        if durable {
            self.sync_through(seq)?;
        }
        Ok((seq, file))
    }

    /// Makes every line up to `seq` durable and moves the head to the last
    /// durable line. Group commit: one fdatasync covers every line written
    /// before it started, so concurrent operations share it (a caller
    /// whose line an earlier sync covered returns at once). Rotates the
    /// log once it is large enough, after everything in it is durable.
    pub fn sync_through(&self, seq: u64) -> Result<(), AuditError> {
        let path = &self.config.path;
        let mut synced = self.synced.lock().unwrap_or_else(|e| e.into_inner());
        if *synced >= seq {
            return Ok(());
        }
        let (upto, hash, file) = {
            let tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
            (tail.seq, tail.last.clone(), tail.file.clone())
        };
        crate::testhook::pause("audit-sync");
        file.sync_data().map_err(io(path, "appending"))?;
        write_head(
            &self.head,
            &head_path(path),
            &Head {
                seq: upto,
                hash: hash.clone(),
                start: self.start.clone(),
            },
            false,
        )?;
        *synced = upto;
        self.durable.store(upto, Ordering::Release);
        tracing::debug!(seq = upto, %hash, "audit log synced");
        if self.config.rotate_bytes == 0 {
            return Ok(());
        }
        let mut tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        if tail.bytes < self.config.rotate_bytes {
            return Ok(());
        }
        // Lines written since `upto` are in this file too: durable first.
        if tail.seq > upto {
            tail.file.sync_data().map_err(io(path, "appending"))?;
            write_head(
                &self.head,
                &head_path(path),
                &Head {
                    seq: tail.seq,
                    hash: tail.last.clone(),
                    start: self.start.clone(),
                },
                false,
            )?;
            *synced = tail.seq;
            self.durable.store(tail.seq, Ordering::Release);
        }
        let rotated = PathBuf::from(format!("{}.{:020}", path.display(), tail.seq));
        std::fs::rename(path, &rotated).map_err(io(path, "rotating"))?;
        tail.file = std::sync::Arc::new(open_append(path)?);
        tail.bytes = 0;
        self.head
            .sync_data()
            .map_err(io(path, "syncing the head"))?;
        sync_dir(path)?;
        tracing::info!(rotated = %rotated.display(), "audit log rotated");
        Ok(())
    }

    /// Asks for every line up to `seq` to be made durable, for an async
    /// caller: one thread syncs for every caller, once for all the
    /// requests waiting when it starts. (A blocking thread per caller
    /// waiting on [`sync_through`](Self::sync_through) would park a burst
    /// of 32 operations on 32 threads, and a slow disk would hold every
    /// audited request's thread for as long as it is slow, starving the
    /// blocking pool that token signing uses.)
    pub fn sync_later(self: &Arc<Self>, seq: u64) -> Durability {
        if self.durable.load(Ordering::Acquire) >= seq {
            return Durability::Done;
        }
        let (reply, rx) = tokio::sync::oneshot::channel();
        let request = SyncRequest { seq, reply };
        let unsent = match self.syncer() {
            Some(syncer) => match syncer.send(request) {
                Ok(()) => return Durability::Pending(rx),
                Err(e) => e.0,
            },
            None => request,
        };
        // No syncer thread (the system refused one): a blocking thread.
        let log = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let result = log.sync_through(unsent.seq).map_err(|e| e.to_string());
            let _ = unsent.reply.send(result);
        });
        Durability::Pending(rx)
    }

    fn syncer(self: &Arc<Self>) -> Option<&std::sync::mpsc::Sender<SyncRequest>> {
        self.syncer
            .get_or_init(|| {
                let (tx, rx) = std::sync::mpsc::channel();
                let log = Arc::downgrade(self);
                match std::thread::Builder::new()
                    .name("tufd-audit-sync".into())
                    .spawn(move || serve_syncs(log, rx))
                {
                    Ok(_) => Some(tx),
                    Err(e) => {
                        tracing::warn!(error = %e, "audit log: no sync thread; syncing on blocking threads");
                        None
                    }
                }
            })
            .as_ref()
    }

    /// Appends one line (not synced); returns its seq and the file it is in.
    fn write_line(&self, entry: &Entry) -> Result<(u64, std::sync::Arc<File>), AuditError> {
        let mut tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        self.write_locked(&mut tail, entry)
    }

    fn write_locked(
        &self,
        tail: &mut Tail,
        entry: &Entry,
    ) -> Result<(u64, std::sync::Arc<File>), AuditError> {
        let path = &self.config.path;
        let time = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let seq = tail.seq + 1;
        let mut line = serde_json::to_vec(&Line {
            seq,
            prev: &tail.last,
            time,
            entry,
        })
        .map_err(|e| AuditError::Broken {
            path: path.clone(),
            problem: format!("cannot encode a record: {e}"),
        })?;
        let hash = hash_line(&line);
        line.push(b'\n');
        if tail.torn {
            roll_back(tail, path)?;
        }
        if let Err(e) = write_bytes(&tail.file, &line) {
            // Part of the line may be written (a full disk, a file size
            // limit): cut it off, so the chain stays whole and the next
            // line continues it.
            if let Err(r) = roll_back(tail, path) {
                tracing::error!(error = %r, "audit log: a partial line cannot be cut off; nothing is appended until it is");
            }
            return Err(io(path, "appending")(e));
        }
        tail.seq = seq;
        tail.last = hash;
        tail.bytes += line.len() as u64;
        tracing::debug!(seq, hash = %tail.last, "audit record written");
        Ok((seq, tail.file.clone()))
    }
}

/// This process, as the caller of a record tufd writes of its own accord.
fn this_process() -> CallerRecord {
    CallerRecord {
        uid: Some(nix::unistd::geteuid().as_raw()),
        gid: Some(nix::unistd::getegid().as_raw()),
        pid: Some(std::process::id() as i32),
        exe: std::env::current_exe()
            .ok()
            .map(|e| e.display().to_string()),
        comm: Some("tufd".into()),
        user: None,
        address: None,
    }
}

/// The last seq a rotated file holds (its name's suffix).
fn rotated_last_seq(file: &Path) -> Option<u64> {
    file.file_name()?.to_str()?.rsplit('.').next()?.parse().ok()
}

/// The seq and `prev` of the first line of `file`.
fn first_line(file: &Path) -> Result<Option<Start>, AuditError> {
    let f = File::open(file).map_err(io(file, "opening"))?;
    let Some(line) = BufReader::new(f).split(b'\n').next() else {
        return Ok(None);
    };
    let line = line.map_err(io(file, "reading"))?;
    let v: serde_json::Value = serde_json::from_slice(&line).unwrap_or_default();
    Ok(v["seq"]
        .as_u64()
        .zip(v["prev"].as_str())
        .map(|(seq, prev)| Start {
            seq,
            prev: prev.to_owned(),
        }))
}

/// What [`AuditLog::prune`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pruned {
    /// The files removed, oldest first.
    pub files: Vec<PathBuf>,
    /// Where the chain starts now.
    pub start: Start,
    /// The seq of the record of the pruning.
    pub record: u64,
}

/// Cuts `tail`'s file back to its last complete line and syncs it (when
/// anything was written past it).
fn roll_back(tail: &mut Tail, path: &Path) -> Result<(), AuditError> {
    tail.torn = true;
    let len = tail
        .file
        .metadata()
        .map_err(io(path, "reading metadata"))?
        .len();
    if len != tail.bytes {
        tail.file
            .set_len(tail.bytes)
            .and_then(|()| tail.file.sync_data())
            .map_err(io(path, "cutting off a partial line"))?;
    }
    tail.torn = false;
    Ok(())
}

/// Cuts an incomplete last line off the log at open, loudly.
fn cut_torn(path: &Path, torn: &Torn, after: u64) -> Result<(), AuditError> {
    tracing::error!(
        log = %path.display(),
        after_seq = after,
        offset = torn.offset,
        bytes = torn.bytes.len(),
        "audit log: the last line is incomplete (a write cut short by a full disk, a file size limit or a crash); cutting it off and recording the cut in the chain"
    );
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io(path, "opening"))?;
    file.set_len(torn.offset)
        .and_then(|()| file.sync_data())
        .map_err(io(path, "cutting off an incomplete line"))
}

/// Appends `line` to `file`.
#[cfg(not(test))]
fn write_bytes(file: &File, line: &[u8]) -> std::io::Result<()> {
    (&*file).write_all(line)
}

#[cfg(test)]
thread_local! {
    /// Unit tests: the bytes the next appends on this thread may write
    /// before they fail with ENOSPC (`None`: no limit).
    static ROOM: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Appends `line` to `file`; in unit tests, fails part-way once `ROOM`
/// is used up, as a full disk does.
#[cfg(test)]
fn write_bytes(file: &File, line: &[u8]) -> std::io::Result<()> {
    match ROOM.get() {
        None => (&*file).write_all(line),
        Some(room) if room >= line.len() => {
            ROOM.set(Some(room - line.len()));
            (&*file).write_all(line)
        }
        Some(room) => {
            ROOM.set(Some(0));
            (&*file).write_all(&line[..room])?;
            Err(std::io::Error::from_raw_os_error(libc::ENOSPC))
        }
    }
}

fn open_append(path: &Path) -> Result<File, AuditError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
        .map_err(io(path, "opening"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(op: &str) -> Entry {
        Entry {
            phase: Phase::End,
            caller: CallerRecord {
                uid: Some(1000),
                gid: Some(1000),
                pid: Some(42),
                exe: Some("/usr/bin/tufctl".into()),
                comm: Some("tufctl".into()),
                user: Some("ci".into()),
                address: None,
            },
            operation: op.into(),
            repositories: vec!["r/app".into()],
            roles: vec!["targets/releases".into()],
            key_ids: vec![],
            tags: vec![TagRecord {
                repository: "r/app".into(),
                tag: "v1".into(),
                digest: "sha256:00".into(),
            }],
            published: vec![],
            detail: String::new(),
            result: "ok".into(),
        }
    }

    fn log_with(n: usize, rotate_bytes: u64) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(AuditConfig {
            path: path.clone(),
            rotate_bytes,
        })
        .unwrap();
        for i in 0..n {
            assert_eq!(log.append(&entry(&format!("op{i}"))).unwrap(), i as u64 + 1);
        }
        (dir, path)
    }

    /// The log at `path` opened again (no rotation).
    fn reopen(path: &Path) -> AuditLog {
        AuditLog::open(AuditConfig {
            path: path.to_path_buf(),
            rotate_bytes: 0,
        })
        .unwrap()
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn write_lines(path: &Path, lines: &[String]) {
        std::fs::write(
            path,
            lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
        )
        .unwrap();
    }

    #[test]
    fn an_intact_chain_verifies_and_reopens() {
        let (_d, path) = log_with(5, 0);
        let r = verify(&path).unwrap();
        assert_eq!((r.lines, r.first_seq, r.last_seq), (5, 1, 5));
        let v: serde_json::Value = serde_json::from_str(&lines(&path)[0]).unwrap();
        assert_eq!(v["prev"], GENESIS);
        assert_eq!(v["caller"]["exe"], "/usr/bin/tufctl");
        assert_eq!(v["tags"][0]["digest"], "sha256:00");
        let log = reopen(&path);
        assert_eq!(log.append(&entry("again")).unwrap(), 6);
        assert_eq!(verify(&path).unwrap().last_seq, 6);
    }

    #[test]
    fn edits_deletions_insertions_and_truncation_are_detected() {
        let (_d, path) = log_with(5, 0);
        let good = lines(&path);

        let mut edited = good.clone();
        edited[2] = edited[2].replace("op2", "op9");
        write_lines(&path, &edited);
        let e = verify(&path).unwrap_err().to_string();
        assert!(e.contains("line 4") && e.contains("edited"), "{e}");

        let mut last_edited = good.clone();
        last_edited[4] = last_edited[4].replace("op4", "op9");
        write_lines(&path, &last_edited);
        let e = verify(&path).unwrap_err().to_string();
        assert!(e.contains("last line was edited"), "{e}");

        let mut deleted = good.clone();
        deleted.remove(1);
        write_lines(&path, &deleted);
        let e = verify(&path).unwrap_err().to_string();
        assert!(e.contains("deleted"), "{e}");

        let mut inserted = good.clone();
        inserted.insert(2, good[1].clone());
        write_lines(&path, &inserted);
        assert!(verify(&path).is_err());

        write_lines(&path, &good[..3]);
        let e = verify(&path).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        // The daemon refuses to append to a truncated log.
        assert!(
            AuditLog::open(AuditConfig {
                path: path.clone(),
                rotate_bytes: 0
            })
            .is_err()
        );

        write_lines(&path, &good);
        verify(&path).unwrap();
    }

    #[test]
    fn rotation_keeps_the_chain() {
        let (_d, path) = log_with(10, 600);
        let files = chain_files(&path).unwrap();
        assert!(files.len() >= 3, "{files:?}");
        let r = verify(&path).unwrap();
        assert_eq!((r.lines, r.last_seq), (10, 10));
        // A deleted middle file breaks the chain.
        std::fs::remove_file(&files[1]).unwrap();
        let e = verify(&path).unwrap_err().to_string();
        assert!(e.contains("deleted"), "{e}");
    }

    /// A write that fails part-way (a full disk) leaves no fragment: the
    /// file is cut back to its last line, the chain stays whole, and the
    /// next append continues it.
    #[test]
    fn a_write_failing_mid_line_is_cut_off_and_the_chain_continues() {
        let (_d, path) = log_with(3, 0);
        let log = reopen(&path);
        let before = std::fs::read(&path).unwrap();
        ROOM.set(Some(40));
        let e = log.append(&entry("full")).unwrap_err().to_string();
        assert!(e.contains("appending"), "{e}");
        ROOM.set(None);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "the fragment is cut off"
        );
        verify(&path).unwrap();
        assert_eq!(log.append(&entry("after")).unwrap(), 4);
        let r = verify(&path).unwrap();
        assert_eq!((r.lines, r.last_seq), (4, 4));
    }

    /// An incomplete last line (a crash mid-write) is refused by `verify`,
    /// cut off at open and the cut recorded in the chain; a line in the
    /// middle that does not parse still stops the daemon.
    #[test]
    fn an_incomplete_last_line_is_cut_off_and_recorded_at_open() {
        let (_d, path) = log_with(3, 0);
        let good = std::fs::read_to_string(&path).unwrap();
        let fourth = r#"{"seq":4,"prev":"ab"#;
        std::fs::write(&path, format!("{good}{fourth}")).unwrap();
        let e = verify(&path).unwrap_err().to_string();
        assert!(e.contains("line 4: incomplete"), "{e}");
        let log = reopen(&path);
        let l = lines(&path);
        assert_eq!(l.len(), 4, "{l:?}");
        let v: serde_json::Value = serde_json::from_str(&l[3]).unwrap();
        assert_eq!(
            (v["seq"].as_u64(), &v["phase"]),
            (Some(4), &serde_json::json!("recovery"))
        );
        assert_eq!(v["operation"], "audit-recover");
        let detail = v["detail"].as_str().unwrap();
        assert!(
            detail.contains(&format!(
                "cut {} incomplete byte(s) after seq 3",
                fourth.len()
            )),
            "{detail}"
        );
        assert_eq!(log.append(&entry("after")).unwrap(), 5);
        drop(log);
        let r = verify(&path).unwrap();
        assert_eq!((r.lines, r.last_seq, r.past_head), (5, 5, 0));

        // Garbage in the middle is not a torn write.
        let mut l = lines(&path);
        l[1] = "{\"seq\":2,".into();
        write_lines(&path, &l);
        let e = AuditLog::open(AuditConfig {
            path: path.clone(),
            rotate_bytes: 0,
        })
        .err()
        .expect("refused")
        .to_string();
        assert!(e.contains("line 2: not a JSON record"), "{e}");
    }

    /// The head records where the chain starts: deleting the oldest files
    /// is named as missing seqs; a head written before the start was
    /// recorded means seq 1.
    #[test]
    fn deleting_the_oldest_files_is_detected() {
        let (_d, path) = log_with(10, 600);
        let files = chain_files(&path).unwrap();
        assert!(files.len() >= 3, "{files:?}");
        verify(&path).unwrap();
        // An old head (SEQ HASH only) still verifies.
        let hp = head_path(&path);
        let head = read_head(&hp).unwrap().unwrap();
        assert_eq!(head.start, Start::genesis());
        std::fs::write(&hp, format!("{} {}\n", head.seq, head.hash)).unwrap();
        verify(&path).unwrap();
        let second = std::fs::read_to_string(&files[1]).unwrap();
        let first_kept: serde_json::Value =
            serde_json::from_str(second.lines().next().unwrap()).unwrap();
        let n = first_kept["seq"].as_u64().unwrap();
        std::fs::remove_file(&files[0]).unwrap();
        let e = verify(&path).unwrap_err().to_string();
        assert!(e.contains(&format!("seq 1..{} missing", n - 1)), "{e}");
        assert!(reopen_err(&path).contains("missing"));
    }

    /// A pruning records itself, moves the start and removes only whole
    /// files before the seq given; the pruned log verifies, deleting one
    /// more file still shows, and a pruning stopped before its files were
    /// removed still verifies.
    #[test]
    fn pruning_records_itself_and_moves_the_start() {
        let (_d, path) = log_with(10, 600);
        let files = chain_files(&path).unwrap();
        assert!(files.len() >= 4, "{files:?}");
        let saved: Vec<(PathBuf, Vec<u8>)> = files
            .iter()
            .map(|f| (f.clone(), std::fs::read(f).unwrap()))
            .collect();
        let second_last = rotated_last_seq(&files[1]).unwrap();
        let mut log = AuditLog::open(AuditConfig {
            path: path.clone(),
            rotate_bytes: 600,
        })
        .unwrap();
        let e = log.prune(1).unwrap_err().to_string();
        assert!(e.contains("nothing to prune before seq 1"), "{e}");
        let pruned = log.prune(second_last + 1).unwrap();
        assert_eq!(pruned.files, files[..2].to_vec());
        assert_eq!(pruned.start.seq, second_last + 1);
        assert_eq!(pruned.record, 11);
        drop(log);
        let r = verify(&path).unwrap();
        assert_eq!((r.first_seq, r.last_seq), (second_last + 1, 11));
        let all: String = chain_files(&path)
            .unwrap()
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .collect();
        let last: serde_json::Value = serde_json::from_str(all.lines().last().unwrap()).unwrap();
        assert_eq!(
            (&last["phase"], &last["operation"]),
            (
                &serde_json::json!("prune"),
                &serde_json::json!("audit-prune")
            )
        );
        assert!(
            last["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("removing seq 1..{second_last}"))
        );
        // Stopped before the files went: the older lines still verify.
        for (f, bytes) in &saved[..2] {
            std::fs::write(f, bytes).unwrap();
        }
        assert_eq!(verify(&path).unwrap().first_seq, 1);
        std::fs::remove_file(&saved[0].0).unwrap();
        std::fs::remove_file(&saved[1].0).unwrap();
        // One file more removed by hand shows.
        let next = chain_files(&path).unwrap()[0].clone();
        let gone = rotated_last_seq(&next).unwrap();
        std::fs::remove_file(&next).unwrap();
        let e = verify(&path).unwrap_err().to_string();
        assert!(
            e.contains(&format!("seq {}..{gone} missing", second_last + 1)),
            "{e}"
        );
    }

    fn reopen_err(path: &Path) -> String {
        AuditLog::open(AuditConfig {
            path: path.to_path_buf(),
            rotate_bytes: 0,
        })
        .err()
        .expect("refused")
        .to_string()
    }

    #[test]
    fn begin_lines_are_chained_past_the_head_until_the_next_synced_line() {
        let (_d, path) = log_with(2, 0);
        let log = reopen(&path);
        let (seq, file) = log.append_unsynced(&entry("begin")).unwrap();
        assert_eq!(seq, 3);
        file.sync_data().unwrap();
        let r = verify(&path).unwrap();
        assert_eq!((r.last_seq, r.past_head), (3, 1));
        assert_eq!(log.append(&entry("end")).unwrap(), 4);
        assert_eq!(verify(&path).unwrap().past_head, 0);
        // Once the end line moved the head, dropping both lines shows.
        let text = std::fs::read_to_string(&path).unwrap();
        let kept: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
        std::fs::write(&path, kept).unwrap();
        assert!(verify(&path).unwrap_err().to_string().contains("truncated"));
    }

    #[test]
    fn an_inline_append_never_waits_for_a_busy_log() {
        let (_d, path) = log_with(1, 0);
        let log = reopen(&path);
        // Another thread holds the log (as a rotation does across its
        // fdatasyncs): the inline append declines at once, writing nothing.
        let held = log.tail.lock().unwrap();
        assert!(log.try_append_unsynced(&entry("begin")).is_none());
        drop(held);
        let (seq, _) = log.try_append_unsynced(&entry("begin")).unwrap().unwrap();
        assert_eq!(seq, 2);
        assert_eq!(log.append(&entry("end")).unwrap(), 3);
        let r = verify(&path).unwrap();
        assert_eq!((r.last_seq, r.past_head), (3, 0));
    }

    #[test]
    fn a_head_lagging_after_a_crash_is_completed_on_open() {
        let (_d, path) = log_with(3, 0);
        let hp = head_path(&path);
        let head = std::fs::read(&hp).unwrap();
        let cfg = AuditConfig {
            path: path.clone(),
            rotate_bytes: 0,
        };
        let log = AuditLog::open(cfg.clone()).unwrap();
        log.append(&entry("x")).unwrap();
        log.append(&entry("y")).unwrap();
        drop(log);
        let good = std::fs::read_to_string(&path).unwrap();
        // The head on disk still names seq 3: the two lines after it are
        // chained through it.
        std::fs::write(&hp, &head).unwrap();
        assert_eq!(verify(&path).unwrap().past_head, 2);
        // ...but not if seq 3 was changed since.
        std::fs::write(&path, good.replacen("op2", "op9", 1)).unwrap();
        assert!(AuditLog::open(cfg.clone()).is_err());
        std::fs::write(&path, &good).unwrap();
        let log = AuditLog::open(cfg).unwrap();
        assert_eq!(log.append(&entry("z")).unwrap(), 6);
        verify(&path).unwrap();
    }

    #[test]
    fn concurrent_appends_share_syncs_and_keep_the_chain() {
        let (_d, path) = log_with(1, 2000);
        let log = std::sync::Arc::new(
            AuditLog::open(AuditConfig {
                path: path.clone(),
                rotate_bytes: 2000,
            })
            .unwrap(),
        );
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..10 {
                        let (seq, _) = log.append_unsynced(&entry(&format!("b{t}.{i}"))).unwrap();
                        log.sync_through(seq).unwrap();
                        log.append(&entry(&format!("e{t}.{i}"))).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Every line is durable and named by the head; rotation happened
        // and the chain runs through every file.
        let r = verify(&path).unwrap();
        assert_eq!((r.lines, r.last_seq, r.past_head), (161, 161, 0));
        assert!(chain_files(&path).unwrap().len() >= 3);
        // A sync of a line an earlier sync covered returns at once.
        log.sync_through(5).unwrap();
    }

    /// Async callers wait for durability through the one syncer thread:
    /// every wait ends with its line durable and the head on it, through
    /// rotations, and a line an earlier sync covered needs no wait. The
    /// runtime has a single blocking thread, which none of this needs.
    #[test]
    fn async_waits_share_the_syncer_thread() {
        let (_d, path) = log_with(1, 2000);
        let log = Arc::new(
            AuditLog::open(AuditConfig {
                path: path.clone(),
                rotate_bytes: 2000,
            })
            .unwrap(),
        );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(1)
            .build()
            .unwrap();
        runtime.block_on(async {
            let tasks: Vec<_> = (0..32)
                .map(|t| {
                    let log = log.clone();
                    tokio::spawn(async move {
                        for i in 0..5 {
                            let line = entry(&format!("b{t}.{i}"));
                            let seq = loop {
                                // Another worker or a rotation holds it.
                                match log.try_append_unsynced(&line) {
                                    Some(written) => break written.unwrap().0,
                                    None => tokio::task::yield_now().await,
                                }
                            };
                            log.sync_later(seq).wait().await.unwrap();
                            assert!(log.durable.load(Ordering::Acquire) >= seq);
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
        let r = verify(&path).unwrap();
        assert_eq!((r.lines, r.last_seq, r.past_head), (161, 161, 0));
        assert!(matches!(log.sync_later(100), Durability::Done));
    }
}
