//! `tufctl verify`: verify tags before a pull, as docker's content trust
//! did, and print the signed digests.
//!
//! ```sh
//! docker pull "$(tufctl verify --print-digest registry.example.com/app:1.2)"
//! ```

use crate::output::Failure;
use clap::{Args, ValueEnum};
use serde_json::{Value, json};
use tufd_proto::names;
use tufd_proto::v1;

/// What happens to a tag that is not signed and verified.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum Mode {
    /// Refuse it: exit 1 with the reason.
    Enforced,
    /// Warn on stderr and answer the registry's digest.
    Passive,
    /// Do not check; answer the registry's digest.
    Disabled,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Enforced => "enforced",
            Mode::Passive => "passive",
            Mode::Disabled => "disabled",
        }
    }
}

/// `verify` arguments.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Tags to verify (short names are normalized as docker does:
    /// alpine:3 is docker.io/library/alpine:3).
    #[arg(required = true, value_name = "REPO:TAG")]
    pub references: Vec<String>,
    /// Overrides the daemon's [[verify]] mode for the repositories. Without
    /// it, DOCKER_CONTENT_TRUST=1 in the environment means enforced.
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// Print only REPO@sha256:… per tag, for `docker pull "$(…)"`.
    #[arg(long)]
    pub print_digest: bool,
}

/// docker's reading of DOCKER_CONTENT_TRUST (Go's `strconv.ParseBool`).
fn content_trust_env(value: Option<&str>) -> bool {
    matches!(value, Some("1" | "t" | "T" | "true" | "TRUE" | "True"))
}

impl VerifyArgs {
    /// The request, checked before connecting.
    pub fn request(&self, env_trust: Option<&str>) -> Result<v1::VerifyRequest, Failure> {
        for r in &self.references {
            names::tagged(r).map_err(|e| Failure::input(e.to_string()))?;
        }
        let mode = self
            .mode
            .or_else(|| content_trust_env(env_trust).then_some(Mode::Enforced));
        Ok(v1::VerifyRequest {
            references: self.references.clone(),
            mode: mode.map(|m| m.as_str().to_owned()).unwrap_or_default(),
        })
    }

    /// Runs `tufctl verify`.
    pub async fn run(self, ctx: &mut crate::cmd::Ctx) -> Result<(), Failure> {
        let env = std::env::var("DOCKER_CONTENT_TRUST").ok();
        let request = self.request(env.as_deref())?;
        let what = match request.references.as_slice() {
            [one] => format!("verifying {one}"),
            many => format!("verifying {} tags", many.len()),
        };
        let mut client = ctx.trust();
        let call = client.verify(request);
        let tags = ctx.term.waiting(&what, call).await?.into_inner().tags;
        let out = &ctx.out;
        let (stdout, stderr, failure) = render(&tags, self.print_digest, out.json());
        if out.json() {
            // The envelope's data: every tag, refused ones with their reason.
            out.print_raw_json(&stdout);
        } else {
            print!("{stdout}");
        }
        eprint!("{stderr}");
        match failure {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }
}

fn to_json(t: &v1::TagVerification) -> Value {
    json!({
        "repository": t.repository,
        "tag": t.tag,
        "mode": t.mode,
        "status": t.status,
        "digest": (!t.digest.is_empty()).then_some(&t.digest),
        "size": (!t.digest.is_empty()).then_some(t.size),
        "role": (!t.role.is_empty()).then_some(&t.role),
        "signers": t.signers,
        "reason": (!t.reason.is_empty()).then_some(&t.reason),
        "warnings": t.warnings,
    })
}

/// What to print on stdout and stderr, and the failure to exit with (if a
/// tag was refused or has no digest to answer).
fn render(
    tags: &[v1::TagVerification],
    print_digest: bool,
    json: bool,
) -> (String, String, Option<Failure>) {
    let (mut stdout, mut stderr) = (String::new(), String::new());
    let mut refused = Vec::new();
    for t in tags {
        let reference = format!("{}:{}", t.repository, t.tag);
        let answer = !t.digest.is_empty() && t.status != "refused";
        for w in &t.warnings {
            stderr.push_str(&format!("tufctl: warning: {w}\n"));
        }
        match t.status.as_str() {
            "refused" => refused.push(format!("{reference}: {}", t.reason)),
            "unverified" => {
                stderr.push_str(&format!(
                    "tufctl: warning: {reference} is not verified (passive mode): {}\n",
                    t.reason
                ));
            }
            "unchecked" => stderr.push_str(&format!(
                "tufctl: verification is disabled for {}; the digest is the registry's, unchecked\n",
                t.repository
            )),
            _ => {}
        }
        if !answer && t.status != "refused" {
            refused.push(format!("{reference}: no digest to answer ({})", t.reason));
        }
        if json {
            continue;
        }
        if print_digest {
            if answer {
                stdout.push_str(&format!("{}@{}\n", t.repository, t.digest));
            }
        } else if t.status == "trusted" {
            let by = if t.signers.is_empty() {
                String::new()
            } else {
                format!(", signers {}", t.signers.join(", "))
            };
            stdout.push_str(&format!(
                "{reference}\t{}\t{} bytes\tsigned in {}{by}\n",
                t.digest, t.size, t.role
            ));
        } else if answer {
            stdout.push_str(&format!(
                "{reference}\t{}\t{} bytes\t{}\n",
                t.digest, t.size, t.status
            ));
        }
    }
    if json {
        stdout = format!(
            "{}\n",
            serde_json::to_string_pretty(&Value::Array(tags.iter().map(to_json).collect()))
                .unwrap_or_default()
        );
    }
    let failure = (!refused.is_empty()).then(|| Failure::daemon("refused", refused.join("\n")));
    (stdout, stderr, failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(status: &str, digest: &str, reason: &str) -> v1::TagVerification {
        v1::TagVerification {
            repository: "localhost:5000/a".into(),
            tag: "v1".into(),
            mode: "enforced".into(),
            status: status.into(),
            digest: digest.into(),
            size: 7,
            role: if status == "trusted" {
                "targets/releases".into()
            } else {
                String::new()
            },
            signers: vec![],
            reason: reason.into(),
            warnings: vec![],
        }
    }

    #[test]
    fn environment_and_flags_choose_the_mode() {
        let args = |mode| VerifyArgs {
            references: vec!["alpine:3".into()],
            mode,
            print_digest: false,
        };
        assert_eq!(args(None).request(None).unwrap().mode, "");
        assert_eq!(args(None).request(Some("1")).unwrap().mode, "enforced");
        assert_eq!(args(None).request(Some("0")).unwrap().mode, "");
        assert_eq!(
            args(Some(Mode::Passive)).request(Some("1")).unwrap().mode,
            "passive"
        );
        let bad = VerifyArgs {
            references: vec!["Alpine:3".into()],
            mode: None,
            print_digest: false,
        };
        let e = bad.request(None).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.message.contains("must be lowercase"), "{}", e.message);
        let untagged = VerifyArgs {
            references: vec!["alpine".into()],
            mode: None,
            print_digest: false,
        };
        assert_eq!(untagged.request(None).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn rendering() {
        let d = format!("sha256:{}", "ab".repeat(32));
        let (out, err, f) = render(&[tag("trusted", &d, "")], true, false);
        assert_eq!(out, format!("localhost:5000/a@{d}\n"));
        assert!(err.is_empty() && f.is_none());
        let (out, _, f) = render(&[tag("refused", "", "no trust data")], true, false);
        assert!(out.is_empty());
        let f = f.expect("refused");
        assert_eq!(f.exit_code(), 1);
        assert!(f.message.contains("no trust data"));
        let (out, err, f) = render(&[tag("unverified", &d, "unsigned")], true, false);
        assert_eq!(out, format!("localhost:5000/a@{d}\n"));
        assert!(err.contains("warning") && err.contains("unsigned"));
        assert!(f.is_none());
        let (out, _, f) = render(
            &[tag("trusted", &d, ""), tag("refused", "", "x")],
            false,
            true,
        );
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v[0]["status"], "trusted");
        assert_eq!(v[1]["reason"], "x");
        assert!(f.is_some());
    }
}
