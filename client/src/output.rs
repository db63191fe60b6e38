//! Printing results and failures, as text for people or JSON for scripts.

use crate::cli::Format;
use serde_json::{Value, json};
use tufd_proto::v1;

const ALREADY_PRINTED: &str = "already-printed";

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

    /// A failure whose details are already on stdout (a JSON document that
    /// lists them): its message goes to stderr even with `--output json`,
    /// so stdout stays one document.
    pub fn already_printed(mut self) -> Self {
        self.code = ALREADY_PRINTED.into();
        self
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
        if self.json() && f.code != ALREADY_PRINTED {
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
        Ok(v1::TokenState::Locked) => "locked",
        Ok(v1::TokenState::Scanning) => "scanning",
        _ => "unknown",
    }
}

fn attestation_state(s: i32) -> &'static str {
    match v1::AttestationState::try_from(s) {
        Ok(v1::AttestationState::Verified) => "verified",
        Ok(v1::AttestationState::Unavailable) => "cannot-attest",
        Ok(v1::AttestationState::NotSupported) => "not-supported",
        Ok(v1::AttestationState::Invalid) => "invalid",
        Ok(v1::AttestationState::Error) => "error",
        _ => "unknown",
    }
}

/// A key's attestation as JSON.
pub fn attestation_json(a: &v1::KeyAttestation) -> Value {
    let mut v = json!({
        "state": attestation_state(a.state),
        "detail": a.detail,
        "generated_on_device": a.generated_on_device,
    });
    if attestation_state(a.state) == "verified" {
        v["device_serial"] = json!(a.device_serial);
        v["firmware_version"] = json!(a.firmware_version);
        v["pin_policy"] = json!(a.pin_policy);
        v["touch_policy"] = json!(a.touch_policy);
        v["chain_to_root"] = json!(a.chain_to_root);
        v["statement_pem"] = json!(a.statement_pem);
        v["intermediate_pem"] = json!(a.intermediate_pem);
    }
    v
}

/// A key's attestation as one sentence for people.
pub fn attestation_text(a: &v1::KeyAttestation) -> String {
    let or_unknown = |s: &str| {
        if s.is_empty() {
            "unknown".to_owned()
        } else {
            s.to_owned()
        }
    };
    match attestation_state(a.state) {
        "verified" => format!(
            "attested: generated on device serial {}, firmware {}, PIN policy {}, touch policy {}; {}",
            or_unknown(&a.device_serial),
            or_unknown(&a.firmware_version),
            or_unknown(&a.pin_policy),
            or_unknown(&a.touch_policy),
            a.detail
        ),
        "cannot-attest" => format!("this device cannot attest ({})", a.detail),
        "not-supported" => a.detail.clone(),
        "invalid" => format!("the attestation DOES NOT VERIFY: {}", a.detail),
        _ => format!("could not ask the device: {}", a.detail),
    }
}

/// A key as JSON (stable field names for scripts).
pub fn key_json(k: &v1::KeyInfo) -> Value {
    let mut v = key_json_base(k);
    if let Some(a) = &k.attestation {
        v["attestation"] = attestation_json(a);
    }
    v
}

fn key_json_base(k: &v1::KeyInfo) -> Value {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attestation_renders_for_people_and_scripts() {
        let verified = v1::KeyAttestation {
            state: v1::AttestationState::Verified as i32,
            detail: "attestation chain verified up to the device's attestation certificate (slot f9) only".into(),
            generated_on_device: true,
            device_serial: "12345678".into(),
            firmware_version: "5.4.3".into(),
            pin_policy: "once".into(),
            touch_policy: "always".into(),
            ..Default::default()
        };
        let text = attestation_text(&verified);
        assert!(
            text.contains("generated on device serial 12345678, firmware 5.4.3, PIN policy once, touch policy always")
                && text.contains("(slot f9) only"),
            "{text}"
        );
        let v = attestation_json(&verified);
        assert_eq!(v["state"], "verified");
        assert_eq!(v["device_serial"], "12345678");
        assert_eq!(v["chain_to_root"], false);

        let cannot = v1::KeyAttestation {
            state: v1::AttestationState::Unavailable as i32,
            detail: "the device answered: not supported".into(),
            ..Default::default()
        };
        assert_eq!(
            attestation_text(&cannot),
            "this device cannot attest (the device answered: not supported)"
        );
        let v = attestation_json(&cannot);
        assert_eq!(v["state"], "cannot-attest");
        assert!(v.get("device_serial").is_none(), "{v}");

        let key = v1::KeyInfo {
            attestation: Some(cannot),
            ..Default::default()
        };
        assert_eq!(key_json(&key)["attestation"]["state"], "cannot-attest");
        assert!(
            key_json(&v1::KeyInfo::default())
                .get("attestation")
                .is_none()
        );
    }
}
