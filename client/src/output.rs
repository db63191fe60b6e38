//! Printing results and failures, as text for people or JSON for scripts.

use crate::cli::Format;
use serde_json::{Value, json};
use tufd_proto::v1;

/// The schema of every JSON document tufctl prints: the envelope
/// `{"schema", "verb", "ok", "data", "error"}` documented in
/// `docs/json-output.md` and `client/schema/tufctl-v1.schema.json`.
pub const SCHEMA: &str = "tufctl/v1";

/// A failed command: what to tell the user and how to exit.
#[derive(Debug)]
pub struct Failure {
    /// A stable, machine-readable code (the gRPC code name, or `connect`,
    /// `input`, `usage`, `refused`).
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

/// A command's result for the envelope's `data`.
enum Data {
    Value(Value),
    /// JSON text printed as it is (docker's `inspect` array, whose field
    /// order and escaping are docker's).
    Raw(String),
}

/// Where results go. Under `--output json` a command's result is kept and
/// printed once, inside the envelope, when the command ends ([`Output::finish`]):
/// stdout then holds exactly one JSON document, success or failure.
#[derive(Clone)]
pub struct Output {
    pub format: Format,
    /// The verb, as typed without arguments (`key list`, `signer add`).
    verb: String,
    data: std::rc::Rc<std::cell::RefCell<Option<Data>>>,
}

impl Output {
    #[cfg(test)]
    pub fn new(format: Format) -> Self {
        Self::for_verb(format, String::new())
    }

    /// Output for `verb`.
    pub fn for_verb(format: Format, verb: String) -> Self {
        Self {
            format,
            verb,
            data: Default::default(),
        }
    }

    pub fn json(&self) -> bool {
        self.format == Format::Json
    }

    /// Sets the command's JSON result (the envelope's `data`); printed by
    /// [`Output::finish`].
    pub fn print_json(&self, v: &Value) {
        *self.data.borrow_mut() = Some(Data::Value(v.clone()));
    }

    /// Sets the command's JSON result from JSON text kept byte for byte.
    pub fn print_raw_json(&self, text: &str) {
        *self.data.borrow_mut() = Some(Data::Raw(text.trim_end().to_owned()));
    }

    /// Ends the command: under `--output json` prints the envelope with the
    /// result and the failure; as text, reports a failure on stderr.
    pub fn finish(&self, result: &Result<(), Failure>) {
        match self.document(result) {
            Some(doc) => println!("{doc}"),
            None => {
                if let Err(f) = result {
                    eprintln!("tufctl: {}", f.message);
                }
            }
        }
    }

    /// The envelope under `--output json` (`None` as text).
    pub fn document(&self, result: &Result<(), Failure>) -> Option<String> {
        if !self.json() {
            return None;
        }
        let data = self.data.borrow_mut().take();
        Some(envelope(Some(&self.verb), data, result.as_ref().err()))
    }
}

/// The envelope as pretty JSON text.
fn envelope(verb: Option<&str>, data: Option<Data>, error: Option<&Failure>) -> String {
    let head = json!({
        "schema": SCHEMA,
        "verb": verb,
        "ok": error.is_none(),
        "error": error.map(|f| json!({"code": f.code, "message": f.message})),
    });
    let pretty = |v: &Value| serde_json::to_string_pretty(v).expect("JSON values always serialize");
    let mut text = pretty(&head);
    // `data` goes last, spliced in, so raw text keeps its bytes.
    let data_text = match data {
        None => "null".to_owned(),
        Some(Data::Value(v)) => pretty(&v),
        Some(Data::Raw(raw)) => raw,
    };
    text.truncate(text.len() - 2); // "\n}"
    text.push_str(",\n  \"data\": ");
    // Indented line by line into `text`: a 100 000-tag inspection is
    // 25 MB, not copied once more.
    text.reserve(data_text.len() + data_text.len() / 16);
    for (i, line) in data_text.split('\n').enumerate() {
        if i > 0 {
            text.push_str("\n  ");
        }
        text.push_str(line);
    }
    text.push_str("\n}");
    text
}

/// A usage error (clap's) under `--output json`: the envelope with code
/// `usage` and clap's message, for the same exit code as in text.
pub fn usage_error(message: &str) -> String {
    let f = Failure {
        code: "usage".into(),
        message: message.trim_end().to_owned(),
        exit: 2,
    };
    envelope(None, None, Some(&f))
}

/// Whether the raw command line asks for JSON output (`-o json`,
/// `-ojson`, `-o=json`, `--output json`, `--output=json`), for usage errors
/// clap reports before the arguments are parsed.
pub fn wants_json(args: &[std::ffi::OsString]) -> bool {
    let args: Vec<&str> = args.iter().filter_map(|a| a.to_str()).collect();
    args.iter().enumerate().any(|(i, a)| match *a {
        "-o" | "--output" => args.get(i + 1) == Some(&"json"),
        "-ojson" | "-o=json" | "--output=json" => true,
        _ => false,
    })
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
        // Only a ready token's keys are counted: null, not 0, otherwise.
        "key_count": (state(t.state) == "ready").then_some(t.key_count),
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
