//! The Trussed side of the card: the backends piv-authenticator needs on
//! Trussed's software (`virt`) platform, and a client handle that lets the
//! runner rebuild the PIV application on a card reset without losing storage.

use std::path::Path;
use std::task::Poll;

use trussed::backend::{Backend as _, BackendId};
use trussed::platform::Platform;
use trussed::serde_extensions::{ExtensionDispatch, ExtensionId, ExtensionImpl};
use trussed::service::ServiceResources;
use trussed::types::Context;
use trussed::virt::{StorageConfig, StoreConfig};
use trussed_auth::AuthExtension;
use trussed_auth_backend::{AuthBackend, AuthContext, FilesystemLayout};
use trussed_chunked::ChunkedExtension;
use trussed_core::api::RequestVariant;
use trussed_core::api::{reply, request, Reply, Request};
use trussed_core::serde_extensions::{Extension, ExtensionClient};
use trussed_core::types::Location;
use trussed_core::Error;
use trussed_core::{ClientResult, FutureResult, PollClient};
use trussed_hpke::HpkeExtension;
use trussed_staging::{StagingBackend, StagingContext};
use trussed_wrap_key_to_file::WrapKeyToFileExtension;

/// The custom backends, tried in this order before Trussed's core backend.
pub const BACKENDS: &[BackendId<BackendIds>] = &[
    BackendId::Custom(BackendIds::Auth),
    BackendId::Custom(BackendIds::Staging),
    BackendId::Core,
];

/// Identifies a custom backend.
#[derive(Debug, Clone, Copy)]
pub enum BackendIds {
    /// `trussed-auth-backend`: PIN handling.
    Auth,
    /// `trussed-staging`: chunked files, HPKE, wrap-key-to-file.
    Staging,
}

/// Identifies a Trussed extension piv-authenticator uses.
#[derive(Debug, Clone, Copy)]
pub enum ExtensionIds {
    /// `trussed-auth`.
    Auth,
    /// `trussed-chunked`.
    Chunked,
    /// `trussed-hpke`.
    Hpke,
    /// `trussed-wrap-key-to-file`.
    WrapKeyToFile,
}

impl From<ExtensionIds> for u8 {
    fn from(id: ExtensionIds) -> u8 {
        match id {
            ExtensionIds::Auth => 0,
            ExtensionIds::Chunked => 1,
            ExtensionIds::Hpke => 2,
            ExtensionIds::WrapKeyToFile => 3,
        }
    }
}

impl TryFrom<u8> for ExtensionIds {
    type Error = Error;

    fn try_from(id: u8) -> Result<Self, Error> {
        match id {
            0 => Ok(Self::Auth),
            1 => Ok(Self::Chunked),
            2 => Ok(Self::Hpke),
            3 => Ok(Self::WrapKeyToFile),
            _ => Err(Error::FunctionNotSupported),
        }
    }
}

/// Dispatches requests to the auth and staging backends.
#[derive(Debug)]
pub struct Dispatch {
    auth: AuthBackend,
    staging: StagingBackend,
}

impl Default for Dispatch {
    fn default() -> Self {
        Self {
            auth: AuthBackend::new(Location::Internal, FilesystemLayout::V0),
            staging: StagingBackend::new(),
        }
    }
}

/// Per-client state of the custom backends.
#[derive(Default)]
pub struct DispatchContext {
    auth: AuthContext,
    staging: StagingContext,
}

impl ExtensionDispatch for Dispatch {
    type BackendId = BackendIds;
    type Context = DispatchContext;
    type ExtensionId = ExtensionIds;

    fn core_request<P: Platform>(
        &mut self,
        backend: &BackendIds,
        ctx: &mut Context<DispatchContext>,
        request: &Request,
        resources: &mut ServiceResources<P>,
    ) -> Result<Reply, Error> {
        match backend {
            BackendIds::Auth => {
                self.auth
                    .request(&mut ctx.core, &mut ctx.backends.auth, request, resources)
            }
            BackendIds::Staging => {
                self.staging
                    .request(&mut ctx.core, &mut ctx.backends.staging, request, resources)
            }
        }
    }

    fn extension_request<P: Platform>(
        &mut self,
        backend: &BackendIds,
        extension: &ExtensionIds,
        ctx: &mut Context<DispatchContext>,
        request: &request::SerdeExtension,
        resources: &mut ServiceResources<P>,
    ) -> Result<reply::SerdeExtension, Error> {
        let core = &mut ctx.core;
        let staging_ctx = &mut ctx.backends.staging;
        match (backend, extension) {
            (BackendIds::Auth, ExtensionIds::Auth) => {
                <AuthBackend as ExtensionImpl<AuthExtension>>::extension_request_serialized(
                    &mut self.auth,
                    core,
                    &mut ctx.backends.auth,
                    request,
                    resources,
                )
            }
            (BackendIds::Staging, ExtensionIds::Chunked) => {
                <StagingBackend as ExtensionImpl<ChunkedExtension>>::extension_request_serialized(
                    &mut self.staging,
                    core,
                    staging_ctx,
                    request,
                    resources,
                )
            }
            (BackendIds::Staging, ExtensionIds::Hpke) => {
                <StagingBackend as ExtensionImpl<HpkeExtension>>::extension_request_serialized(
                    &mut self.staging,
                    core,
                    staging_ctx,
                    request,
                    resources,
                )
            }
            (BackendIds::Staging, ExtensionIds::WrapKeyToFile) => {
                <StagingBackend as ExtensionImpl<WrapKeyToFileExtension>>::extension_request_serialized(
                    &mut self.staging,
                    core,
                    staging_ctx,
                    request,
                    resources,
                )
            }
            _ => Err(Error::RequestNotAvailable),
        }
    }
}

impl ExtensionId<AuthExtension> for Dispatch {
    type Id = ExtensionIds;
    const ID: ExtensionIds = ExtensionIds::Auth;
}

impl ExtensionId<ChunkedExtension> for Dispatch {
    type Id = ExtensionIds;
    const ID: ExtensionIds = ExtensionIds::Chunked;
}

impl ExtensionId<HpkeExtension> for Dispatch {
    type Id = ExtensionIds;
    const ID: ExtensionIds = ExtensionIds::Hpke;
}

impl ExtensionId<WrapKeyToFileExtension> for Dispatch {
    type Id = ExtensionIds;
    const ID: ExtensionIds = ExtensionIds::WrapKeyToFile;
}

/// The size of a flash image: Trussed virt's storage size (512 × 128 bytes).
const IMAGE_SIZE: u64 = 512 * 128;

/// Where the card keeps its flash: in memory (a fresh card on every start) or
/// in image files `internal.img` and `external.img` in a directory (the card
/// survives restarts). Checks existing images first: Trussed panics on a
/// wrong size.
pub fn store_config(state_dir: Option<&Path>) -> std::io::Result<StoreConfig<'static>> {
    let Some(dir) = state_dir else {
        return Ok(StoreConfig::ram());
    };
    let internal = dir.join("internal.img");
    let external = dir.join("external.img");
    for image in [&internal, &external] {
        match std::fs::metadata(image) {
            Ok(meta) if meta.len() != IMAGE_SIZE => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{} is {} bytes, not a card image of {IMAGE_SIZE} bytes",
                        image.display(),
                        meta.len()
                    ),
                ));
            }
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
    }
    Ok(StoreConfig {
        internal: StorageConfig::filesystem(internal),
        external: StorageConfig::filesystem(external),
        // Volatile storage is RAM on a real token too.
        volatile: StorageConfig::ram(),
    })
}

/// A Trussed client borrowed by one PIV application instance.
///
/// piv-authenticator keeps its volatile state (PIN verified, management key
/// authenticated) private and never forgets it. A real card forgets it on
/// reset and power-off, so the runner builds a fresh application on the same
/// Trussed client for each power cycle, through this borrow.
pub struct Shared<'a, C>(pub &'a mut C);

impl<C: PollClient> PollClient for Shared<'_, C> {
    fn request<Rq: RequestVariant>(&mut self, req: Rq) -> ClientResult<'_, Rq::Reply, Self> {
        // The inner future only borrows the client; the request is polled
        // through the returned future, which polls the same client.
        let _pending = self.0.request(req)?;
        Ok(FutureResult::new(self))
    }

    fn poll(&mut self) -> Poll<Result<Reply, Error>> {
        self.0.poll()
    }

    fn interrupt(&self) -> Option<&'static trussed_core::InterruptFlag> {
        self.0.interrupt()
    }
}

impl<C: trussed_core::CryptoClient> trussed_core::CryptoClient for Shared<'_, C> {}
impl<C: trussed_core::FilesystemClient> trussed_core::FilesystemClient for Shared<'_, C> {}
impl<C: trussed_core::mechanisms::Tdes> trussed_core::mechanisms::Tdes for Shared<'_, C> {}

impl<E: Extension, C: ExtensionClient<E>> ExtensionClient<E> for Shared<'_, C> {
    fn id() -> u8 {
        C::id()
    }
}
