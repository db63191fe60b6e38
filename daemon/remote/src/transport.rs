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
    if is_tls(&err) {
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

/// Whether a rustls error is somewhere in the chain. `io::Error` hides its
/// payload from `source()` (and hyper nests one inside another), so io
/// errors are unwrapped explicitly.
fn is_tls(err: &reqwest::Error) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if is_rustls(e) {
            return true;
        }
        cur = e.source();
    }
    false
}

fn is_rustls(mut e: &(dyn StdError + 'static)) -> bool {
    loop {
        if e.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => e = inner,
            None => return false,
        }
    }
}
