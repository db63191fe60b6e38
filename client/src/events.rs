//! Rendering the daemon's trust event streams: progress and touch requests
//! on stderr, the result on stdout.

use crate::output::{Failure, Output};
use crate::term::Term;
use serde_json::{Value, json};
use tufd_proto::v1::{self, trust_event::Event};

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
                if out.json() {
                    out.print_json(&result_json(&r));
                } else {
                    term.out(&result_text(&r));
                }
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

/// "Touch your YubiKey (serial N) to sign ROLE for REPO".
pub(crate) fn touch_line(t: &v1::TouchRequest) -> String {
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

/// The result as JSON (the envelope's data).
fn result_json(r: &v1::TrustResult) -> Value {
    json!({ "changes": r.changes.iter().map(change_json).collect::<Vec<_>>() })
}

/// The result as printed on stdout for people.
fn result_text(r: &v1::TrustResult) -> String {
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
