//! `tufctl sign` (`docker trust sign`).

use crate::cmd::Ctx;
use crate::input::{bad_name, check_digest};
use crate::output::Failure;
use clap::Args;
use tufd_proto::names;
use tufd_proto::v1;

pub const ABOUT: &str = "\
Sign tags of images with a key the daemon holds (`docker trust sign`).

Each REPO:TAG becomes a target named TAG with the manifest's sha256 digest
and size. As docker does, it is signed into every signer role whose key the
daemon holds: targets/releases (the role `docker pull` trusts) and the
signer's own targets/NAME; into targets with the repository key when the
repository has no signers. All tags of one repository are one transaction
and one publish; several repositories are signed in one call.

REPO is the fully qualified repository name (the Notary GUN), such as
localhost:5000/library/app or docker.io/library/alpine.

The digest is the image manifest's (what `docker push` prints as
`digest: sha256:…` and `size: N`). A tag may carry its own:
REPO:TAG@sha256:HEX:SIZE (or REPO:TAG@sha256:HEX with --size). Tags
without one take --digest/--size; without those the daemon reads the
manifest of each tag from the registry the repository names, as docker
does, and signs its sha256 and size.

--local (docker's `trust sign --local` signs an image from the local
engine's store without pushing it): tufd never sees a docker engine, so
here it means never asking the registry: every tag must come with its digest
and size, and a tag without one is refused before anything is signed.

Examples:
  tufctl sign registry.example.com/team/app:v1.2
  tufctl sign registry.example.com/team/app:v1.2 \\
      --digest sha256:0f8b2d4e5c1a…(64 hex digits) --size 527
  tufctl sign reg/app:v1 reg/app:latest reg/other:v1 --digest sha256:… --size 527
  tufctl sign reg/app:v1 --digest sha256:… --size 527 --output json
  tufctl sign --local reg/app:v1@sha256:…:527 reg/app:v2@sha256:…:1043
  tufctl sign --tags-from tags.txt    (one REPO:TAG[@sha256:HEX:SIZE] a line)";

/// `sign` arguments.
#[derive(Args)]
pub struct SignArgs {
    /// Tags to sign, as REPO:TAG, or REPO:TAG@sha256:HEX[:SIZE] with the
    /// tag's own manifest digest (and size).
    #[arg(
        required_unless_present = "tags_from",
        value_name = "REPO:TAG[@DIGEST[:SIZE]]"
    )]
    pub tags: Vec<String>,
    /// Also sign the tags listed in FILE (`-`: stdin), one a line, written
    /// as on the command line: for batches too long for a command line
    /// (100 000 tags in one call).
    #[arg(long, value_name = "FILE")]
    pub tags_from: Option<std::path::PathBuf>,
    /// Manifest digest, sha256:<64 lowercase hex digits>, for the tags
    /// without their own; read from the registry when omitted.
    #[arg(long, requires = "size")]
    pub digest: Option<String>,
    /// Manifest size in bytes (of --digest, or of per-tag digests given
    /// without a size).
    #[arg(long)]
    pub size: Option<u64>,
    /// Never read the registry: every tag needs a digest and size (docker's
    /// --local has no engine here; see the long help).
    #[arg(long)]
    pub local: bool,
}

/// A digest given with a tag, and its size if given too.
type Pinned = (String, Option<u64>);

/// A tag's own digest and size from `REPO:TAG@sha256:HEX[:SIZE]`.
fn per_tag_digest(reference: &str) -> Result<(&str, Option<Pinned>), Failure> {
    let Some((name, pinned)) = reference.rsplit_once('@') else {
        return Ok((reference, None));
    };
    let (digest, size) = match pinned
        .strip_prefix("sha256:")
        .and_then(|h| h.split_once(':'))
    {
        Some((hex, size)) => {
            let size = size.parse::<u64>().map_err(|_| {
                Failure::input(format!(
                    "{reference}: the size after the digest must be a number of bytes, not \"{size}\""
                ))
            })?;
            (format!("sha256:{hex}"), Some(size))
        }
        None => (pinned.to_owned(), None),
    };
    check_digest(&digest).map_err(|e| Failure::input(format!("{reference}: {}", e.message)))?;
    Ok((name, Some((digest, size))))
}

impl SignArgs {
    /// The `SignRequest`, checked.
    pub fn request(&self) -> Result<v1::SignRequest, Failure> {
        let args = self;
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
        let all = || args.tags.iter().chain(listed.iter());
        if args.size.is_some() && args.digest.is_none() && !all().any(|t| t.contains('@')) {
            return Err(Failure::input(
                "--size goes with --digest, or with REPO:TAG@sha256:… digests given without a size",
            ));
        }
        let mut tags = Vec::with_capacity(args.tags.len() + listed.len());
        let mut seen = std::collections::HashSet::with_capacity(tags.capacity());
        for reference in all() {
            let (name, own) = per_tag_digest(reference)?;
            let (repo, tag) = names::tagged(name).map_err(bad_name)?;
            if !seen.insert((repo.clone(), tag.clone())) {
                return Err(Failure::input(format!("{reference} is given twice")));
            }
            let (digest, size) = match own {
                Some((digest, Some(size))) => (digest, size),
                Some((digest, None)) => (
                    digest,
                    args.size.ok_or_else(|| {
                        Failure::input(format!(
                            "{reference}: give the manifest's size too (REPO:TAG@sha256:HEX:SIZE, or --size)"
                        ))
                    })?,
                ),
                None => (
                    args.digest.clone().unwrap_or_default(),
                    args.size.unwrap_or_default(),
                ),
            };
            if digest.is_empty() && args.local {
                return Err(Failure::input(format!(
                    "{reference}: --local never reads the registry; give the digest and size (REPO:TAG@sha256:HEX:SIZE or --digest/--size)"
                )));
            }
            if !digest.is_empty() && size == 0 {
                return Err(Failure::input(format!(
                    "{reference}: size 0: a manifest is never empty; give its size in bytes"
                )));
            }
            tags.push(v1::TagToSign {
                repository: repo,
                tag,
                digest,
                size,
            });
        }
        Ok(v1::SignRequest { tags })
    }

    /// Runs `tufctl sign`.
    pub async fn run(self, ctx: &mut Ctx) -> Result<(), Failure> {
        let request = self.request()?;
        let stream = ctx.trust().sign(request).await?;
        crate::events::follow(stream.into_inner(), &mut ctx.term, &ctx.out).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Format;
    use crate::testing::*;
    use serde_json::Value;

    fn sign_args(tags: &[&str], digest: Option<&str>) -> SignArgs {
        SignArgs {
            tags: tags.iter().map(|s| s.to_string()).collect(),
            digest: digest.map(str::to_owned),
            size: digest.map(|_| 527),
            local: false,
            tags_from: None,
        }
    }

    #[tokio::test]
    async fn stream_renders_progress_touch_and_result() {
        let fake = Fake {
            script: vec![progress("reg/app", "reading metadata"), touch(), result()],
            ..Default::default()
        };
        let (channel, _dir) = serve(fake.clone()).await;
        let (t, o, e) = term(false);
        let fmt = Format::Text;
        sign_args(&["reg/app:v1", "reg/app:v2"], Some(DIGEST))
            .run(&mut ctx(channel, t, fmt))
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
        let (t, _, e) = term(true);
        let fmt = Format::Text;
        (sign_args(&["reg/app:v1"], Some(DIGEST)))
            .run(&mut ctx(channel, t, fmt))
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
        let (t, o, _) = term(false);
        let mut c = ctx(channel, t, Format::Json);
        let result = sign_args(&["reg/app:v1"], Some(DIGEST)).run(&mut c).await;
        assert!(o.text().is_empty(), "printed once, in the envelope");
        let doc = c.out.document(&result).expect("JSON output");
        let v: Value = serde_json::from_str(&doc).expect("json");
        assert_eq!(
            (v["schema"].as_str(), v["ok"].as_bool()),
            (Some("tufctl/v1"), Some(true))
        );
        let v = &v["data"];
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
        let (t, o, _) = term(false);
        let fmt = Format::Text;
        let err = (sign_args(&["reg/app:v1"], None))
            .run(&mut ctx(channel, t, fmt))
            .await
            .expect_err("no result");
        assert_eq!(err.exit_code(), 1);
        assert!(err.message.contains("without a result"), "{}", err.message);
        assert!(o.text().is_empty());
    }

    #[test]
    fn sign_arguments_are_checked_before_asking() {
        let req = sign_args(&["localhost:5000/a/b:v1", "reg/c:latest"], Some(DIGEST))
            .request()
            .expect("valid");
        assert_eq!(req.tags.len(), 2);
        assert_eq!(req.tags[0].repository, "localhost:5000/a/b");
        assert_eq!((req.tags[0].tag.as_str(), req.tags[0].size), ("v1", 527));
        // Short names are normalized as docker does.
        assert_eq!(req.tags[1].repository, "docker.io/reg/c");
        let req = sign_args(&["alpine:3"], Some(DIGEST))
            .request()
            .expect("valid");
        assert_eq!(req.tags[0].repository, "docker.io/library/alpine");
        // No digest: sent empty, the daemon answers.
        let req = sign_args(&["reg/a:v1"], None).request().expect("valid");
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
            let err = sign_args(&tags, digest).request().expect_err("invalid");
            assert_eq!(err.exit_code(), 2, "{tags:?} {digest:?}: {}", err.message);
        }
        let mut zero = sign_args(&["reg/a:v1"], Some(DIGEST));
        zero.size = Some(0);
        assert_eq!(zero.request().unwrap_err().exit_code(), 2);
    }

    #[test]
    fn per_tag_digests_and_local() {
        let d2 = DIGEST.replace("0f8b", "1a2b");
        let own = format!("reg/a:v1@{d2}:1043");
        let req = sign_args(&[&own, "reg/a:v2"], Some(DIGEST))
            .request()
            .expect("valid");
        assert_eq!(
            (
                req.tags[0].tag.as_str(),
                req.tags[0].digest.as_str(),
                req.tags[0].size
            ),
            ("v1", d2.as_str(), 1043)
        );
        assert_eq!(
            (req.tags[1].digest.as_str(), req.tags[1].size),
            (DIGEST, 527)
        );
        // A per-tag digest without a size takes --size.
        let mut args = sign_args(&[&format!("reg/a:v1@{d2}")], None);
        args.size = Some(9);
        assert_eq!(args.request().expect("valid").tags[0].size, 9);
        args.size = None;
        assert_eq!(args.request().unwrap_err().exit_code(), 2);
        // --local: every tag needs a digest; the registry is never asked.
        let mut local = sign_args(&[&own, "reg/a:v2"], None);
        local.local = true;
        let e = local.request().unwrap_err();
        assert!(e.message.contains("reg/a:v2: --local"), "{}", e.message);
        local.tags.pop();
        assert!(local.request().is_ok());
        for bad in [
            format!("reg/a:v1@{d2}:x"),
            format!("reg/a:v1@{d2}:0"),
            "reg/a:v1@sha256:abc:5".to_owned(),
            "reg/a:v1@md5:abc".to_owned(),
        ] {
            let e = sign_args(&[&bad], None).request().unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
        }
    }
}
