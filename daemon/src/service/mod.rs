//! gRPC adapters: turn requests into keyring calls and errors into
//! statuses. No logic beyond that lives here.

mod keys;
mod system;
mod trust;

pub use keys::KeysService;
pub use system::SystemService;
pub use trust::TrustService;

use crate::keyring::{KeyringError, TokenReport};
use tonic::transport::server::UdsConnectInfo;
use tonic::{Code, Request, Status};
use tufd_keys::{KeyError, KeyOrigin, KeyRecord, TokenStatus, import::ImportError};
use tufd_proto::v1;

/// Who is calling, from the socket's peer credentials (`SO_PEERCRED`).
pub(crate) fn caller<T>(req: &Request<T>) -> String {
    req.extensions()
        .get::<UdsConnectInfo>()
        .and_then(|i| i.peer_cred)
        .map(|c| {
            format!(
                "uid={} gid={} pid={}",
                c.uid(),
                c.gid(),
                c.pid().map_or_else(|| "?".into(), |p| p.to_string())
            )
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Maps a keyring error to the gRPC status a client acts on.
pub(crate) fn status(e: KeyringError) -> Status {
    Status::new(key_status_code(&e), e.to_string())
}

/// The gRPC code for a keyring error.
pub(crate) fn key_status_code(e: &KeyringError) -> Code {
    match e {
        KeyringError::Key(k) => match k {
            KeyError::ModuleLoad { .. }
            | KeyError::TokenNotFound { .. }
            | KeyError::Device { .. } => Code::Unavailable,
            KeyError::PinSource { .. }
            | KeyError::PinRejected { .. }
            | KeyError::PinLocked { .. } => Code::FailedPrecondition,
            KeyError::InvalidLabel(_) => Code::InvalidArgument,
            KeyError::KeyNotFound { .. } => Code::NotFound,
            KeyError::AlreadyExists { .. } => Code::AlreadyExists,
            KeyError::Import(ImportError::WrongPassphrase) => Code::PermissionDenied,
            KeyError::Import(_) => Code::InvalidArgument,
            KeyError::BadSignature { .. } => Code::Internal,
            KeyError::Corrupt { .. } => Code::DataLoss,
        },
        KeyringError::UnknownToken { .. } | KeyringError::InvalidRequest(_) => {
            Code::InvalidArgument
        }
        KeyringError::AmbiguousKey { .. } => Code::InvalidArgument,
        KeyringError::KeyNotFound(_) => Code::NotFound,
        KeyringError::NameTaken { .. } => Code::AlreadyExists,
        KeyringError::Internal(_) => Code::Internal,
    }
}

pub(crate) fn key_info(k: KeyRecord) -> v1::KeyInfo {
    use p256::pkcs8::{DecodePublicKey, EncodePublicKey, LineEnding};
    let public_key_pem = p256::PublicKey::from_public_key_der(&k.spki_der)
        .ok()
        .and_then(|p| p.to_public_key_pem(LineEnding::LF).ok())
        .unwrap_or_default();
    v1::KeyInfo {
        name: k.label.name().to_owned(),
        gun: k.label.gun().to_owned(),
        key_id: k.id,
        algorithm: "ecdsa-p256".into(),
        token: k.token,
        public_key_pem,
        origin: match k.origin {
            KeyOrigin::Generated => v1::KeyOrigin::Generated,
            KeyOrigin::Imported => v1::KeyOrigin::Imported,
        } as i32,
        sensitive: k.sensitive,
        extractable: k.extractable,
    }
}

pub(crate) fn token_info(t: TokenReport) -> v1::TokenInfo {
    let mut info = v1::TokenInfo {
        name: t.name,
        kind: t.kind.into(),
        is_default: t.is_default,
        ..Default::default()
    };
    let (state, detail) = match t.status {
        TokenStatus::Ready {
            description,
            key_count,
        } => {
            info.label = description.label;
            info.serial = description.serial;
            info.manufacturer = description.manufacturer;
            info.model = description.model;
            info.key_count = key_count as u32;
            (v1::TokenState::Ready, String::new())
        }
        TokenStatus::Unavailable { reason } => (v1::TokenState::Unavailable, reason),
        TokenStatus::PinRejected { reason, .. } => (v1::TokenState::PinRejected, reason),
        TokenStatus::PinLocked { reason } => (v1::TokenState::PinLocked, reason),
    };
    info.state = state as i32;
    info.detail = detail;
    info
}
