//! Trust verbs: `signer add/remove`, `sign`, `revoke`, `inspect`,
//! `key rotate`, and the rendering of the daemon's event streams.

use crate::cli::{InspectArgs, RevokeArgs, RotateRole, SignArgs, SignerCommand};
use crate::docker;
use crate::output::{Failure, Output};
use serde_json::{Value, json};
use std::io::{IsTerminal, Write};
use std::path::Path;
use tonic::transport::Channel;
use tufd_proto::names;
use tufd_proto::v1::{self, trust_client::TrustClient, trust_event::Event};

/// Public key files larger than this are not public key files.
const MAX_PUBLIC_KEY_FILE: u64 = 256 * 1024;

/// Where a command writes: stdout for results, stderr for progress,
/// prompts and warnings.
pub struct Term {
    out: Box<dyn Write + Send>,
    err: Box<dyn Write + Send>,
    /// stderr is a terminal: progress is one line updated in place.
    err_tty: bool,
    /// An updating status line is on screen and must be cleared.
    status_shown: bool,
}

impl Term {
    /// The process's stdout and stderr.
    pub fn stdio() -> Self {
        Term {
            out: Box::new(std::io::stdout()),
            err: Box::new(std::io::stderr()),
            err_tty: std::io::stderr().is_terminal(),
            status_shown: false,
        }
    }

    /// Writers of the caller's choice (tests).
    #[cfg(test)]
    pub fn new(out: Box<dyn Write + Send>, err: Box<dyn Write + Send>, err_tty: bool) -> Self {
        Term {
            out,
            err,
            err_tty,
            status_shown: false,
        }
    }

    // Write errors on stdout/stderr (a closed pipe) are ignored, as
    // `println!` users expect the command's own result to decide the exit.
    fn out(&mut self, text: &str) {
        let _ = self.out.write_all(text.as_bytes());
        let _ = self.out.flush();
    }

    /// A line on stderr, below any status line.
    fn note(&mut self, line: &str) {
        self.clear_status();
        let _ = writeln!(self.err, "{line}");
        let _ = self.err.flush();
    }

    /// A question on stderr, the answer typed on the same line.
    fn prompt(&mut self, question: &str) {
        self.clear_status();
        let _ = write!(self.err, "{question}");
        let _ = self.err.flush();
    }

    /// A transient line: updated in place on a terminal, else one line each.
    fn status(&mut self, line: &str) {
        if self.err_tty {
            let _ = write!(self.err, "\r\x1b[2K{line}");
            self.status_shown = true;
            let _ = self.err.flush();
        } else {
            self.note(line);
        }
    }

    fn clear_status(&mut self) {
        if self.status_shown {
            let _ = write!(self.err, "\r\x1b[2K");
            let _ = self.err.flush();
            self.status_shown = false;
        }
    }
}

/// A name refused by the shared rules ([`names`]), as bad input (exit 2).
fn bad_name(e: names::NameError) -> Failure {
    Failure::input(e.to_string())
}

/// A repository without a tag (signer and rotation verbs act on
/// repositories), normalized as docker does: the name the daemon uses.
fn check_untagged(repo: &str) -> Result<String, Failure> {
    names::repository(repo).map_err(bad_name)
}

/// `sha256:` followed by 64 lowercase hex digits.
pub fn check_digest(digest: &str) -> Result<(), Failure> {
    let hex = digest.strip_prefix("sha256:").ok_or_else(|| {
        Failure::input(format!(
            "digest \"{digest}\" must start with sha256: (e.g. sha256:0f8b…, 64 hex digits)"
        ))
    })?;
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(Failure::input(format!(
            "digest \"{digest}\" must be sha256: followed by 64 lowercase hex digits ({} given)",
            hex.len()
        )));
    }
    Ok(())
}

/// docker's signer names: `^[a-z0-9][a-z0-9_-]*$`, not `releases`.
fn check_signer_name(name: &str) -> Result<(), Failure> {
    names::check_signer_name(name).map_err(bad_name)
}

/// Reads a signer's public key file: PEM `PUBLIC KEY` (as `key generate`
/// writes, `role:` header allowed) or `CERTIFICATE`. A private key is
/// refused, so it never leaves the machine by mistake.
fn read_public_key(path: &Path) -> Result<String, Failure> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Failure::input(format!("cannot read {}: {e}", path.display())))?;
    if meta.len() > MAX_PUBLIC_KEY_FILE {
        return Err(Failure::input(format!(
            "{} is {} bytes: too large for a public key file",
            path.display(),
            meta.len()
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::input(format!("cannot read {}: {e}", path.display())))?;
    if text.contains("PRIVATE KEY-----") {
        return Err(Failure::input(format!(
            "{} holds a private key; give the public key (NAME.pub from `tufctl key generate` or `docker trust key generate`)",
            path.display()
        )));
    }
    let blocks = pem::parse_many(&text)
        .map_err(|e| Failure::input(format!("{} is not a PEM file: {e}", path.display())))?;
    match blocks.first().map(|b| b.tag()) {
        Some("PUBLIC KEY") | Some("CERTIFICATE") => Ok(text),
        Some(other) => Err(Failure::input(format!(
            "{} holds a PEM {other}; expected PUBLIC KEY or CERTIFICATE",
            path.display()
        ))),
        None => Err(Failure::input(format!(
            "{} holds no PEM block; expected PUBLIC KEY or CERTIFICATE",
            path.display()
        ))),
    }
}

/// Checks a trust command's input before connecting, so bad input exits
/// with code 2 whether or not the daemon runs. The verbs check again.
pub fn precheck(cmd: &crate::cli::Command) -> Result<(), Failure> {
    use crate::cli::{Command, KeyCommand};
    match cmd {
        Command::Signer {
            command: SignerCommand::Add {
                name, repos, key, ..
            },
        } => {
            check_signer_name(name)?;
            repos.iter().try_for_each(|r| check_untagged(r).map(drop))?;
            read_public_key(key).map(drop)
        }
        Command::Signer {
            command: SignerCommand::Remove { name, repos, .. },
        } => {
            check_signer_name(name)?;
            repos.iter().try_for_each(|r| check_untagged(r).map(drop))
        }
        Command::Sign(args) => sign_request(args).map(drop),
        Command::Verify(args) => args
            .request(std::env::var("DOCKER_CONTENT_TRUST").ok().as_deref())
            .map(drop),
        Command::Revoke(args) => check_reference(&args.reference).map(drop),
        Command::Inspect(args) => args
            .repos
            .iter()
            .try_for_each(|r| check_reference(r).map(drop)),
        Command::Repair { repo }
        | Command::Trust {
            command: crate::cli::TrustCommand::Forget { repo },
        } => check_untagged(repo).map(drop),
        Command::Key {
            command:
                KeyCommand::Rotate {
                    repo,
                    role,
                    token,
                    server_managed,
                },
        } => {
            check_untagged(repo)?;
            rotation_server_managed(*role, token.is_some(), *server_managed).map(drop)
        }
        _ => Ok(()),
    }
}

/// `REPO` or `REPO:TAG`: the normalized repository and the tag.
fn check_reference(reference: &str) -> Result<(String, Option<String>), Failure> {
    names::maybe_tagged(reference).map_err(bad_name)
}

/// Whether the new key is server-managed: always for timestamp, on request
/// for snapshot, never for root and targets.
fn rotation_server_managed(
    role: RotateRole,
    token: bool,
    server_managed: bool,
) -> Result<bool, Failure> {
    let managed = match role {
        RotateRole::Timestamp => true,
        RotateRole::Snapshot => server_managed,
        RotateRole::Root | RotateRole::Targets if server_managed => {
            return Err(Failure::input(format!(
                "--server-managed applies to snapshot and timestamp keys; {} keys stay on a token",
                role.as_str()
            )));
        }
        RotateRole::Root | RotateRole::Targets => false,
    };
    if managed && token {
        return Err(Failure::input(
            "--token and --server-managed exclude each other: a server-managed key is not on a token",
        ));
    }
    Ok(managed)
}

/// Renders a trust operation's events until its result.
///
/// Progress and touch requests go to stderr; the result goes to stdout as
/// text (one line per repository) or JSON. A stream that ends without a
/// result is an error: the operation may or may not have been applied.
pub async fn follow(
    mut stream: tonic::Streaming<v1::TrustEvent>,
    term: &mut Term,
    out: &Output,
) -> Result<(), Failure> {
    loop {
        let event = match stream.message().await {
            Ok(Some(e)) => e,
            Ok(None) => {
                term.clear_status();
                return Err(Failure::daemon(
                    "Unavailable",
                    "the daemon ended the operation without a result: it may or may not have been applied; check with `tufctl inspect REPO`",
                ));
            }
            Err(status) if broken_connection(&status) => {
                term.clear_status();
                return Err(Failure::daemon(
                    "Unavailable",
                    format!(
                        "the connection to the daemon broke before the operation answered (did the daemon stop or die?): the outcome is unknown, the change may or may not have been published; check with `tufctl inspect REPO` ({})",
                        status.message()
                    ),
                ));
            }
            Err(status) => {
                term.clear_status();
                return Err(Failure::from(status));
            }
        };
        match event.event {
            Some(Event::Progress(p)) => term.status(&progress_line(&p)),
            Some(Event::Touch(t)) => term.status(&touch_line(&t)),
            Some(Event::Result(r)) => {
                term.clear_status();
                term.out(&result_text(&r, out));
                return Ok(());
            }
            None => {}
        }
    }
}

/// Whether `status` comes from the transport (the stream broke) rather
/// than from the daemon: a daemon's answer carries no source error.
fn broken_connection(status: &tonic::Status) -> bool {
    use std::error::Error;
    status.source().is_some() || status.message().contains("h2 protocol error")
}

fn progress_line(p: &v1::Progress) -> String {
    if p.repository.is_empty() {
        p.message.clone()
    } else {
        format!("{}: {}", p.repository, p.message)
    }
}

fn touch_line(t: &v1::TouchRequest) -> String {
    let device = if t.device.is_empty() {
        "YubiKey"
    } else {
        &t.device
    };
    let serial = if t.serial.is_empty() {
        String::new()
    } else {
        format!(" (serial {})", t.serial)
    };
    let role = if t.role.is_empty() {
        "metadata"
    } else {
        &t.role
    };
    let repo = if t.repository.is_empty() {
        String::new()
    } else {
        format!(" for {}", t.repository)
    };
    format!("Touch your {device}{serial} to sign {role}{repo}")
}

/// One repository change as JSON (stable field names for scripts).
fn change_json(c: &v1::RepositoryChange) -> Value {
    json!({
        "repository": c.repository,
        "initialized": c.initialized,
        "published": c.published.iter().map(|r| json!({"role": r.role, "version": r.version})).collect::<Vec<_>>(),
        "summary": c.summary,
        "attempts": c.attempts,
    })
}

/// The result as printed on stdout.
fn result_text(r: &v1::TrustResult, out: &Output) -> String {
    if out.json() {
        let v = json!({ "changes": r.changes.iter().map(change_json).collect::<Vec<_>>() });
        return format!(
            "{}\n",
            serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string())
        );
    }
    let mut text = String::new();
    for c in &r.changes {
        let mut line = format!("{}: ", c.repository);
        // The summary may already name the repository.
        let summary = c.summary.strip_prefix(line.as_str()).unwrap_or(&c.summary);
        line.push_str(if summary.is_empty() { "done" } else { summary });
        let mut notes = Vec::new();
        if c.initialized {
            notes.push("repository initialized".to_owned());
        }
        if !c.published.is_empty() {
            let roles: Vec<String> = c
                .published
                .iter()
                .map(|r| format!("{} v{}", r.role, r.version))
                .collect();
            notes.push(format!("published {}", roles.join(", ")));
        }
        if c.attempts > 1 {
            notes.push(format!("{} attempts", c.attempts));
        }
        if !notes.is_empty() {
            line.push_str(&format!(" ({})", notes.join("; ")));
        }
        text.push_str(&line);
        text.push('\n');
    }
    if r.changes.is_empty() {
        text.push_str("Nothing changed.\n");
    }
    text
}

/// `tufctl signer add|remove`.
pub async fn signer(
    cmd: SignerCommand,
    channel: Channel,
    term: &mut Term,
    out: &Output,
) -> Result<(), Failure> {
    let mut client = TrustClient::new(channel);
    let stream = match cmd {
        SignerCommand::Add {
            name,
            repos,
            key,
            token,
            client_snapshot,
        } => {
            check_signer_name(&name)?;
            let repos = repos
                .iter()
                .map(|r| check_untagged(r))
                .collect::<Result<Vec<_>, _>>()?;
            let public_key_pem = read_public_key(&key)?;
            client
                .add_signer(v1::AddSignerRequest {
                    signer: name,
                    repositories: repos,
                    public_key_pem,
                    token: token.unwrap_or_default(),
                    client_snapshot,
                })
                .await?
        }
        SignerCommand::Remove { name, repos, force } => {
            check_signer_name(&name)?;
            let repos = repos
                .iter()
                .map(|r| check_untagged(r))
                .collect::<Result<Vec<_>, _>>()?;
            client
                .remove_signer(v1::RemoveSignerRequest {
                    signer: name,
                    repositories: repos,
                    force,
                })
                .await?
        }
    };
    follow(stream.into_inner(), term, out).await
}

/// The `SignRequest` for `tufctl sign`, checked.
fn sign_request(args: &SignArgs) -> Result<v1::SignRequest, Failure> {
    if let Some(d) = &args.digest {
        check_digest(d)?;
        if args.size == Some(0) {
            return Err(Failure::input(
                "--size 0: a manifest is never empty; give its size in bytes",
            ));
        }
    }
    let listed = match &args.tags_from {
        Some(path) => crate::tag_list::read(path)?,
        None => Vec::new(),
    };
    let given = args.tags.iter().map(|r| (r.as_str(), None));
    let all = given.chain(listed.iter().map(|(r, m)| (r.as_str(), m.as_ref())));
    let mut tags = Vec::with_capacity(args.tags.len() + listed.len());
    let mut seen = std::collections::HashSet::with_capacity(tags.capacity());
    for (reference, manifest) in all {
        let (repo, tag) = names::tagged(reference).map_err(bad_name)?;
        if !seen.insert((repo.clone(), tag.clone())) {
            return Err(Failure::input(format!("{reference} is given twice")));
        }
        let (digest, size) = match manifest {
            Some((d, s)) => (d.clone(), *s),
            None => (
                args.digest.clone().unwrap_or_default(),
                args.size.unwrap_or_default(),
            ),
        };
        tags.push(v1::TagToSign {
            repository: repo,
            tag,
            digest,
            size,
        });
    }
    Ok(v1::SignRequest { tags })
}

/// `tufctl sign`.
pub async fn sign(
    args: SignArgs,
    channel: Channel,
    term: &mut Term,
    out: &Output,
) -> Result<(), Failure> {
    let request = sign_request(&args)?;
    let stream = TrustClient::new(channel).sign(request).await?;
    follow(stream.into_inner(), term, out).await
}

/// `tufctl revoke`.
pub async fn revoke(
    args: RevokeArgs,
    channel: Channel,
    term: &mut Term,
    out: &Output,
) -> Result<(), Failure> {
    let (repo, tag) = check_reference(&args.reference)?;
    if tag.is_none() && !args.yes {
        if !std::io::stdin().is_terminal() {
            return Err(Failure::input(format!(
                "revoking every signed tag of {repo} needs confirmation: pass --yes"
            )));
        }
        term.prompt(&format!(
            "Confirm you would like to delete all signature data for {repo}? [y/N] "
        ));
        let mut answer = String::new();
        std::io::stdin()
            .read_line(&mut answer)
            .map_err(|e| Failure::input(format!("cannot read the answer: {e}")))?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Err(Failure::input("not confirmed; nothing was revoked"));
        }
    }
    let stream = TrustClient::new(channel)
        .revoke(v1::RevokeRequest {
            repository: repo,
            tag: tag.unwrap_or_default(),
        })
        .await?;
    follow(stream.into_inner(), term, out).await
}

/// `tufctl repair`.
pub async fn repair(
    repo: String,
    channel: Channel,
    term: &mut Term,
    out: &Output,
) -> Result<(), Failure> {
    check_untagged(&repo)?;
    let stream = TrustClient::new(channel)
        .repair(v1::RepairRequest { repository: repo })
        .await?;
    follow(stream.into_inner(), term, out).await
}

/// `tufctl trust forget`.
pub async fn forget(repo: String, channel: Channel, out: &Output) -> Result<(), Failure> {
    check_untagged(&repo)?;
    let r = TrustClient::new(channel)
        .forget(v1::ForgetRequest {
            repository: repo.clone(),
        })
        .await?
        .into_inner();
    if out.json() {
        out.print_json(&json!({ "repository": repo, "forgotten": r.forgotten }));
    } else if r.forgotten {
        println!(
            "{repo}: removed from the trust store; the next operation trusts the root the server serves then"
        );
    } else {
        println!("{repo}: not in the trust store; nothing to forget");
    }
    Ok(())
}

/// `tufctl key rotate`.
pub async fn rotate(
    repo: String,
    role: RotateRole,
    token: Option<String>,
    server_managed: bool,
    channel: Channel,
    term: &mut Term,
    out: &Output,
) -> Result<(), Failure> {
    let repo = check_untagged(&repo)?;
    let server_managed = rotation_server_managed(role, token.is_some(), server_managed)?;
    let stream = TrustClient::new(channel)
        .rotate_key(v1::RotateKeyRequest {
            repository: repo,
            role: role.as_str().to_owned(),
            server_managed,
            token: token.unwrap_or_default(),
        })
        .await?;
    follow(stream.into_inner(), term, out).await
}

/// The current time as RFC 3339 UTC seconds (`2026-11-25T16:30:00Z`), to
/// compare with the daemon's expiry times.
fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc3339_of_unix(secs)
}

/// Days-to-civil (Howard Hinnant's algorithm) for a Unix time in seconds.
fn rfc3339_of_unix(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Expiry warnings of one repository, for stderr.
fn expiry_lines(r: &v1::RepositoryInspection, now: &str) -> Vec<String> {
    r.expiry_warnings
        .iter()
        .map(|w| {
            // RFC 3339 UTC times of one layout compare as strings.
            let verb = if w.expires.is_empty() {
                "expires soon".to_owned()
            } else if w.expires.as_str() <= now {
                format!("EXPIRED {}", w.expires)
            } else {
                format!("expires {}", w.expires)
            };
            format!("warning: {}: {} {verb}", r.name, w.role)
        })
        .collect()
}

/// `tufctl inspect`: one request per repository, so one failure does not
/// hide the others (docker prints what it could read and exits 1).
pub async fn inspect(
    args: InspectArgs,
    channel: Channel,
    term: &mut Term,
    out: &Output,
) -> Result<(), Failure> {
    for r in &args.repos {
        check_reference(r)?;
    }
    let mut client = TrustClient::new(channel);
    let mut found = Vec::new();
    let mut failures: Vec<(String, tonic::Status)> = Vec::new();
    for r in &args.repos {
        match crate::inspect_stream::inspect_one(&mut client, r).await {
            Ok(repos) => found.extend(repos),
            Err(status) if status.code() == tonic::Code::Unavailable && found.is_empty() => {
                return Err(Failure::from(status));
            }
            Err(status) => failures.push((r.clone(), status)),
        }
    }
    let now = now_rfc3339();
    for r in &found {
        for line in expiry_lines(r, &now) {
            term.note(&line);
        }
    }
    // With --output json a failure is reported as {"error": …} alone.
    if !out.json() || failures.is_empty() {
        if args.pretty {
            term.out(&docker::inspect_pretty(&found));
        } else {
            term.out(&docker::inspect_json(&found));
        }
    }
    let Some((_, first)) = failures.first() else {
        return Ok(());
    };
    let message = failures
        .iter()
        .map(|(r, s)| {
            let m = if s.message().is_empty() {
                format!("{:?}", s.code())
            } else {
                s.message().to_owned()
            };
            if m.contains(r.as_str()) {
                m
            } else {
                format!("{r}: {m}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    Err(Failure::daemon(&format!("{:?}", first.code()), message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Format;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use tokio_stream::wrappers::UnixListenerStream;
    use tonic::{Request, Response, Status};
    use tufd_proto::v1::trust_server::{Trust, TrustServer};

    /// A writer tests can read back.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buf {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().map(|v| v.clone()).unwrap_or_default()).expect("utf-8")
        }
    }

    type EventStream =
        Pin<Box<dyn tokio_stream::Stream<Item = Result<v1::TrustEvent, Status>> + Send>>;

    /// A daemon that answers every operation with a scripted stream and
    /// records the requests.
    #[derive(Clone, Default)]
    struct Fake {
        script: Vec<Result<v1::TrustEvent, Status>>,
        seen: Arc<Mutex<Vec<String>>>,
    }

    impl Fake {
        fn answer(&self, req: String) -> Result<Response<EventStream>, Status> {
            if let Ok(mut seen) = self.seen.lock() {
                seen.push(req);
            }
            let items = self.script.clone();
            Ok(Response::new(Box::pin(tokio_stream::iter(items))))
        }
    }

    #[tonic::async_trait]
    impl Trust for Fake {
        async fn verify(
            &self,
            _: Request<v1::VerifyRequest>,
        ) -> Result<Response<v1::VerifyResponse>, Status> {
            Err(Status::unimplemented("not in this fake"))
        }

        type AddSignerStream = EventStream;
        type RemoveSignerStream = EventStream;
        type SignStream = EventStream;
        type RevokeStream = EventStream;
        type RotateKeyStream = EventStream;
        type RepairStream = EventStream;

        async fn repair(
            &self,
            r: Request<v1::RepairRequest>,
        ) -> Result<Response<EventStream>, Status> {
            self.answer(format!("{:?}", r.into_inner()))
        }
        async fn forget(
            &self,
            r: Request<v1::ForgetRequest>,
        ) -> Result<Response<v1::ForgetResponse>, Status> {
            let _ = self.answer(format!("{:?}", r.into_inner()));
            Ok(Response::new(v1::ForgetResponse { forgotten: true }))
        }
        async fn add_signer(
            &self,
            r: Request<v1::AddSignerRequest>,
        ) -> Result<Response<EventStream>, Status> {
            self.answer(format!("{:?}", r.into_inner()))
        }
        async fn remove_signer(
            &self,
            r: Request<v1::RemoveSignerRequest>,
        ) -> Result<Response<EventStream>, Status> {
            self.answer(format!("{:?}", r.into_inner()))
        }
        async fn sign(&self, r: Request<v1::SignRequest>) -> Result<Response<EventStream>, Status> {
            self.answer(format!("{:?}", r.into_inner()))
        }
        async fn revoke(
            &self,
            r: Request<v1::RevokeRequest>,
        ) -> Result<Response<EventStream>, Status> {
            self.answer(format!("{:?}", r.into_inner()))
        }
        async fn rotate_key(
            &self,
            r: Request<v1::RotateKeyRequest>,
        ) -> Result<Response<EventStream>, Status> {
            self.answer(format!("{:?}", r.into_inner()))
        }
        type InspectStreamStream =
            Pin<Box<dyn tokio_stream::Stream<Item = Result<v1::InspectPart, Status>> + Send>>;

        /// Like a daemon older than InspectStream: tufctl falls back to
        /// the unary Inspect.
        async fn inspect_stream(
            &self,
            _: Request<v1::InspectRequest>,
        ) -> Result<Response<Self::InspectStreamStream>, Status> {
            Err(Status::unimplemented("not in this fake"))
        }
        async fn inspect(
            &self,
            r: Request<v1::InspectRequest>,
        ) -> Result<Response<v1::InspectResponse>, Status> {
            let repos = r.into_inner().repositories;
            if repos.iter().any(|r| r.contains("missing")) {
                return Err(Status::not_found(format!(
                    "no signatures or cannot access {}",
                    repos.join(", ")
                )));
            }
            Ok(Response::new(v1::InspectResponse {
                repositories: repos
                    .into_iter()
                    .map(|name| v1::RepositoryInspection {
                        name,
                        signed_tags: vec![v1::SignedTag {
                            tag: "v1".into(),
                            digest: "ab".repeat(32),
                            size: 527,
                            signers: vec!["Repo Admin".into()],
                        }],
                        signers: vec![],
                        administrative_keys: vec![
                            v1::RoleKeyList {
                                name: "Root".into(),
                                key_ids: vec!["11".repeat(32)],
                            },
                            v1::RoleKeyList {
                                name: "Repository".into(),
                                key_ids: vec!["22".repeat(32)],
                            },
                        ],
                        expiry_warnings: vec![v1::ExpiryWarning {
                            role: "targets".into(),
                            expires: "2027-01-01T00:00:00Z".into(),
                        }],
                    })
                    .collect(),
            }))
        }
    }

    /// Serves `fake` on a Unix socket in a temporary directory.
    async fn serve(fake: Fake) -> (Channel, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tufd.sock");
        let listener = tokio::net::UnixListener::bind(&path).expect("bind");
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TrustServer::new(fake))
                .serve_with_incoming(UnixListenerStream::new(listener)),
        );
        let channel = crate::connect::connect(&path, None).await.expect("connect");
        (channel, dir)
    }

    fn progress(repo: &str, message: &str) -> Result<v1::TrustEvent, Status> {
        Ok(v1::TrustEvent {
            event: Some(Event::Progress(v1::Progress {
                repository: repo.into(),
                message: message.into(),
            })),
        })
    }

    fn touch() -> Result<v1::TrustEvent, Status> {
        Ok(v1::TrustEvent {
            event: Some(Event::Touch(v1::TouchRequest {
                device: "YubiKey".into(),
                serial: "12345678".into(),
                role: "targets/releases".into(),
                repository: "reg/app".into(),
            })),
        })
    }

    fn result() -> Result<v1::TrustEvent, Status> {
        Ok(v1::TrustEvent {
            event: Some(Event::Result(v1::TrustResult {
                changes: vec![v1::RepositoryChange {
                    repository: "reg/app".into(),
                    initialized: false,
                    published: vec![
                        v1::RoleVersion {
                            role: "targets/releases".into(),
                            version: 3,
                        },
                        v1::RoleVersion {
                            role: "snapshot".into(),
                            version: 5,
                        },
                    ],
                    summary: "reg/app: signed v1 into targets/releases".into(),
                    attempts: 2,
                }],
            })),
        })
    }

    fn term(tty: bool) -> (Term, Buf, Buf) {
        let (o, e) = (Buf::default(), Buf::default());
        (
            Term::new(Box::new(o.clone()), Box::new(e.clone()), tty),
            o,
            e,
        )
    }

    fn sign_args(tags: &[&str], digest: Option<&str>) -> SignArgs {
        SignArgs {
            tags: tags.iter().map(|s| s.to_string()).collect(),
            digest: digest.map(str::to_owned),
            size: digest.map(|_| 527),
            tags_from: None,
        }
    }

    const DIGEST: &str = "sha256:0f8b2d4e5c1a0f8b2d4e5c1a0f8b2d4e5c1a0f8b2d4e5c1a0f8b2d4e5c1a0f8b";

    #[tokio::test]
    async fn stream_renders_progress_touch_and_result() {
        let fake = Fake {
            script: vec![progress("reg/app", "reading metadata"), touch(), result()],
            ..Default::default()
        };
        let (channel, _dir) = serve(fake.clone()).await;
        let (mut t, o, e) = term(false);
        let out = Output::new(Format::Text);
        sign(
            sign_args(&["reg/app:v1", "reg/app:v2"], Some(DIGEST)),
            channel,
            &mut t,
            &out,
        )
        .await
        .expect("sign");
        assert_eq!(
            e.text(),
            "reg/app: reading metadata\nTouch your YubiKey (serial 12345678) to sign targets/releases for reg/app\n"
        );
        assert_eq!(
            o.text(),
            "reg/app: signed v1 into targets/releases (published targets/releases v3, snapshot v5; 2 attempts)\n"
        );
        // One request with both tags.
        let seen = fake.seen.lock().expect("lock").clone();
        assert_eq!(seen.len(), 1);
        assert!(seen[0].contains("tag: \"v1\"") && seen[0].contains("tag: \"v2\""));
    }

    #[tokio::test]
    async fn terminal_progress_is_one_updating_line() {
        let fake = Fake {
            script: vec![progress("reg/app", "one"), touch(), result()],
            ..Default::default()
        };
        let (channel, _dir) = serve(fake).await;
        let (mut t, _, e) = term(true);
        let out = Output::new(Format::Text);
        sign(
            sign_args(&["reg/app:v1"], Some(DIGEST)),
            channel,
            &mut t,
            &out,
        )
        .await
        .expect("sign");
        let err = e.text();
        assert!(!err.contains('\n'), "{err:?}");
        assert!(err.starts_with("\r\x1b[2Kreg/app: one\r\x1b[2KTouch your YubiKey"));
        assert!(err.ends_with("\r\x1b[2K"), "status line cleared: {err:?}");
    }

    #[tokio::test]
    async fn result_as_json() {
        let fake = Fake {
            script: vec![result()],
            ..Default::default()
        };
        let (channel, _dir) = serve(fake).await;
        let (mut t, o, _) = term(false);
        let out = Output::new(Format::Json);
        sign(
            sign_args(&["reg/app:v1"], Some(DIGEST)),
            channel,
            &mut t,
            &out,
        )
        .await
        .expect("sign");
        let v: Value = serde_json::from_str(&o.text()).expect("json");
        assert_eq!(v["changes"][0]["repository"], "reg/app");
        assert_eq!(v["changes"][0]["published"][1]["version"], 5);
        assert_eq!(v["changes"][0]["attempts"], 2);
    }

    #[tokio::test]
    async fn stream_without_result_is_an_error() {
        let fake = Fake {
            script: vec![progress("reg/app", "publishing")],
            ..Default::default()
        };
        let (channel, _dir) = serve(fake).await;
        let (mut t, o, _) = term(false);
        let out = Output::new(Format::Text);
        let err = sign(sign_args(&["reg/app:v1"], None), channel, &mut t, &out)
            .await
            .expect_err("no result");
        assert_eq!(err.exit_code(), 1);
        assert!(err.message.contains("without a result"), "{}", err.message);
        assert!(o.text().is_empty());
    }

    #[tokio::test]
    async fn daemon_error_mid_stream_is_exit_1() {
        let fake = Fake {
            script: vec![
                progress("reg/app", "signing"),
                Err(Status::permission_denied("no key for targets/releases")),
            ],
            ..Default::default()
        };
        let (channel, _dir) = serve(fake).await;
        let (mut t, _, _) = term(false);
        let out = Output::new(Format::Text);
        let err = revoke(
            RevokeArgs {
                reference: "reg/app:v1".into(),
                yes: false,
            },
            channel,
            &mut t,
            &out,
        )
        .await
        .expect_err("denied");
        assert_eq!(
            (err.exit_code(), err.code.as_str()),
            (1, "PermissionDenied")
        );
        assert_eq!(err.message, "no key for targets/releases");
    }

    #[tokio::test]
    async fn inspect_prints_docker_json_and_reports_failures() {
        let (channel, _dir) = serve(Fake::default()).await;
        let (mut t, o, e) = term(false);
        let out = Output::new(Format::Text);
        let err = inspect(
            InspectArgs {
                repos: vec!["reg/app".into(), "reg/missing".into()],
                pretty: false,
            },
            channel,
            &mut t,
            &out,
        )
        .await
        .expect_err("one repository is missing");
        assert_eq!(err.exit_code(), 1);
        assert_eq!(err.message, "no signatures or cannot access reg/missing");
        let json: Value = serde_json::from_str(&o.text()).expect("docker JSON");
        assert_eq!(json.as_array().map(Vec::len), Some(1));
        assert_eq!(json[0]["SignedTags"][0]["Signers"][0], "Repo Admin");
        assert!(
            o.text()
                .starts_with("[\n    {\n        \"Name\": \"reg/app\",\n")
        );
        assert_eq!(
            e.text(),
            "warning: reg/app: targets expires 2027-01-01T00:00:00Z\n"
        );
    }

    #[tokio::test]
    async fn inspect_pretty() {
        let (channel, _dir) = serve(Fake::default()).await;
        let (mut t, o, _) = term(false);
        let out = Output::new(Format::Text);
        inspect(
            InspectArgs {
                repos: vec!["reg/app:v1".into()],
                pretty: true,
            },
            channel,
            &mut t,
            &out,
        )
        .await
        .expect("inspect");
        assert!(
            o.text()
                .starts_with("\nSignatures for reg/app:v1\n\nSIGNED TAG   DIGEST")
        );
        assert!(o.text().contains("   (Repo Admin)\n"));
    }

    #[test]
    fn sign_arguments_are_checked_before_asking() {
        let req = sign_request(&sign_args(
            &["localhost:5000/a/b:v1", "reg/c:latest"],
            Some(DIGEST),
        ))
        .expect("valid");
        assert_eq!(req.tags.len(), 2);
        assert_eq!(req.tags[0].repository, "localhost:5000/a/b");
        assert_eq!((req.tags[0].tag.as_str(), req.tags[0].size), ("v1", 527));
        // Short names are normalized as docker does.
        assert_eq!(req.tags[1].repository, "docker.io/reg/c");
        let req = sign_request(&sign_args(&["alpine:3"], Some(DIGEST))).expect("valid");
        assert_eq!(req.tags[0].repository, "docker.io/library/alpine");
        // No digest: sent empty, the daemon answers.
        let req = sign_request(&sign_args(&["reg/a:v1"], None)).expect("valid");
        assert_eq!(req.tags[0].digest, "");
        for (tags, digest) in [
            (vec!["localhost:5000/a/b"], Some(DIGEST)),
            (vec!["reg/a:bad\ttag"], Some(DIGEST)),
            (vec!["reg/a:a<b>&c-ü€"], Some(DIGEST)),
            (vec!["reg/a:a:b"], Some(DIGEST)),
            (vec!["reg/A:v1"], Some(DIGEST)),
            (vec!["reg/a:"], Some(DIGEST)),
            (vec!["reg/a:v1", "reg/a:v1"], Some(DIGEST)),
            (vec!["reg/a:v1"], Some("sha256:ABC")),
            (vec!["reg/a:v1"], Some(&DIGEST.to_uppercase())),
            (
                vec!["reg/a:v1"],
                Some("0f8b2d4e5c1a0f8b2d4e5c1a0f8b2d4e5c1a0f8b2d4e5c1a0f8b2d4e5c1a0f8b"),
            ),
            (vec!["reg/a@sha256:00:v1"], Some(DIGEST)),
        ] {
            let err = sign_request(&sign_args(&tags, digest)).expect_err("invalid");
            assert_eq!(err.exit_code(), 2, "{tags:?} {digest:?}: {}", err.message);
        }
        let mut zero = sign_args(&["reg/a:v1"], Some(DIGEST));
        zero.size = Some(0);
        assert_eq!(sign_request(&zero).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn signer_names_follow_docker() {
        for ok in ["alice", "ci-bot_2", "0day"] {
            check_signer_name(ok).expect(ok);
        }
        for bad in ["", "Alice", "-x", "_x", "a b", "releases", "a/b"] {
            assert!(check_signer_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn public_key_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).expect("write");
            p
        };
        let key = write(
            "alice.pub",
            "-----BEGIN PUBLIC KEY-----\nrole: alice\n\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n",
        );
        assert!(read_public_key(&key).is_ok());
        let private = write(
            "alice.key",
            "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\n",
        );
        let err = read_public_key(&private).expect_err("private key");
        assert!(err.message.contains("private key"), "{}", err.message);
        assert!(read_public_key(&write("x.pub", "not pem")).is_err());
        assert!(read_public_key(&dir.path().join("absent.pub")).is_err());
    }

    #[test]
    fn expiry_wording() {
        assert_eq!(rfc3339_of_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_of_unix(1_795_624_200), "2026-11-25T16:30:00Z");
        assert_eq!(rfc3339_of_unix(951_782_400), "2000-02-29T00:00:00Z");
        let r = v1::RepositoryInspection {
            name: "reg/app".into(),
            expiry_warnings: vec![
                v1::ExpiryWarning {
                    role: "targets".into(),
                    expires: "2027-01-01T00:00:00.5Z".into(),
                },
                v1::ExpiryWarning {
                    role: "timestamp".into(),
                    expires: "2026-11-01T00:00:00Z".into(),
                },
            ],
            ..Default::default()
        };
        assert_eq!(
            expiry_lines(&r, "2026-11-25T16:30:00Z"),
            [
                "warning: reg/app: targets expires 2027-01-01T00:00:00.5Z",
                "warning: reg/app: timestamp EXPIRED 2026-11-01T00:00:00Z"
            ]
        );
    }

    #[test]
    fn rotation_flags() {
        assert_eq!(
            rotation_server_managed(RotateRole::Timestamp, false, false).ok(),
            Some(true)
        );
        assert_eq!(
            rotation_server_managed(RotateRole::Snapshot, false, true).ok(),
            Some(true)
        );
        assert_eq!(
            rotation_server_managed(RotateRole::Snapshot, true, false).ok(),
            Some(false)
        );
        assert!(rotation_server_managed(RotateRole::Root, false, true).is_err());
        assert!(rotation_server_managed(RotateRole::Snapshot, true, true).is_err());
        assert!(rotation_server_managed(RotateRole::Timestamp, true, false).is_err());
    }

    #[test]
    fn references() {
        assert_eq!(
            check_untagged("localhost:5000/a").unwrap(),
            "localhost:5000/a"
        );
        assert_eq!(
            check_untagged("alpine").unwrap(),
            "docker.io/library/alpine"
        );
        assert_eq!(
            check_reference("localhost:5000/a:v1").unwrap(),
            ("localhost:5000/a".to_owned(), Some("v1".to_owned()))
        );
        assert!(check_untagged("reg/a:v1").is_err());
        assert!(check_untagged("reg//a").is_err());
        assert!(check_untagged("").is_err());
        let e = check_untagged("reg/App").unwrap_err();
        assert!(e.message.contains("must be lowercase"), "{}", e.message);
    }
}
