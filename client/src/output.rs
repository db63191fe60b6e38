//! Printing results and failures, as text for people or JSON for scripts.

use crate::cli::Format;
use serde_json::{Value, json};
use tufd_proto::v1;

/// A failed command: what to tell the user and how to exit.
#[derive(Debug)]
pub struct Failure {
    /// A stable, machine-readable code (the gRPC code name, or `connect`,
    /// `input`).
    pub code: String,
    pub message: String,
    exit: u8,
}

impl Failure {
    /// The daemon could not be reached (exit code 3).
    pub fn connect(message: String) -> Self {
        Self {
            code: "connect".into(),
            message,
            exit: 3,
        }
    }

    /// A problem with the user's input found before asking the daemon
    /// (exit code 2).
    pub fn input(message: impl Into<String>) -> Self {
        Self {
            code: "input".into(),
            message: message.into(),
            exit: 2,
        }
    }

    /// The daemon refused or failed the request (exit code 1), with a code
    /// name like those of gRPC statuses.
    pub fn daemon(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            exit: 1,
        }
    }

    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        self.exit
    }
}

/// The daemon refused or failed the request (exit code 1).
impl From<tonic::Status> for Failure {
    fn from(s: tonic::Status) -> Self {
        let code = format!("{:?}", s.code());
        let message = if s.message().is_empty() {
            format!("the daemon answered {code}")
        } else {
            s.message().to_owned()
        };
        Self {
            code,
            message,
            exit: 1,
        }
    }
}

/// Where results go.
pub struct Output {
    pub format: Format,
}

impl Output {
    pub fn new(format: Format) -> Self {
        Self { format }
    }

    pub fn json(&self) -> bool {
        self.format == Format::Json
    }

    /// Prints a JSON document (pretty, one per command).
    pub fn print_json(&self, v: &Value) {
        println!(
            "{}",
            serde_json::to_string_pretty(v).expect("JSON values always serialize")
        );
    }

    /// Reports a failure: on stderr for people, as JSON on stdout for scripts.
    pub fn error(&self, f: &Failure) {
        if self.json() {
            self.print_json(&json!({"error": {"code": f.code, "message": f.message}}));
        } else {
            eprintln!("tufctl: {}", f.message);
        }
    }
}

fn origin(o: i32) -> &'static str {
    match v1::KeyOrigin::try_from(o) {
        Ok(v1::KeyOrigin::Generated) => "generated",
        Ok(v1::KeyOrigin::Imported) => "imported",
        _ => "unknown",
    }
}

fn state(s: i32) -> &'static str {
    match v1::TokenState::try_from(s) {
        Ok(v1::TokenState::Ready) => "ready",
        Ok(v1::TokenState::Unavailable) => "unavailable",
        Ok(v1::TokenState::PinRejected) => "pin-rejected",
        Ok(v1::TokenState::PinLocked) => "pin-locked",
        _ => "unknown",
    }
}

/// A key as JSON (stable field names for scripts).
pub fn key_json(k: &v1::KeyInfo) -> Value {
    json!({
        "name": k.name,
        "gun": k.gun,
        "key_id": k.key_id,
        "algorithm": k.algorithm,
        "token": k.token,
        "origin": origin(k.origin),
        "sensitive": k.sensitive,
        "extractable": k.extractable,
        "public_key_pem": k.public_key_pem,
    })
}

/// A token as JSON.
pub fn token_json(t: &v1::TokenInfo) -> Value {
    json!({
        "name": t.name,
        "kind": t.kind,
        "state": state(t.state),
        "detail": t.detail,
        "label": t.label,
        "serial": t.serial,
        "manufacturer": t.manufacturer,
        "model": t.model,
        "key_count": t.key_count,
        "default": t.is_default,
    })
}

/// Prints rows as an aligned table with a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}   "));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r.clone());
    }
}

pub fn token_row(t: &v1::TokenInfo) -> Vec<String> {
    let name = if t.is_default {
        format!("{} (default)", t.name)
    } else {
        t.name.clone()
    };
    let keys = if state(t.state) == "ready" {
        t.key_count.to_string()
    } else {
        "-".into()
    };
    vec![
        name,
        t.kind.clone(),
        state(t.state).into(),
        t.label.clone(),
        t.serial.clone(),
        keys,
    ]
}

pub const TOKEN_HEADER: &[&str] = &["TOKEN", "KIND", "STATE", "LABEL", "SERIAL", "KEYS"];

pub fn key_row(k: &v1::KeyInfo) -> Vec<String> {
    vec![
        k.name.clone(),
        if k.gun.is_empty() {
            "-".into()
        } else {
            k.gun.clone()
        },
        k.key_id.clone(),
        k.token.clone(),
        origin(k.origin).into(),
    ]
}

pub const KEY_HEADER: &[&str] = &["NAME", "REPOSITORY", "KEY ID", "TOKEN", "ORIGIN"];
