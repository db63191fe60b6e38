//! `docker trust inspect` output, byte for byte: the JSON array (Go's
//! `json.Marshal` then `json.Indent` with four spaces) and the `--pretty`
//! text (docker's tables through Go's tabwriter).
//!
//! The daemon sends [`v1::RepositoryInspection`]s already in docker's JSON
//! order; the pretty form re-sorts as docker's pretty printer does.

use tufd_proto::names::natural_cmp;
use tufd_proto::v1;

/// docker's signer name for tags signed only by the repository's own roles.
const REPO_ADMIN: &str = "Repo Admin";

/// A JSON value in docker's field order.
enum Json<'a> {
    Str(&'a str),
    Arr(Vec<Json<'a>>),
    Obj(Vec<(&'static str, Json<'a>)>),
}

/// A string as Go's `encoding/json` writes it: `<`, `>`, `&`, U+2028 and
/// U+2029 as `\u` escapes, control characters escaped.
fn go_string(s: &str, out: &mut String) {
    out.push('"');
    // Tags, digests and key IDs need no escape: copied at once.
    if !s
        .bytes()
        .any(|b| b < 0x20 || matches!(b, b'"' | b'\\' | b'<' | b'>' | b'&' | 0xE2))
    {
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes `v` as Go's `json.Indent(dst, src, "", "    ")` lays out
/// `json.Marshal` output: empty arrays stay `[]`.
fn write_indented(v: &Json<'_>, depth: usize, out: &mut String) {
    let pad = |d: usize, out: &mut String| {
        out.push('\n');
        for _ in 0..d {
            out.push_str("    ");
        }
    };
    match v {
        Json::Str(s) => go_string(s, out),
        Json::Arr(items) if items.is_empty() => out.push_str("[]"),
        Json::Obj(fields) if fields.is_empty() => out.push_str("{}"),
        Json::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                pad(depth + 1, out);
                write_indented(item, depth + 1, out);
            }
            pad(depth, out);
            out.push(']');
        }
        Json::Obj(fields) => {
            out.push('{');
            for (i, (k, item)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                pad(depth + 1, out);
                go_string(k, out);
                out.push_str(": ");
                write_indented(item, depth + 1, out);
            }
            pad(depth, out);
            out.push('}');
        }
    }
}

/// docker's `trustSigner` (`Name` and `Keys` are `omitempty`, as is a key's `ID`).
fn key_list(k: &v1::RoleKeyList) -> Json<'_> {
    let mut fields = Vec::new();
    if !k.name.is_empty() {
        fields.push(("Name", Json::Str(&k.name)));
    }
    if !k.key_ids.is_empty() {
        let keys = k
            .key_ids
            .iter()
            .map(|id| {
                if id.is_empty() {
                    Json::Obj(Vec::new())
                } else {
                    Json::Obj(vec![("ID", Json::Str(id))])
                }
            })
            .collect();
        fields.push(("Keys", Json::Arr(keys)));
    }
    Json::Obj(fields)
}

fn repository(r: &v1::RepositoryInspection) -> Json<'_> {
    let tags = r
        .signed_tags
        .iter()
        .map(|t| {
            Json::Obj(vec![
                ("SignedTag", Json::Str(&t.tag)),
                ("Digest", Json::Str(&t.digest)),
                (
                    "Signers",
                    Json::Arr(t.signers.iter().map(|s| Json::Str(s)).collect()),
                ),
            ])
        })
        .collect();
    Json::Obj(vec![
        ("Name", Json::Str(&r.name)),
        ("SignedTags", Json::Arr(tags)),
        (
            "Signers",
            Json::Arr(r.signers.iter().map(key_list).collect()),
        ),
        (
            "AdministrativeKeys",
            Json::Arr(r.administrative_keys.iter().map(key_list).collect()),
        ),
    ])
}

/// What `docker trust inspect REPO…` prints on stdout, trailing newline included.
pub fn inspect_json(repos: &[v1::RepositoryInspection]) -> String {
    // About 250 bytes a tag row: grown once or twice, not twenty times.
    let tags: usize = repos.iter().map(|r| r.signed_tags.len()).sum();
    let mut out = String::with_capacity(4096 + tags * 256);
    write_indented(
        &Json::Arr(repos.iter().map(repository).collect()),
        0,
        &mut out,
    );
    out.push('\n');
    out
}

/// docker's tabwriter (a fork of Go's `text/tabwriter` that measures
/// cells by display width) as docker's formatter sets it up (minwidth 10,
/// padding 3, spaces): every tab-terminated cell is padded to its column's
/// widest cell plus 3 (at least 10); the last cell of a line is not.
/// Display width: East Asian wide characters take two columns, combining
/// marks none.
fn tabwrite(rows: &[Vec<String>]) -> String {
    use unicode_width::UnicodeWidthStr;
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![10usize; columns.saturating_sub(1)];
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(row.len().saturating_sub(1)) {
            widths[i] = widths[i].max(cell.width() + 3);
        }
    }
    let mut out = String::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < row.len() {
                let fill = widths[i].saturating_sub(cell.width());
                out.push_str(&" ".repeat(fill));
            }
        }
        out.push('\n');
    }
    out
}

/// docker's `stringid.TruncateID`: after any `algo:` prefix, 12 characters.
fn truncate_id(id: &str) -> &str {
    let id = id.split_once(':').map_or(id, |(_, rest)| rest);
    id.char_indices().nth(12).map_or(id, |(i, _)| &id[..i])
}

/// One repository as `docker trust inspect --pretty` prints it.
fn pretty_one(r: &v1::RepositoryInspection, out: &mut String) {
    let name = &r.name;
    if r.signed_tags.is_empty() {
        out.push_str(&format!("\nNo signatures for {name}\n\n"));
    } else {
        out.push_str(&format!("\nSignatures for {name}\n\n"));
        let mut rows = vec![vec![
            "SIGNED TAG".to_owned(),
            "DIGEST".to_owned(),
            "SIGNERS".to_owned(),
        ]];
        for t in &r.signed_tags {
            let signers = if t.signers.is_empty() || t.signers == [REPO_ADMIN] {
                format!("({REPO_ADMIN})")
            } else {
                let mut s = t.signers.clone();
                s.sort();
                s.join(", ")
            };
            rows.push(vec![t.tag.clone(), t.digest.clone(), signers]);
        }
        out.push_str(&tabwrite(&rows));
    }
    if !r.signers.is_empty() {
        out.push_str(&format!("\nList of signers and their keys for {name}\n\n"));
        let mut signers: Vec<&v1::RoleKeyList> = r.signers.iter().collect();
        signers.sort_by(|a, b| natural_cmp(&a.name, &b.name));
        let mut rows = vec![vec!["SIGNER".to_owned(), "KEYS".to_owned()]];
        for s in signers {
            let mut ids = s.key_ids.clone();
            ids.sort();
            let keys: Vec<&str> = ids.iter().map(|id| truncate_id(id)).collect();
            rows.push(vec![s.name.clone(), keys.join(", ")]);
        }
        out.push_str(&tabwrite(&rows));
    }
    out.push_str(&format!("\nAdministrative keys for {name}\n\n"));
    // docker sorts the roles by TUF name descending (targets before root).
    for (label, role) in [("Repository Key", "Repository"), ("Root Key", "Root")] {
        if let Some(k) = r.administrative_keys.iter().find(|k| k.name == role) {
            let mut ids = k.key_ids.clone();
            ids.sort();
            out.push_str(&format!("  {label}:\t{}\n", ids.join(", ")));
        }
    }
}

/// What `docker trust inspect --pretty REPO…` prints on stdout.
pub fn inspect_pretty(repos: &[v1::RepositoryInspection]) -> String {
    let mut out = String::new();
    for (i, r) in repos.iter().enumerate() {
        pretty_one(r, &mut out);
        if i + 1 < repos.len() {
            out.push_str("\n\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::path::{Path, PathBuf};

    fn fixture(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/inspect")
            .join(rel)
    }

    fn read(rel: &str) -> String {
        std::fs::read_to_string(fixture(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    /// Rebuilds the daemon's answer from docker's own JSON (the fields are
    /// the same), with rows of one tag ordered by digest as tufd orders them.
    fn inspections(docker_json: &str) -> Vec<v1::RepositoryInspection> {
        let v: Vec<Value> = serde_json::from_str(docker_json).expect("docker JSON");
        let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let keys = |v: &Value| -> Vec<v1::RoleKeyList> {
            v.as_array()
                .into_iter()
                .flatten()
                .map(|k| v1::RoleKeyList {
                    name: s(&k["Name"]),
                    key_ids: k["Keys"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|id| s(&id["ID"]))
                        .collect(),
                })
                .collect()
        };
        v.iter()
            .map(|r| {
                let mut signed_tags: Vec<v1::SignedTag> = r["SignedTags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| v1::SignedTag {
                        tag: s(&t["SignedTag"]),
                        digest: s(&t["Digest"]),
                        size: 0,
                        signers: t["Signers"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(s)
                            .collect(),
                    })
                    .collect();
                signed_tags.sort_by(|a, b| {
                    natural_cmp(&a.tag, &b.tag).then_with(|| a.digest.cmp(&b.digest))
                });
                v1::RepositoryInspection {
                    name: s(&r["Name"]),
                    signed_tags,
                    signers: keys(&r["Signers"]),
                    administrative_keys: keys(&r["AdministrativeKeys"]),
                    expiry_warnings: Vec::new(),
                }
            })
            .collect()
    }

    /// docker's text with rows of one tag in digest order (docker's own
    /// order for them changes from run to run).
    fn order_equal_tags(text: &str, repos: &[v1::RepositoryInspection]) -> String {
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        for r in repos {
            for t in &r.signed_tags {
                let same: Vec<usize> = (0..lines.len())
                    .filter(|&i| lines[i].starts_with(&format!("{}   ", t.tag)))
                    .filter(|&i| lines[i].split_whitespace().next() == Some(t.tag.as_str()))
                    .collect();
                let mut group: Vec<String> = same.iter().map(|&i| lines[i].clone()).collect();
                group.sort_by_key(|l| l.split_whitespace().nth(1).unwrap_or_default().to_owned());
                for (&i, l) in same.iter().zip(group) {
                    lines[i] = l;
                }
            }
        }
        let mut out = lines.join("\n");
        if text.ends_with('\n') {
            out.push('\n');
        }
        out
    }

    #[test]
    fn json_is_byte_for_byte_what_docker_prints() {
        for rel in [
            "empty/docker-trust-inspect.json",
            "app/docker-trust-inspect-v6.json",
            "app/docker-trust-inspect-v4.json",
            "app-keyless-role/docker-trust-inspect.json",
            "multi.json",
        ] {
            let docker = read(rel);
            assert_eq!(inspect_json(&inspections(&docker)), docker, "{rel}");
        }
        // The full listing: docker's order of the two v6 rows changes from
        // run to run; with it fixed, the same bytes.
        let docker = read("app/docker-trust-inspect.json");
        let repos = inspections(&docker);
        let ours = inspect_json(&repos);
        let v6 = |text: &str| text.find("683adbe3").zip(text.find("97e96b0c"));
        let (Some((a, b)), Some((c, d))) = (v6(&ours), v6(&docker)) else {
            panic!("v6 rows missing");
        };
        if (a < b) == (c < d) {
            assert_eq!(ours, docker);
        } else {
            assert_eq!(ours.len(), docker.len());
        }
        assert!(ours.contains(r#""SignedTag": "a\u003cb\u003e\u0026c""#));
        assert!(ours.contains("\n            {\n                \"Name\": \"erin\",\n"));
    }

    #[test]
    fn columns_align_by_display_width() {
        let rows = vec![
            vec!["SIGNER".to_owned(), "KEYS".to_owned()],
            vec!["日本語".to_owned(), "a".to_owned()],
            vec!["e\u{301}te\u{301}".to_owned(), "b".to_owned()],
            vec!["plain".to_owned(), "c".to_owned()],
        ];
        let text = tabwrite(&rows);
        let starts: Vec<usize> = text
            .lines()
            .map(|l| {
                use unicode_width::UnicodeWidthStr;
                let cut = l.rfind(' ').unwrap() + 1;
                l[..cut].width()
            })
            .collect();
        assert_eq!(starts, vec![10, 10, 10, 10], "{text}");
        assert!(text.starts_with("SIGNER    KEYS\n日本語    a\n"), "{text}");
    }

    #[test]
    fn keyless_signer_omits_keys_like_docker() {
        let docker = read("app-keyless-role/docker-trust-inspect.json");
        assert!(docker.contains("\"Name\": \"erin\"\n"));
        assert_eq!(inspect_json(&inspections(&docker)), docker);
    }

    #[test]
    fn no_repositories_is_an_empty_array() {
        assert_eq!(inspect_json(&[]), "[]\n");
    }

    #[test]
    fn pretty_is_byte_for_byte_what_docker_prints() {
        for (json, pretty) in [
            (
                "app/docker-trust-inspect.json",
                "app/docker-trust-inspect-pretty.txt",
            ),
            (
                "empty/docker-trust-inspect.json",
                "empty/docker-trust-inspect-pretty.txt",
            ),
            ("multi.json", "multi-pretty.txt"),
        ] {
            let repos = inspections(&read(json));
            let want = order_equal_tags(&read(pretty), &repos);
            assert_eq!(inspect_pretty(&repos), want, "{pretty}");
        }
    }

    #[test]
    fn go_string_escapes() {
        let mut s = String::new();
        go_string("a<b>&c \"q\" \\ \n\t\u{1}\u{2028}ü", &mut s);
        assert_eq!(s, r#""a\u003cb\u003e\u0026c \"q\" \\ \n\t\u0001\u2028ü""#);
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["v10", "v2", "v1", "b", "1", "v1.10", "v1.9", "v01"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["1", "b", "v1", "v1.9", "v1.10", "v01", "v2", "v10"]);
    }

    #[test]
    fn truncated_ids() {
        assert_eq!(truncate_id("0476fa759e19df2339454589e01a"), "0476fa759e19");
        assert_eq!(truncate_id("sha256:0476fa759e19df23"), "0476fa759e19");
        assert_eq!(truncate_id("short"), "short");
    }
}
