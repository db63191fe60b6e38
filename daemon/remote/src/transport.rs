//! Turning `reqwest` errors into [`Error`] variants a person can act on.

use std::error::Error as StdError;

use crate::Error;

pub(crate) fn classify(url: &str, err: reqwest::Error) -> Error {
    let url = url.to_owned();
    if err.is_timeout() {
        let phase = if err.is_connect() {
            "connect"
        } else {
            "request"
        };
        return Error::Timeout { url, phase };
    }
    let detail = chain_text(&err);
    if let Some(tls) = find_rustls(&err) {
        let detail = match hint(tls) {
            Some(hint) => format!("{detail} ({hint})"),
            None => detail,
        };
        Error::Tls {
            url,
            detail,
            source: err,
        }
    } else if err.is_connect() {
        Error::Connect {
            url,
            detail,
            source: err,
        }
    } else {
        Error::Transport {
            url,
            detail,
            source: err,
        }
    }
}

/// The messages of the error's causes (the top level only repeats the URL).
fn chain_text(err: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn StdError + 'static)> = err.source();
    while let Some(e) = cur {
        let text = e.to_string();
        if parts.last().is_none_or(|last| !last.contains(&text)) {
            parts.push(text);
        }
        cur = e.source();
    }
    if parts.is_empty() {
        err.to_string()
    } else {
        parts.join(": ")
    }
}

/// The rustls error somewhere in the chain, if any. `io::Error` hides its
/// payload from `source()` (and hyper nests one inside another), so io
/// errors are unwrapped explicitly.
fn find_rustls(err: &reqwest::Error) -> Option<&rustls::Error> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(tls) = unwrap_io(e) {
            return Some(tls);
        }
        cur = e.source();
    }
    None
}

fn unwrap_io<'a>(mut e: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    loop {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        e = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())?;
    }
}

/// What the person should probably check, for the common TLS failures.
fn hint(err: &rustls::Error) -> Option<&'static str> {
    use rustls::{AlertDescription as A, CertificateError as C, Error as E};
    Some(match err {
        E::InvalidCertificate(C::UnknownIssuer) => {
            "the server certificate is not signed by a trusted CA: check the configured CA file"
        }
        E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            "the server certificate is not valid for this host name: check the server URL"
        }
        E::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "the server certificate has expired"
        }
        E::AlertReceived(A::CertificateRequired | A::BadCertificate | A::UnknownCA) => {
            "the server wants a (valid) client certificate: check the client certificate settings"
        }
        _ => return None,
    })
}
