//! The daemon's log: one line per event, whatever a caller puts in a name.
//!
//! Field values come from requests (key, token, signer and repository
//! names, error messages quoting them). Every value is written with its
//! control characters escaped (`\n`, `\r`, `\u{1b}`…), so a newline cannot
//! forge a log line and a terminal escape cannot reach a terminal or the
//! journal. Colours are used only when stderr is a terminal and
//! `NO_COLOR` is unset.

use std::fmt::Write as _;
use std::io::IsTerminal;
use tracing_subscriber::field::MakeExt;

/// `s` with every control character escaped as Rust's `escape_debug` does.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            let _ = write!(out, "{}", c.escape_debug());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Whether to colour the log.
fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Installs the global subscriber: stderr, `filter` (EnvFilter syntax),
/// escaped fields; lines that cannot be written are dropped.
pub fn init(filter: &str) {
    let fields = tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
        let text = format!("{value:?}");
        if field.name() == "message" {
            write!(w, "{}", escape(&text))
        } else {
            write!(w, "{}={}", field.name(), escape(&text))
        }
    })
    .delimited(" ");
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(filter)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // A log that cannot be written (a full disk, the file-size limit
        // on a redirected stderr) must not take requests down with it:
        // tracing's report of its own write error is an `eprintln!`, which
        // panics when stderr cannot be written.
        .log_internal_errors(false)
        .with_ansi(colour())
        .fmt_fields(fields)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape("plain name"), "plain name");
        assert_eq!(
            escape("a\n2026 INFO caller=uid=0 delete\r\u{1b}[31m"),
            "a\\n2026 INFO caller=uid=0 delete\\r\\u{1b}[31m"
        );
    }
}
