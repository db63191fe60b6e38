//! Reading one repository's inspection from `InspectStream`, whatever its
//! size, and joining its parts.

use crate::connect::Trust;
use tufd_proto::v1::{self, inspect_part::Part};

/// The inspection of `reference`: streamed in parts, joined here. A daemon
/// without `InspectStream` (older than this client) answers the unary
/// `Inspect` instead.
pub async fn inspect_one(
    client: &mut Trust,
    reference: &str,
) -> Result<Vec<v1::RepositoryInspection>, tonic::Status> {
    let request = v1::InspectRequest {
        repositories: vec![reference.to_owned()],
    };
    let mut parts = match client.inspect_stream(request.clone()).await {
        Ok(s) => s.into_inner(),
        Err(s) if s.code() == tonic::Code::Unimplemented => {
            return Ok(client.inspect(request).await?.into_inner().repositories);
        }
        Err(s) => return Err(s),
    };
    let mut out: Vec<v1::RepositoryInspection> = Vec::new();
    while let Some(part) = parts.message().await? {
        match part.part {
            Some(Part::Repository(r)) => out.push(r),
            Some(Part::MoreTags(t)) => match out.last_mut() {
                Some(r) => r.signed_tags.extend(t.tags),
                None => {
                    return Err(tonic::Status::internal(
                        "the daemon sent tags before their repository",
                    ));
                }
            },
            None => {}
        }
    }
    Ok(out)
}
