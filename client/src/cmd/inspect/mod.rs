//! `tufctl inspect` (`docker trust inspect`).

mod docker;

use crate::cmd::Ctx;
use crate::input::check_reference;
use crate::output::{Failure, Output};
use clap::Args;
use tufd_proto::v1;

pub const ABOUT: &str = "\
Show the signed tags, signers and keys of repositories
(`docker trust inspect`).

The daemon reads each repository from the notary server and verifies it
against the root it trusts. As text, tufctl prints docker's human form
(`docker trust inspect --pretty`; --pretty is accepted for docker's
scripts). With --output json the envelope's data is the JSON array `docker
trust inspect` prints, field for field and in docker's order (Name,
SignedTags, Signers, AdministrativeKeys): `tufctl inspect -o json REPO | jq
.data` is what docker prints. --pretty and --output json exclude each other.
Roles that expire within six months are reported on stderr. A repository
that cannot be read is named in the error (exit 1); the others are still
printed, as docker does.

REPO:TAG shows only that tag, as docker does.

Examples:
  tufctl inspect registry.example.com/team/app
  tufctl inspect registry.example.com/team/app:v1.2 --pretty
  tufctl inspect -o json reg/app reg/other | jq '.data[].SignedTags[].SignedTag'";

/// `inspect` arguments.
#[derive(Args)]
pub struct InspectArgs {
    /// Repositories (GUNs), optionally with :TAG.
    #[arg(required = true, value_name = "REPO[:TAG]")]
    pub repos: Vec<String>,
    /// Print docker's human-friendly form (the text output; not with
    /// --output json).
    #[arg(long)]
    pub pretty: bool,
}

impl InspectArgs {
    /// Checks the references before connecting.
    pub fn precheck(&self, out: &Output) -> Result<(), Failure> {
        if self.pretty && out.json() {
            return Err(Failure::input(
                "--pretty prints docker's table for people; --output json prints docker's JSON: choose one",
            ));
        }
        self.repos
            .iter()
            .try_for_each(|r| check_reference(r).map(drop))
    }

    /// `tufctl inspect`: one request per repository, so one failure does not
    /// hide the others (docker prints what it could read and exits 1).
    pub async fn run(self, ctx: &mut Ctx) -> Result<(), Failure> {
        let args = self;
        let mut client = ctx.trust();
        let (term, out) = (&mut ctx.term, &ctx.out);
        for r in &args.repos {
            check_reference(r)?;
        }
        let mut found = Vec::new();
        let mut failures: Vec<(String, tonic::Status)> = Vec::new();
        let total = args.repos.len();
        for (i, r) in args.repos.iter().enumerate() {
            // Streamed in parts: a repository of any size.
            let call = crate::inspect_stream::inspect_one(&mut client, r);
            let what = if total > 1 {
                format!("inspecting {r} ({} of {total})", i + 1)
            } else {
                format!("inspecting {r}")
            };
            match term.waiting(&what, call).await {
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
        // docker's JSON is the envelope's data (found repositories, also
        // when others failed); as text, docker's table (`--pretty`).
        if out.json() {
            out.print_raw_json(&docker::inspect_json(&found));
        } else {
            term.out(&docker::inspect_pretty(&found));
        }
        // tufctl ends right after: the rows (300 000 strings for 100 000
        // tags) are left to the exit instead of being freed one by one.
        std::mem::forget(found);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Format;
    use crate::testing::*;
    use serde_json::Value;

    #[tokio::test]
    async fn inspect_prints_docker_json_and_reports_failures() {
        let (channel, _dir) = serve(Fake::default()).await;
        let (t, o, e) = term(false);
        let mut c = ctx(channel, t, Format::Json);
        let result = InspectArgs {
            repos: vec!["reg/app".into(), "reg/missing".into()],
            pretty: false,
        }
        .run(&mut c)
        .await;
        let doc = c.out.document(&result).expect("JSON output");
        let err = result.expect_err("one repository is missing");
        assert_eq!(err.exit_code(), 1);
        assert_eq!(err.message, "no signatures or cannot access reg/missing");
        assert!(o.text().is_empty(), "printed once, in the envelope");
        let v: Value = serde_json::from_str(&doc).expect("JSON");
        assert_eq!(v["ok"], false);
        assert_eq!(v["verb"], "");
        assert_eq!(v["error"]["code"], "NotFound");
        let json = &v["data"];
        assert_eq!(json.as_array().map(Vec::len), Some(1));
        assert_eq!(json[0]["SignedTags"][0]["Signers"][0], "Repo Admin");
        // docker's field order and indentation, one level in.
        assert!(
            doc.contains("\"data\": [\n      {\n          \"Name\": \"reg/app\",\n"),
            "{doc}"
        );
        assert_eq!(
            e.text(),
            "warning: reg/app: targets expires 2027-01-01T00:00:00Z\n"
        );
    }

    #[tokio::test]
    async fn inspect_text_is_docker_pretty_and_excludes_json() {
        let (channel, _dir) = serve(Fake::default()).await;
        let (t, o, _) = term(false);
        let args = |pretty| InspectArgs {
            repos: vec!["reg/app:v1".into()],
            pretty,
        };
        args(false)
            .run(&mut ctx(channel, t, Format::Text))
            .await
            .expect("inspect");
        assert!(
            o.text().starts_with("\nSignatures for reg/app:v1\n"),
            "{}",
            o.text()
        );
        let e = args(true)
            .precheck(&crate::output::Output::new(Format::Json))
            .expect_err("--pretty with -o json");
        assert_eq!(e.exit_code(), 2);
    }

    #[tokio::test]
    async fn progress_over_many_repositories_goes_to_stderr_only() {
        let (channel, _dir) = serve(Fake::default()).await;
        let (t, o, e) = term(false);
        let mut c = ctx(channel, t.with_progress(), Format::Json);
        let result = InspectArgs {
            repos: vec!["reg/app".into(), "reg/other".into()],
            pretty: false,
        }
        .run(&mut c)
        .await;
        assert!(result.is_ok());
        let err = e.text();
        assert!(err.contains("inspecting reg/app (1 of 2)…\n"), "{err}");
        assert!(err.contains("inspecting reg/other (2 of 2)…\n"), "{err}");
        assert!(o.text().is_empty(), "stdout holds only the envelope");
        let doc = c.out.document(&result).expect("JSON");
        assert!(serde_json::from_str::<Value>(&doc).is_ok());
    }

    #[tokio::test]
    async fn inspect_pretty() {
        let (channel, _dir) = serve(Fake::default()).await;
        let (t, o, _) = term(false);
        let fmt = Format::Text;
        (InspectArgs {
            repos: vec!["reg/app:v1".into()],
            pretty: true,
        })
        .run(&mut ctx(channel, t, fmt))
        .await
        .expect("inspect");
        assert!(
            o.text()
                .starts_with("\nSignatures for reg/app:v1\n\nSIGNED TAG   DIGEST")
        );
        assert!(o.text().contains("   (Repo Admin)\n"));
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
}
