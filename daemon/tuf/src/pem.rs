//! PEM certificates in the exact layout of Go's `pem.Encode`, which notary
//! re-derives before computing an x509 key's ID (format notes §3.1).

use base64::Engine;

const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const END: &str = "-----END CERTIFICATE-----";

/// Encodes one DER certificate as Go's `pem.Encode` does: header line,
/// base64 in 64-character lines, footer line, every line ending in `\n`.
pub fn certificate_pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 64);
    out.push_str(BEGIN);
    out.push('\n');
    // base64 output is ASCII, so byte chunks are char boundaries.
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(END);
    out.push('\n');
    out
}

/// Encodes a chain (leaf first) as concatenated [`certificate_pem`] blocks.
pub fn certificate_chain_pem<'a>(ders: impl IntoIterator<Item = &'a [u8]>) -> String {
    ders.into_iter().map(certificate_pem).collect()
}

/// Extracts the DER bytes of every `CERTIFICATE` block, in order.
///
/// Lenient like Go's `pem.Decode`: text between blocks is ignored and line
/// lengths do not matter. Blocks with headers or other labels are skipped.
pub fn decode_certificates(pem: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let text = std::str::from_utf8(pem).map_err(|_| "PEM is not valid UTF-8".to_owned())?;
    let mut certs = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let body_start = start + BEGIN.len();
        let end = rest[body_start..]
            .find(END)
            .ok_or_else(|| "PEM certificate block has no END line".to_owned())?;
        let body: String = rest[body_start..body_start + end]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|e| format!("PEM certificate block is not valid base64: {e}"))?;
        certs.push(der);
        rest = &rest[body_start + end + END.len()..];
    }
    if certs.is_empty() {
        return Err("no CERTIFICATE block in PEM".to_owned());
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_round_trip() {
        let der: Vec<u8> = (0..=200u8).collect();
        let pem = certificate_pem(&der);
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(pem.ends_with("\n-----END CERTIFICATE-----\n"));
        for line in pem.lines().skip(1) {
            assert!(line.len() <= 64);
        }
        assert_eq!(decode_certificates(pem.as_bytes()).unwrap(), vec![der]);
    }
}
