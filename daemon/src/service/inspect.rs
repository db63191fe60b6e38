//! `Inspect` answers as protobuf: whole (the unary RPC) or in parts
//! (`InspectStream`), so a repository of any size crosses the socket in
//! messages far below the message limit.

use crate::trust::inspect::{self, Inspection};
use prost::Message;
use tufd_proto::v1::{self, inspect_part::Part};

/// Encoded bytes of signed tags per streamed part, at most (one tag may
/// exceed it alone; it is sent alone then). Far below the 4 MiB message
/// limit, small enough that the client decodes while the daemon encodes.
pub const PART_BYTES: usize = 256 * 1024;

fn keys(v: Vec<inspect::RoleKeys>) -> Vec<v1::RoleKeyList> {
    v.into_iter()
        .map(|r| v1::RoleKeyList {
            name: r.name,
            key_ids: r.key_ids,
        })
        .collect()
}

fn tag(t: inspect::SignedTag) -> v1::SignedTag {
    v1::SignedTag {
        tag: t.tag,
        digest: t.digest,
        size: t.size,
        signers: t.signers,
    }
}

/// A tag's bytes inside a repeated field: field key, length, message.
fn framed_len(t: &v1::SignedTag) -> usize {
    let len = t.encoded_len();
    1 + prost::length_delimiter_len(len) + len
}

/// Everything but the signed tags.
fn header(i: Inspection) -> (v1::RepositoryInspection, Vec<inspect::SignedTag>) {
    let r = v1::RepositoryInspection {
        name: i.name,
        signed_tags: Vec::new(),
        signers: keys(i.signers),
        administrative_keys: keys(i.administrative_keys),
        expiry_warnings: i
            .expiry_warnings
            .into_iter()
            .map(|w| v1::ExpiryWarning {
                role: w.role,
                expires: tufd_tuf::expiry::format_go_time(w.expires).unwrap_or_default(),
            })
            .collect(),
    };
    (r, i.signed_tags)
}

/// One repository as one message (the unary `Inspect`).
pub fn whole(i: Inspection) -> v1::RepositoryInspection {
    let (mut r, tags) = header(i);
    r.signed_tags = tags.into_iter().map(tag).collect();
    r
}

/// One repository as stream parts of at most about [`PART_BYTES`] of tags
/// each: the header with the first tags, then `more_tags` parts. Lazy, so
/// only one part's protobuf is alive at a time.
pub fn parts(i: Inspection) -> impl Iterator<Item = v1::InspectPart> + Send {
    let (header, tags) = header(i);
    let mut header = Some(header);
    let mut tags = tags.into_iter().map(tag).peekable();
    std::iter::from_fn(move || {
        if header.is_none() && tags.peek().is_none() {
            return None;
        }
        let mut batch = Vec::new();
        let mut bytes = header.as_ref().map_or(0, Message::encoded_len);
        while let Some(t) =
            tags.next_if(|t| batch.is_empty() || bytes + framed_len(t) <= PART_BYTES)
        {
            bytes += framed_len(&t);
            batch.push(t);
        }
        let part = match header.take() {
            Some(mut h) => {
                h.signed_tags = batch;
                Part::Repository(h)
            }
            None => Part::MoreTags(v1::SignedTags { tags: batch }),
        };
        Some(v1::InspectPart { part: Some(part) })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inspection(tags: usize) -> Inspection {
        Inspection {
            name: "example.com/app".into(),
            signed_tags: (0..tags)
                .map(|n| inspect::SignedTag {
                    tag: format!("t{n}"),
                    digest: format!("{n:064x}"),
                    size: n as u64 + 1,
                    signers: vec![inspect::REPO_ADMIN.into()],
                })
                .collect(),
            signers: vec![],
            administrative_keys: vec![inspect::RoleKeys {
                name: inspect::ROOT_KEYS.into(),
                key_ids: vec!["ab".repeat(32)],
            }],
            expiry_warnings: vec![],
        }
    }

    /// The parts, reassembled as a client does, equal the whole answer;
    /// every part is within the bound.
    #[test]
    fn parts_reassemble_to_the_whole_answer_within_the_bound() {
        for n in [0, 1, 3000, 20_000] {
            let whole = whole(inspection(n));
            let mut parts = parts(inspection(n));
            let Some(Part::Repository(mut joined)) = parts.next().and_then(|p| p.part) else {
                panic!("first part is the repository");
            };
            let mut count = 1;
            for p in parts {
                // Outer framing: the oneof field's key and length.
                assert!(
                    p.encoded_len() <= PART_BYTES + 64,
                    "part of {}",
                    p.encoded_len()
                );
                match p.part {
                    Some(Part::MoreTags(t)) => joined.signed_tags.extend(t.tags),
                    other => panic!("expected more tags, got {other:?}"),
                }
                count += 1;
            }
            assert_eq!(joined, whole, "{n} tags");
            if n == 20_000 {
                assert!(count > 2, "20 000 tags come in several parts ({count})");
            }
        }
    }
}
