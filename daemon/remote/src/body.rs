//! Reading a response body with a hard size limit, chunk by chunk, so an
//! oversized or endless body is cut off instead of buffered.

use bytes::{Bytes, BytesMut};

use crate::Error;
use crate::transport::classify;

pub(crate) async fn read_limited(
    url: &str,
    mut resp: reqwest::Response,
    limit: u64,
) -> Result<Bytes, Error> {
    let too_large = || Error::TooLarge {
        url: url.to_owned(),
        limit,
    };
    let declared = resp.content_length();
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let initial = declared.unwrap_or(8 << 10).min(limit).min(1 << 20);
    let mut buf = BytesMut::with_capacity(usize::try_from(initial).unwrap_or(0));
    while let Some(chunk) = resp.chunk().await.map_err(|e| classify(url, e))? {
        if (buf.len() as u64).saturating_add(chunk.len() as u64) > limit {
            // Dropping `resp` here closes the connection mid-body.
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}
