//! The publish body, byte for byte what notary's `NewMultiPartMetaRequest`
//! (Go `mime/multipart` + `CreateFormFile("files", role)`) sends.

use bytes::Bytes;
use rand::RngCore;

use crate::RoleName;

/// A finished multipart body and the matching `Content-Type` header value.
pub(crate) struct MultipartBody {
    pub content_type: String,
    pub body: Vec<u8>,
}

/// Builds the body with a random boundary that occurs in none of the files.
pub(crate) fn build(files: &[(RoleName, Bytes)]) -> MultipartBody {
    let boundary = loop {
        let candidate = random_boundary();
        let needle = candidate.as_bytes();
        if !files
            .iter()
            .any(|(_, data)| data.windows(needle.len()).any(|w| w == needle))
        {
            break candidate;
        }
    };
    build_with_boundary(files, &boundary)
}

fn random_boundary() -> String {
    // Go: 30 random bytes, hex-encoded.
    let mut raw = [0u8; 30];
    rand::rng().fill_bytes(&mut raw);
    hex::encode(raw)
}

fn build_with_boundary(files: &[(RoleName, Bytes)], boundary: &str) -> MultipartBody {
    let mut body = Vec::with_capacity(files.iter().map(|(_, d)| d.len() + 200).sum());
    for (i, (role, data)) in files.iter().enumerate() {
        if i > 0 {
            body.extend_from_slice(b"\r\n");
        }
        // Role names never contain '"' or '\' (RoleName validates), so Go's
        // quote escaping is the identity here.
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{role}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(data);
    }
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    MultipartBody {
        content_type: format!("multipart/form-data; boundary={boundary}"),
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_go_layout() {
        let files = vec![
            (RoleName::ROOT, Bytes::from_static(b"{\"a\":1}")),
            (
                RoleName::new("targets/releases").expect("valid"),
                Bytes::from_static(b"{}"),
            ),
        ];
        let m = build_with_boundary(&files, "B");
        assert_eq!(m.content_type, "multipart/form-data; boundary=B");
        assert_eq!(
            String::from_utf8(m.body).expect("utf8"),
            "--B\r\nContent-Disposition: form-data; name=\"files\"; filename=\"root\"\r\nContent-Type: application/octet-stream\r\n\r\n{\"a\":1}\r\n--B\r\nContent-Disposition: form-data; name=\"files\"; filename=\"targets/releases\"\r\nContent-Type: application/octet-stream\r\n\r\n{}\r\n--B--\r\n"
        );
    }

    #[test]
    fn boundary_is_random_and_go_sized() {
        let a = build(&[(RoleName::ROOT, Bytes::new())]).content_type;
        let b = build(&[(RoleName::ROOT, Bytes::new())]).content_type;
        assert_ne!(a, b);
        assert_eq!(a.len(), "multipart/form-data; boundary=".len() + 60);
    }
}
