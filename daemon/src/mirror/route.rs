//! The pull API's paths: `/v2/`, `/v2/<name>/manifests/<reference>`,
//! `/v2/<name>/blobs/<digest>`, with containerd's `?ns=<registry>`.

use tufd_proto::names;

/// What a manifest request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// A tag: resolved through trust data.
    Tag(String),
    /// `sha256:<hex>`: content-addressed.
    Digest([u8; 32]),
}

/// A parsed request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`: the API version check.
    Base,
    /// A manifest of `name` (the repository path in the upstream).
    Manifest { name: String, reference: Reference },
    /// A blob of `name`.
    Blob { name: String, digest: [u8; 32] },
}

/// Why a path is not served: (HTTP status, OCI error code, message).
pub type Refusal = (u16, &'static str, String);

/// Parses `sha256:<64 lower-case hex>`.
pub fn digest(s: &str) -> Option<[u8; 32]> {
    let hex = s.strip_prefix("sha256:")?;
    if hex.len() != 64 || hex.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex, &mut out).ok()?;
    Some(out)
}

/// Parses a path (without the query).
pub fn parse(path: &str) -> Result<Route, Refusal> {
    if path == "/v2/" || path == "/v2" {
        return Ok(Route::Base);
    }
    let rest = path.strip_prefix("/v2/").ok_or_else(|| {
        (
            404,
            "NOT_FOUND",
            "only the registry pull API (/v2/…) is served".to_owned(),
        )
    })?;
    let unsupported = || {
        (
            404,
            "UNSUPPORTED",
            "the mirror serves manifests and blobs only".to_owned(),
        )
    };
    let (name, kind, last) = match rest.rsplitn(3, '/').collect::<Vec<_>>()[..] {
        [last, kind, name] => (name, kind, last),
        _ => return Err(unsupported()),
    };
    let bad_name = |e: names::NameError| (400, "NAME_INVALID", format!("{name}: {e}"));
    // The name is a path inside the upstream: no registry part of its own.
    let parsed = names::Reference::parse(&format!("mirror.invalid/{name}")).map_err(bad_name)?;
    if parsed.path() != name || parsed.tag().is_some() || parsed.digest().is_some() {
        return Err((
            400,
            "NAME_INVALID",
            format!("{name}: not a repository name"),
        ));
    }
    match kind {
        "manifests" => {
            let reference = if last.starts_with("sha256:") {
                Reference::Digest(digest(last).ok_or_else(|| {
                    (
                        400,
                        "DIGEST_INVALID",
                        format!("{last}: not sha256:<64 hex>"),
                    )
                })?)
            } else if last.contains(':') {
                return Err((
                    400,
                    "DIGEST_INVALID",
                    format!("{last}: only sha256 digests are served"),
                ));
            } else {
                names::check_tag(last).map_err(|e| (400, "TAG_INVALID", format!("{last}: {e}")))?;
                Reference::Tag(last.to_owned())
            };
            Ok(Route::Manifest {
                name: name.to_owned(),
                reference,
            })
        }
        "blobs" => Ok(Route::Blob {
            name: name.to_owned(),
            digest: digest(last).ok_or_else(|| {
                (
                    400,
                    "DIGEST_INVALID",
                    format!("{last}: not sha256:<64 hex>"),
                )
            })?,
        }),
        _ => Err(unsupported()),
    }
}

/// The upstream a request names with `?ns=`, or the default; only
/// configured upstreams are reachable.
pub fn upstream<'a>(query: Option<&str>, upstreams: &'a [String]) -> Result<&'a str, Refusal> {
    let ns = query
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "ns")
        .map(|(_, v)| percent_decode(v));
    match ns.as_deref() {
        None => Ok(&upstreams[0]),
        Some(ns) => upstreams
            .iter()
            .find(|u| {
                u.as_str() == ns || (ns == "registry-1.docker.io" && u.as_str() == "docker.io")
            })
            .map(String::as_str)
            .ok_or_else(|| {
                (
                    403,
                    "DENIED",
                    format!("registry {ns:?} is not an upstream of this mirror"),
                )
            }),
    }
}

/// Decodes `%XX` escapes (containerd sends `ns=localhost%3A5000`); an
/// invalid escape is kept as written (and then matches no upstream).
fn percent_decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(byte) = v
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn paths() {
        assert_eq!(parse("/v2/"), Ok(Route::Base));
        assert_eq!(
            parse("/v2/team/app/manifests/v1"),
            Ok(Route::Manifest {
                name: "team/app".into(),
                reference: Reference::Tag("v1".into())
            })
        );
        assert_eq!(
            parse(&format!("/v2/app/manifests/{D}")),
            Ok(Route::Manifest {
                name: "app".into(),
                reference: Reference::Digest([0x22; 32])
            })
        );
        assert_eq!(
            parse(&format!("/v2/a/b/c/blobs/{D}")),
            Ok(Route::Blob {
                name: "a/b/c".into(),
                digest: [0x22; 32]
            })
        );
        for bad in [
            "/v2/Team/app/manifests/v1",
            "/v2/app/manifests/-v1",
            "/v2/app/manifests/sha512:ab",
            "/v2/app/blobs/v1",
            "/v2/app/tags/list",
            "/v2/_catalog",
            "/v2/../x/manifests/v1",
            "/other",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_configured_upstreams() {
        let ups = vec!["localhost:5000".to_owned(), "docker.io".to_owned()];
        assert_eq!(upstream(None, &ups), Ok("localhost:5000"));
        assert_eq!(upstream(Some("ns=docker.io"), &ups), Ok("docker.io"));
        assert_eq!(
            upstream(Some("ns=localhost%3A5000"), &ups),
            Ok("localhost:5000")
        );
        assert_eq!(
            upstream(Some("ns=localhost%3a5000"), &ups),
            Ok("localhost:5000")
        );
        assert!(upstream(Some("ns=localhost%3A5000%2F"), &ups).is_err());
        assert_eq!(
            upstream(Some("x=1&ns=registry-1.docker.io"), &ups),
            Ok("docker.io")
        );
        assert_eq!(
            upstream(Some("ns=evil.example:443"), &ups).unwrap_err().0,
            403
        );
    }
}
