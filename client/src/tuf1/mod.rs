//! `tufctl tuf …`: TUF 1.0 repositories on directories, every key on the
//! daemon's tokens.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tonic::transport::Channel;
use tufd_proto::v1;
use tufd_proto::v1::tuf_client::TufClient;

use crate::output::{Failure, Output};

mod checks;
mod conformance;
mod fetch;
mod updater;

pub use conformance::ClientArgs;

/// Whether a command runs without the daemon.
pub fn is_local(args: &TufArgs) -> bool {
    matches!(args.command, TufCommand::Client(_))
}

/// Whether a command answers quickly (no touch, no large batch).
pub fn is_quick(args: &TufArgs) -> bool {
    match &args.command {
        TufCommand::Status(_) => true,
        TufCommand::Refresh(a) => a.roles.is_empty(),
        _ => false,
    }
}

/// Runs `tuf client` (no daemon).
pub async fn run_client(args: TufArgs) -> Result<(), Failure> {
    match args.command {
        TufCommand::Client(a) => conformance::run_client(a).await,
        _ => Err(Failure::input("not a client command")),
    }
}

/// TUF 1.0 repositories (the specification dialect python-tuf, go-tuf and
/// tuf-on-ci read), published to a directory a static web server serves.
#[derive(Args)]
pub struct TufArgs {
    #[command(subcommand)]
    pub command: TufCommand,
}

/// The `tuf` subcommands.
#[derive(Subcommand)]
pub enum TufCommand {
    /// Create a repository in DIR: keys generated on the tokens, version 1
    /// of root, targets, snapshot and timestamp published under DIR/metadata.
    Init(InitArgs),
    /// Add targets: local files (hashed and published under DIR/targets by
    /// the daemon), or one name with a given hash and length.
    Add(AddArgs),
    /// Remove targets by name.
    Remove(RemoveArgs),
    /// Show every role (delegated ones at any depth, hash bins as one
    /// line) with its expiry and when the daemon re-signs it next, or that
    /// it needs its key holder; and when the daemon last re-signed.
    Status(DirArgs),
    /// Re-sign what is due now (timestamp always with --force), or the
    /// roles named by --role.
    Refresh(RefreshArgs),
    /// Delegate paths from top-level targets, or from a delegated role
    /// (--parent), to a new role, its key generated on a token.
    Delegate(DelegateArgs),
    /// Remove the delegation to a role. A role that delegates further is
    /// refused: remove its roles first, one by one (tufd never removes a
    /// subtree in one step). The role's published files stay (clients'
    /// snapshots keep listing it) and its key stays on the token.
    Undelegate(UndelegateArgs),
    /// Replace the keys of root, targets, snapshot or timestamp by new keys
    /// generated on tokens (a new root, signed by the old and new root
    /// keys).
    Rotate(RotateArgs),
    /// Stage the next root for offline k-of-n signing: new root keys (the
    /// holders' public keys) and threshold, signed by the root keys this
    /// daemon holds, written to a file that travels to the other holders.
    Stage(StageArgs),
    /// Add your signatures (the root keys your tufd holds) to a staged
    /// change; shows what is being signed and where the thresholds stand.
    Sign(SignArgs),
    /// Publish a staged change once the current and the new root's
    /// thresholds are met.
    Publish(PublishArgs),
    /// A TUF 1.0 client (no daemon involved), with the command-line
    /// protocol of the TUF conformance suite: `init TRUSTED_ROOT`,
    /// `refresh`, `download`; exit 0 on success, 1 on any failure.
    Client(ClientArgs),
}

/// `tuf stage`.
#[derive(Args)]
pub struct StageArgs {
    /// The repository: a name configured in the daemon's `[tuf]`, or a
    /// directory (a path with a `/`) inside a configured root.
    pub dir: PathBuf,
    /// A new root key holder's public key (PEM, as `tufctl key generate`
    /// writes NAME.pub); repeat. None: the same keys, expiry renewed.
    #[arg(long = "root-key-file", value_name = "PEM")]
    pub root_key_files: Vec<PathBuf>,
    /// Threshold of the new root keys.
    #[arg(long, default_value_t = 1)]
    pub root_threshold: u32,
    /// Where to write the staged change.
    #[arg(long, short = 'f', value_name = "FILE")]
    pub out: PathBuf,
}

/// `tuf sign`.
#[derive(Args)]
pub struct SignArgs {
    /// The staged change file (updated in place).
    pub staged: PathBuf,
}

/// `tuf publish`.
#[derive(Args)]
pub struct PublishArgs {
    /// The repository: a name configured in the daemon's `[tuf]`, or a
    /// directory (a path with a `/`) inside a configured root.
    pub dir: PathBuf,
    /// The staged change file.
    pub staged: PathBuf,
}

/// `tuf delegate`.
#[derive(Args)]
pub struct DelegateArgs {
    /// The repository: a name configured in the daemon's `[tuf]`, or a
    /// directory (a path with a `/`) inside a configured root.
    pub dir: PathBuf,
    /// Name of the new role.
    pub role: String,
    /// Path pattern the role may sign (`*` does not match `/`); repeat.
    #[arg(long = "path", required = true, value_name = "PATTERN")]
    pub paths: Vec<String>,
    /// Token for the role's key (default: the daemon's default token).
    #[arg(long, default_value = "")]
    pub token: String,
    /// The role that delegates (default: top-level targets); a delegated
    /// role delegates further to a nested role. Role names are unique in
    /// a repository.
    #[arg(long, value_name = "ROLE")]
    pub parent: Option<String>,
    /// Stop the search for a target at this role when its paths match.
    #[arg(long)]
    pub terminating: bool,
    /// How long the role's metadata stays valid when signed (`90d`, `12h`;
    /// default: the targets period).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub expires: Option<u64>,
}

/// `tuf undelegate`.
#[derive(Args)]
pub struct UndelegateArgs {
    /// The repository: a name configured in the daemon's `[tuf]`, or a
    /// directory (a path with a `/`) inside a configured root.
    pub dir: PathBuf,
    /// The delegated role to remove (it must delegate to no role).
    pub role: String,
}

/// `tuf rotate`.
#[derive(Args)]
pub struct RotateArgs {
    /// The repository: a name configured in the daemon's `[tuf]`, or a
    /// directory (a path with a `/`) inside a configured root.
    pub dir: PathBuf,
    /// root, targets, snapshot, timestamp, a delegated role, or `bins`
    /// (the keys of every hash bin).
    pub role: String,
    /// A new key on TOKEN; repeat for several (default: one key on the
    /// default token).
    #[arg(long = "key-token", value_name = "TOKEN")]
    pub key_tokens: Vec<String>,
    /// How many new keys on the default token, besides those of
    /// --key-token.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub key_count: u32,
    /// Threshold of the new keys.
    #[arg(long, default_value_t = 1)]
    pub threshold: u32,
}

/// `tuf init`.
#[derive(Args)]
pub struct InitArgs {
    /// The repository: a name configured in the daemon's `[tuf]`, or a
    /// directory (a path with a `/`) inside a configured root (created if
    /// missing).
    pub dir: PathBuf,
    /// A root key on TOKEN; repeat for several root keys (k of n).
    #[arg(long = "root-key", value_name = "TOKEN")]
    pub root_keys: Vec<String>,
    /// How many root keys on the default token, besides those of --root-key.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub root_key_count: u32,
    /// How many root keys must sign root.
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub root_threshold: u32,
    /// Token of the targets key (default: the daemon's default token).
    #[arg(long, value_name = "TOKEN", default_value = "")]
    pub targets_token: String,
    /// Token of the snapshot and timestamp keys (online roles).
    #[arg(long, value_name = "TOKEN", default_value = "")]
    pub online_token: String,
    /// Expiry period of a role, ROLE=DURATION (e.g. timestamp=6h,
    /// snapshot=7d, root=365d; s, m, h, d; plain numbers are seconds).
    #[arg(long = "expires", value_name = "ROLE=DURATION", value_parser = parse_expiry)]
    pub expires: Vec<(String, u64)>,
    /// Delegate every target to N hash bins (TAP 15; a power of two, e.g.
    /// 1024 from ~60 000 targets), signed with a bins key on the targets
    /// token.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub hash_bins: u64,
}

/// `tuf add`.
#[derive(Args)]
pub struct AddArgs {
    /// The repository: a name configured in the daemon's `[tuf]`, or a
    /// directory (a path with a `/`) inside a configured root.
    pub dir: PathBuf,
    /// Local files to add (target name: the file name, or --name).
    pub files: Vec<PathBuf>,
    /// Target name (path in the repository) for one file or for --hash.
    #[arg(long)]
    pub name: Option<String>,
    /// SHA-256 (hex) of a target not given as a file.
    #[arg(long, requires = "name", requires = "length", conflicts_with = "files")]
    pub hash: Option<String>,
    /// Length in bytes of a target given by --hash.
    #[arg(long, requires = "hash")]
    pub length: Option<u64>,
    /// Custom metadata of the target(s), a JSON object.
    #[arg(long, value_name = "JSON")]
    pub custom: Option<String>,
    /// The delegated role to add to (default: top-level targets, or each
    /// target's hash bin).
    #[arg(long)]
    pub role: Option<String>,
    /// Add many targets in one version: a JSON file shaped like the
    /// `targets` object of TUF metadata, `{"NAME": {"length": N,
    /// "hashes": {"sha256": "…"}, "custom": {…}}, …}`.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["files", "hash", "name", "custom"])]
    pub batch: Option<PathBuf>,
}

/// `tuf remove`.
#[derive(Args)]
pub struct RemoveArgs {
    /// The repository: a name configured in the daemon's `[tuf]`, or a
    /// directory (a path with a `/`) inside a configured root.
    pub dir: PathBuf,
    /// Names of the targets to remove.
    #[arg(required = true)]
    pub names: Vec<String>,
    /// The role to remove them from (default: wherever they are listed).
    #[arg(long)]
    pub role: Option<String>,
}

/// A repository directory.
#[derive(Args)]
pub struct DirArgs {
    /// The repository: a name configured in the daemon's `[tuf]`, or a
    /// directory (a path with a `/`) inside a configured root.
    pub dir: PathBuf,
}

/// `tuf refresh`.
#[derive(Args)]
pub struct RefreshArgs {
    /// The repository: a name configured in the daemon's `[tuf]`, or a
    /// directory (a path with a `/`) inside a configured root.
    pub dir: PathBuf,
    /// Re-sign timestamp even when it is not due.
    #[arg(long)]
    pub force: bool,
    /// Re-sign this targets role now (next version, new expiry) with the
    /// keys this daemon holds, a touch included: how a key holder renews
    /// a role the daemon does not sign alone; `bins`: every hash bin.
    /// Repeat for several.
    #[arg(long = "role", value_name = "ROLE")]
    pub roles: Vec<String>,
}

/// Parses `ROLE=DURATION`.
fn parse_expiry(s: &str) -> Result<(String, u64), String> {
    let (role, d) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: write ROLE=DURATION, e.g. timestamp=6h"))?;
    Ok((role.to_owned(), parse_duration(d)?))
}

/// `30`, `30s`, `5m`, `12h`, `7d` → seconds.
fn parse_duration(d: &str) -> Result<u64, String> {
    let (num, unit) = match d.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => d.split_at(i),
        None => (d, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{d:?}: a duration is a number with s, m, h or d"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{d:?}: a duration is a number with s, m, h or d")),
    };
    n.checked_mul(mult)
        .filter(|s| *s > 0)
        .ok_or_else(|| format!("{d:?}: out of range"))
}

/// A repository as the daemon takes it: a configured name as given (no
/// `/`), a path in its absolute form (the daemon may run in another
/// directory).
fn repository(p: &Path) -> Result<String, Failure> {
    match p.to_str() {
        Some(name) if !name.contains('/') && name != "." && name != ".." => {
            return Ok(name.to_owned());
        }
        _ => {}
    }
    absolute(p)
}

/// The absolute form of a path given on the command line (the daemon may
/// run in another directory).
fn absolute(p: &Path) -> Result<String, Failure> {
    std::path::absolute(p)
        .map(|p| p.display().to_string())
        .map_err(|e| Failure::input(format!("{}: {e}", p.display())))
}

/// Checks arguments that need no daemon.
pub fn precheck(args: &TufArgs) -> Result<(), Failure> {
    if let TufCommand::Add(a) = &args.command {
        if a.files.is_empty() && a.hash.is_none() && a.batch.is_none() {
            return Err(Failure::input(
                "give files to add, or --name, --hash and --length",
            ));
        }
        if a.name.is_some() && a.files.len() > 1 {
            return Err(Failure::input("--name names one file; give one file"));
        }
    }
    Ok(())
}

/// Writes a staged change file atomically (temp file, rename).
fn write_staged(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let fail = |e: std::io::Error| Failure::input(format!("{}: {e}", path.display()));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

fn read_staged(path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure::input(format!("{}: {e}", path.display())))
}

fn print_staged(path: &Path, s: &v1::TufStagedChange, out: &Output) {
    if out.json() {
        out.print_json(&json!({
            "file": path.display().to_string(),
            "description": s.description,
            "signed_key_ids": s.signed_key_ids,
            "thresholds": s.thresholds.iter().map(|t| json!({
                "which": t.which,
                "valid": t.valid,
                "threshold": t.threshold,
                "met": t.met,
                "missing_key_ids": t.missing_key_ids,
            })).collect::<Vec<_>>(),
            "ready": s.thresholds.iter().all(|t| t.met),
            "unused_keys": s.unused_keys.iter().map(|u| json!({
                "key_id": u.key_id,
                "reason": u.reason,
            })).collect::<Vec<_>>(),
        }));
        return;
    }
    for line in &s.description {
        println!("{line}");
    }
    for k in &s.signed_key_ids {
        println!("signed with key {k}");
    }
    for u in &s.unused_keys {
        println!("not signed with key {}: {}", u.key_id, u.reason);
    }
    for t in &s.thresholds {
        let state = if t.met {
            "met".to_owned()
        } else {
            format!(
                "waiting for {} more of: {}",
                t.threshold.saturating_sub(t.valid),
                t.missing_key_ids
                    .iter()
                    .map(|k| &k[..k.len().min(12)])
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        println!(
            "{}: {} of {} signatures ({state})",
            t.which, t.valid, t.threshold
        );
    }
    if s.thresholds.iter().all(|t| t.met) {
        println!(
            "ready: publish it with `tufctl tuf publish DIR {}`",
            path.display()
        );
    } else {
        println!(
            "pass {} on to the next key holder (`tufctl tuf sign`)",
            path.display()
        );
    }
}

/// Runs a `tuf` subcommand against the daemon.
pub async fn run(args: TufArgs, channel: Channel, out: &Output) -> Result<(), Failure> {
    let mut client = TufClient::new(channel);
    let reply = match args.command {
        TufCommand::Stage(a) => {
            let mut root_keys_pem = Vec::new();
            for f in &a.root_key_files {
                root_keys_pem.push(
                    std::fs::read_to_string(f)
                        .map_err(|e| Failure::input(format!("{}: {e}", f.display())))?,
                );
            }
            let s = client
                .stage_root(v1::TufStageRootRequest {
                    directory: repository(&a.dir)?,
                    root_keys_pem,
                    root_threshold: a.root_threshold,
                })
                .await?
                .into_inner();
            write_staged(&a.out, &s.staged)?;
            print_staged(&a.out, &s, out);
            return Ok(());
        }
        TufCommand::Sign(a) => {
            let staged = read_staged(&a.staged)?;
            if !out.json() {
                eprintln!("signing the staged change in {}", a.staged.display());
            }
            let mut events = client
                .sign_staged(v1::TufSignStagedRequest { staged })
                .await?
                .into_inner();
            let s = loop {
                match events.message().await?.and_then(|e| e.event) {
                    Some(v1::tuf_sign_event::Event::Touch(t)) => {
                        eprintln!("{}", crate::events::touch_line(&t));
                    }
                    Some(v1::tuf_sign_event::Event::Result(s)) => break s,
                    None => {
                        return Err(Failure::daemon(
                            "Unavailable",
                            "the daemon ended the signing without a result; sign again (signatures already collected stay valid)",
                        ));
                    }
                }
            };
            write_staged(&a.staged, &s.staged)?;
            print_staged(&a.staged, &s, out);
            return Ok(());
        }
        TufCommand::Client(_) => return Err(Failure::input("`tuf client` needs no daemon")),
        TufCommand::Publish(a) => {
            client
                .publish_staged(v1::TufPublishStagedRequest {
                    directory: repository(&a.dir)?,
                    staged: read_staged(&a.staged)?,
                })
                .await?
        }
        TufCommand::Init(a) => {
            let mut root_tokens = a.root_keys;
            root_tokens.extend((0..a.root_key_count).map(|_| String::new()));
            client
                .init(v1::TufInitRequest {
                    directory: repository(&a.dir)?,
                    root_tokens,
                    root_threshold: a.root_threshold,
                    targets_token: a.targets_token,
                    online_token: a.online_token,
                    expiry: a
                        .expires
                        .into_iter()
                        .map(|(role, seconds)| v1::TufRoleExpiry { role, seconds })
                        .collect(),
                    hash_bins: a.hash_bins,
                })
                .await?
        }
        TufCommand::Add(a) => {
            let custom_json = a.custom.unwrap_or_default();
            let targets = if let Some(batch) = &a.batch {
                read_batch(batch)?
            } else if let Some(hash) = a.hash {
                vec![v1::TufTarget {
                    name: a.name.unwrap_or_default(),
                    file: String::new(),
                    sha256: hash,
                    length: a.length.unwrap_or_default(),
                    custom_json,
                }]
            } else {
                let mut targets = Vec::new();
                for f in &a.files {
                    let name = match &a.name {
                        Some(n) => n.clone(),
                        None => f
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .ok_or_else(|| {
                                Failure::input(format!("{}: not a file name", f.display()))
                            })?,
                    };
                    targets.push(v1::TufTarget {
                        name,
                        file: absolute(f)?,
                        sha256: String::new(),
                        length: 0,
                        custom_json: custom_json.clone(),
                    });
                }
                targets
            };
            client
                .add_targets(v1::TufAddTargetsRequest {
                    directory: repository(&a.dir)?,
                    targets,
                    role: a.role.unwrap_or_default(),
                })
                .await?
        }
        TufCommand::Remove(a) => {
            client
                .remove_targets(v1::TufRemoveTargetsRequest {
                    directory: repository(&a.dir)?,
                    names: a.names,
                    role: a.role.unwrap_or_default(),
                })
                .await?
        }
        TufCommand::Status(a) => {
            client
                .status(v1::TufStatusRequest {
                    directory: repository(&a.dir)?,
                })
                .await?
        }
        TufCommand::Refresh(a) => {
            client
                .refresh(v1::TufRefreshRequest {
                    directory: repository(&a.dir)?,
                    force: a.force,
                    roles: a.roles,
                })
                .await?
        }
        TufCommand::Delegate(a) => {
            client
                .delegate(v1::TufDelegateRequest {
                    directory: repository(&a.dir)?,
                    role: a.role,
                    paths: a.paths,
                    token: a.token,
                    terminating: a.terminating,
                    expiry_seconds: a.expires.unwrap_or(0),
                    parent: a.parent.unwrap_or_default(),
                })
                .await?
        }
        TufCommand::Undelegate(a) => {
            client
                .undelegate(v1::TufUndelegateRequest {
                    directory: repository(&a.dir)?,
                    role: a.role,
                })
                .await?
        }
        TufCommand::Rotate(a) => {
            let mut tokens = a.key_tokens;
            tokens.extend((0..a.key_count).map(|_| String::new()));
            client
                .rotate(v1::TufRotateRequest {
                    directory: repository(&a.dir)?,
                    role: a.role,
                    tokens,
                    threshold: a.threshold,
                })
                .await?
        }
    }
    .into_inner();
    print_status(&reply, out);
    Ok(())
}

/// Reads a `--batch` file into target descriptions.
fn read_batch(path: &Path) -> Result<Vec<v1::TufTarget>, Failure> {
    let bad = |what: String| Failure::input(format!("{}: {what}", path.display()));
    let text = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let map: serde_json::Map<String, Value> =
        serde_json::from_slice(&text).map_err(|e| bad(format!("not a JSON object: {e}")))?;
    map.into_iter()
        .map(|(name, t)| {
            let length = t["length"]
                .as_u64()
                .ok_or_else(|| bad(format!("{name}: no integer \"length\"")))?;
            let sha256 = t["hashes"]["sha256"]
                .as_str()
                .ok_or_else(|| bad(format!("{name}: no \"hashes\": {{\"sha256\": …}}")))?
                .to_owned();
            let custom_json = match t.get("custom") {
                Some(c) => c.to_string(),
                None => String::new(),
            };
            Ok(v1::TufTarget {
                name,
                file: String::new(),
                sha256,
                length,
                custom_json,
            })
        })
        .collect()
}

fn status_json(s: &v1::TufRepositoryStatus) -> Value {
    json!({
        "directory": s.directory,
        "summary": s.summary,
        "target_count": s.target_count,
        "roles": s.roles.iter().map(|r| json!({
            "role": r.role,
            "version": r.version,
            "expires": r.expires,
            "key_ids": r.key_ids,
            "threshold": r.threshold,
            "delegated_by": r.delegated_by,
            "next_refresh": if r.next_refresh.is_empty() { Value::Null } else { json!(r.next_refresh) },
            "needs_holder": r.needs_holder,
        })).collect::<Vec<_>>(),
        "last_refresh": if s.last_refresh.is_empty() { Value::Null } else { json!({
            "at": s.last_refresh,
            "detail": s.last_refresh_detail,
        })},
        "last_error": if s.last_error.is_empty() { Value::Null } else { json!(s.last_error) },
        "next_refresh": s.next_refresh,
    })
}

fn print_status(s: &v1::TufRepositoryStatus, out: &Output) {
    if out.json() {
        out.print_json(&status_json(s));
        return;
    }
    if !s.summary.is_empty() {
        println!("{}: {}", s.directory, s.summary);
    } else {
        println!("{}", s.directory);
    }
    let rows: Vec<Vec<String>> = s
        .roles
        .iter()
        .map(|r| {
            let next = match (r.next_refresh.as_str(), r.role.as_str()) {
                ("", "root") => "by its holders (tuf stage)".to_owned(),
                ("", _) => "needs its key holder".to_owned(),
                (at, _) => at.to_owned(),
            };
            vec![
                r.role.clone(),
                if r.delegated_by.is_empty() {
                    "-".to_owned()
                } else {
                    r.delegated_by.clone()
                },
                r.version.to_string(),
                r.expires.clone(),
                next,
                format!("{} of {}", r.threshold, r.key_ids.len()),
            ]
        })
        .collect();
    crate::output::table(
        &[
            "ROLE",
            "DELEGATED BY",
            "VERSION",
            "EXPIRES",
            "NEXT RE-SIGNING",
            "KEYS",
        ],
        &rows,
    );
    for r in s
        .roles
        .iter()
        .filter(|r| r.role != "root" && r.needs_holder)
    {
        let how = if r.role == "snapshot" || r.role == "timestamp" {
            "unlock or connect its token".to_owned()
        } else {
            format!(
                "`tufctl tuf refresh {} --role {}` with its token present",
                s.directory, r.role
            )
        };
        println!(
            "{} expires at {} and the daemon cannot sign it alone: it needs its key holder ({how})",
            r.role, r.expires
        );
    }
    println!("targets: {}", s.target_count);
    if s.last_refresh.is_empty() {
        println!("online roles last re-signed by the daemon: never");
    } else {
        println!(
            "online roles last re-signed by the daemon: {} ({})",
            s.last_refresh, s.last_refresh_detail
        );
    }
    println!("next re-signing due: {}", s.next_refresh);
    if !s.last_error.is_empty() {
        println!("last refresh failed: {}", s.last_error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30").unwrap(), 30);
        assert_eq!(parse_duration("5m").unwrap(), 300);
        assert_eq!(parse_duration("2d").unwrap(), 172_800);
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("5w").is_err());
        assert_eq!(
            parse_expiry("timestamp=6h").unwrap(),
            ("timestamp".to_owned(), 21_600)
        );
        assert!(parse_expiry("6h").is_err());
    }
}
