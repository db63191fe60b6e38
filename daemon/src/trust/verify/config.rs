//! The `[[verify]]` and `[verification]` configuration sections.
//!
//! ```toml
//! [[verify]]                          # by repository prefix; the longest match wins
//! prefix = "registry.example.com/prod/"
//! mode = "enforced"                   # or "passive", "disabled"; enforced when no rule matches
//! pinned_root_keys = ["<root certificate key ID>"]   # optional (notary trust_pinning.certs)
//! ca = "/etc/tufd/prod-root-ca.pem"   # optional (notary trust_pinning.ca)
//! tofu = false                        # optional; default true (notary disable_tofu)
//!
//! [verification]
//! deadline_seconds = 60               # one deadline per repository's client update
//! max_bytes = 67108864                # bytes one read of a repository may fetch in total
//!                                     # (pull-time verification, inspect, the reads around a change)
//! max_total_bytes = 268435456         # bytes all pull-time verifications (mirror, `tufctl verify`)
//!                                     # may hold at once; an update that finds them in use waits
//!                                     # up to a quarter of deadline_seconds, then is refused as busy
//! ```
//!
//! Prefixes are matched against normalized names (`docker.io/library/…`).
//! Pins apply to a repository's first root (nothing in the store yet), as
//! in notary; afterwards roots rotate only when signed by the trusted one.

use super::{VerifyMode, VerifyPolicy, VerifyRule};
use crate::config::ConfigError;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// One `[[verify]]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVerifyRule {
    #[serde(default)]
    prefix: String,
    mode: String,
    #[serde(default)]
    pinned_root_keys: Vec<String>,
    ca: Option<PathBuf>,
    #[serde(default = "yes")]
    tofu: bool,
}

fn yes() -> bool {
    true
}

/// The `[verification]` table as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawVerification {
    deadline_seconds: Option<u64>,
    max_bytes: Option<u64>,
    max_total_bytes: Option<u64>,
}

impl RawVerification {
    /// The policy, with every rule checked.
    pub fn into_policy(
        self,
        rules: Vec<RawVerifyRule>,
        invalid: &dyn Fn(String) -> ConfigError,
    ) -> Result<VerifyPolicy, ConfigError> {
        let mut policy = VerifyPolicy::default();
        if let Some(s) = self.deadline_seconds {
            if !(1..=3600).contains(&s) {
                return Err(invalid(format!(
                    "verification.deadline_seconds = {s}: give 1 to 3600"
                )));
            }
            policy.deadline = Duration::from_secs(s);
        }
        if let Some(b) = self.max_bytes {
            if !(4096..=(1 << 32)).contains(&b) {
                return Err(invalid(format!(
                    "verification.max_bytes = {b}: give 4096 to 4294967296"
                )));
            }
            policy.max_bytes = b;
        }
        if let Some(b) = self.max_total_bytes {
            if !((64 << 10)..=(1 << 40)).contains(&b) {
                return Err(invalid(format!(
                    "verification.max_total_bytes = {b}: give 65536 to 1099511627776 (it bounds all pull-time verifications together; one timestamp alone may take 64 KiB)"
                )));
            }
            policy.max_total_bytes = b;
        }
        for r in rules {
            let mode: VerifyMode = r
                .mode
                .parse()
                .map_err(|e| invalid(format!("verify prefix {:?}: {e}", r.prefix)))?;
            if policy.rules.iter().any(|x| x.prefix == r.prefix) {
                return Err(invalid(format!(
                    "verify prefix {:?} is given twice",
                    r.prefix
                )));
            }
            for id in &r.pinned_root_keys {
                if id.len() != 64 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                    return Err(invalid(format!(
                        "verify prefix {:?}: pinned root key {id:?} is not a key ID (64 lowercase hex digits)",
                        r.prefix
                    )));
                }
            }
            let ca = match &r.ca {
                None => Vec::new(),
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| invalid(format!("verify ca {}: {e}", path.display())))?;
                    let certs = parse_certificates(&text)
                        .map_err(|e| invalid(format!("verify ca {}: {e}", path.display())))?;
                    if certs.is_empty() {
                        return Err(invalid(format!(
                            "verify ca {}: no CERTIFICATE in the file",
                            path.display()
                        )));
                    }
                    certs
                }
            };
            policy.rules.push(VerifyRule {
                prefix: r.prefix,
                mode,
                pinned_root_keys: r.pinned_root_keys,
                ca,
                ca_file: r.ca,
                tofu: r.tofu,
            });
        }
        Ok(policy)
    }
}

fn parse_certificates(text: &str) -> Result<Vec<x509_cert::Certificate>, String> {
    use der::Decode;
    pem::parse_many(text)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|p| p.tag() == "CERTIFICATE")
        .map(|p| x509_cert::Certificate::from_der(p.contents()).map_err(|e| e.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Doc {
        #[serde(default)]
        verify: Vec<RawVerifyRule>,
        #[serde(default)]
        verification: RawVerification,
    }

    fn policy(text: &str) -> Result<VerifyPolicy, String> {
        let doc: Doc = toml::from_str(text).map_err(|e| e.to_string())?;
        let invalid = |message: String| ConfigError::Invalid {
            path: "t.toml".into(),
            message,
        };
        doc.verification
            .into_policy(doc.verify, &invalid)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn rules_and_limits_are_checked() {
        let p = policy(
            "[[verify]]\nprefix = \"a/\"\nmode = \"passive\"\n[[verify]]\nmode = \"enforced\"\ntofu = false\n[verification]\ndeadline_seconds = 5\nmax_bytes = 8192\nmax_total_bytes = 65536\n",
        )
        .unwrap();
        assert_eq!(p.max_total_bytes, 65536);
        assert_eq!(policy("").unwrap().max_total_bytes, 256 << 20);
        assert_eq!(p.deadline, Duration::from_secs(5));
        assert_eq!(p.max_bytes, 8192);
        assert_eq!(p.rule_for("a/b").map(|r| r.mode), Some(VerifyMode::Passive));
        assert!(p.rule_for("x").is_some_and(|r| !r.tofu));
        for (bad, why) in [
            (
                "[[verify]]\nmode = \"strict\"\n",
                "use enforced, passive or disabled",
            ),
            (
                "[[verify]]\nmode = \"passive\"\n[[verify]]\nmode = \"enforced\"\n",
                "given twice",
            ),
            (
                "[[verify]]\nmode = \"enforced\"\npinned_root_keys = [\"abc\"]\n",
                "not a key ID",
            ),
            (
                "[[verify]]\nmode = \"enforced\"\nca = \"/nonexistent/ca.pem\"\n",
                "verify ca",
            ),
            ("[verification]\ndeadline_seconds = 0\n", "deadline_seconds"),
            ("[verification]\nmax_bytes = 10\n", "max_bytes"),
            (
                "[verification]\nmax_total_bytes = 4096\n",
                "max_total_bytes = 4096: give 65536",
            ),
        ] {
            let e = policy(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
