//! gRPC adapters: turn requests into keyring calls and errors into
//! statuses. No logic beyond that lives here.

pub mod budget;
pub mod gate;
mod inspect;
mod keys;
mod policy;
mod system;
mod trust;
mod tuf1;
pub mod unmapped;

pub use gate::Gate;
pub use keys::KeysService;
pub use policy::PolicyService;
pub use system::SystemService;
pub use trust::{
    MAX_REPOSITORIES_PER_REQUEST, MAX_REQUEST_BYTES as MAX_TRUST_REQUEST_BYTES, TrustService,
};
pub use tuf1::TufService;

use crate::connections::PeerInfo;
use crate::keyring::{KeyringError, TokenReport};
use tonic::{Code, Request, Status};
use tufd_keys::{Attestation, KeyError, KeyOrigin, KeyRecord, TokenStatus, import::ImportError};
use tufd_proto::v1;

/// Who is calling, from the socket's peer credentials (`SO_PEERCRED`).
pub(crate) fn caller<T>(req: &Request<T>) -> String {
    req.extensions()
        .get::<PeerInfo>()
        .and_then(|i| i.uds.peer_cred)
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
            | KeyError::PinLocked { .. }
            | KeyError::Locked { .. }
            | KeyError::LastPinTry { .. }
            | KeyError::UnlockRejected { .. }
            | KeyError::UnlockUnsupported { .. }
            | KeyError::AlreadyUnlocked { .. }
            | KeyError::Unprotected { .. } => Code::FailedPrecondition,
            KeyError::UnlockBudget { .. } => Code::ResourceExhausted,
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
        KeyringError::NameUnknown { .. } => Code::Unavailable,
        KeyringError::Busy(_) => Code::ResourceExhausted,
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
        attestation: None,
    }
}

/// A key's attestation as the API reports it; an error asking the device
/// becomes state ERROR with the reason.
pub(crate) fn attestation_info(a: Result<Attestation, KeyringError>) -> v1::KeyAttestation {
    use v1::AttestationState as S;
    let mut info = v1::KeyAttestation::default();
    let state = match a {
        Ok(Attestation::Verified(a)) => {
            let pem = |der: &[u8]| pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()));
            info.generated_on_device = true;
            info.device_serial = a.serial.map(|s| s.to_string()).unwrap_or_default();
            info.firmware_version = a
                .firmware
                .map(|(x, y, z)| format!("{x}.{y}.{z}"))
                .unwrap_or_default();
            info.pin_policy = a
                .pin_policy
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default();
            info.touch_policy = a
                .touch_policy
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default();
            info.chain_to_root = a.chain_to_root;
            info.detail = if a.chain_to_root {
                "attestation chain verified up to the configured Yubico root CA".into()
            } else {
                "attestation chain verified up to the device's attestation certificate (slot f9) only; configure attestation_root to check it against Yubico's root CA".into()
            };
            info.statement_pem = pem(&a.statement_der);
            info.intermediate_pem = pem(&a.intermediate_der);
            S::Verified
        }
        Ok(Attestation::Unavailable { reason }) => {
            info.detail = reason;
            S::Unavailable
        }
        Ok(Attestation::Invalid { reason }) => {
            info.detail = reason;
            S::Invalid
        }
        Ok(Attestation::NotSupported {
            reason,
            generated_on_token,
        }) => {
            info.detail = reason;
            info.generated_on_device = generated_on_token.unwrap_or(false);
            S::NotSupported
        }
        Err(e) => {
            info.detail = e.to_string();
            S::Error
        }
    };
    info.state = state as i32;
    info
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
        TokenStatus::Scanning {
            description,
            reason,
        } => {
            info.label = description.label;
            info.serial = description.serial;
            info.manufacturer = description.manufacturer;
            info.model = description.model;
            (v1::TokenState::Scanning, reason)
        }
        TokenStatus::Unavailable { reason } => (v1::TokenState::Unavailable, reason),
        TokenStatus::PinRejected { reason, .. } => (v1::TokenState::PinRejected, reason),
        TokenStatus::PinLocked { reason } => (v1::TokenState::PinLocked, reason),
        TokenStatus::Locked { reason } => (v1::TokenState::Locked, reason),
    };
    info.state = state as i32;
    info.detail = detail;
    info
}

#[cfg(test)]
mod tests {
    use super::*;
    use tufd_keys::yubikey::{KeyPinPolicy, KeyTouchPolicy, attest};

    #[test]
    fn attestations_map_to_the_api() {
        let verified = attestation_info(Ok(Attestation::Verified(attest::Attestation {
            statement_der: vec![1, 2, 3],
            intermediate_der: vec![4, 5, 6],
            chain_to_root: false,
            serial: Some(12_345_678),
            firmware: Some((5, 4, 3)),
            pin_policy: Some(KeyPinPolicy::Once),
            touch_policy: Some(KeyTouchPolicy::Always),
            form_factor: Some(3),
        })));
        assert_eq!(verified.state, v1::AttestationState::Verified as i32);
        assert!(verified.generated_on_device);
        assert_eq!(verified.device_serial, "12345678");
        assert_eq!(verified.firmware_version, "5.4.3");
        assert_eq!(verified.pin_policy, "once");
        assert_eq!(verified.touch_policy, "always");
        assert!(!verified.chain_to_root);
        assert!(
            verified.detail.contains("(slot f9) only"),
            "{}",
            verified.detail
        );
        assert!(
            verified
                .statement_pem
                .starts_with("-----BEGIN CERTIFICATE-----")
        );

        let cannot = attestation_info(Ok(Attestation::Unavailable {
            reason: "YubiKey serial 1 cannot attest".into(),
        }));
        assert_eq!(cannot.state, v1::AttestationState::Unavailable as i32);
        assert_eq!(cannot.detail, "YubiKey serial 1 cannot attest");
        assert!(!cannot.generated_on_device);

        let pkcs11 = attestation_info(Ok(Attestation::NotSupported {
            reason:
                "not supported by this token type (CKA_LOCAL=true says generated on token: yes)"
                    .into(),
            generated_on_token: Some(true),
        }));
        assert_eq!(pkcs11.state, v1::AttestationState::NotSupported as i32);
        assert!(pkcs11.generated_on_device);

        let failed = attestation_info(Err(KeyringError::Internal("gone".into())));
        assert_eq!(failed.state, v1::AttestationState::Error as i32);
        assert!(failed.detail.contains("gone"));
    }
}
