//! Defense in depth for the policy: a request for an RPC whose handler does
//! not consult the [`Gate`] (one added later, without a policy mapping) is
//! allowed to root and the admin group only, before it reaches a handler.
//! Membership is what the kernel shows (`/proc`), without the user database
//! (this runs before any handler, where nothing may wait): a caller whose
//! groups `/proc` no longer shows counts by its primary group only.

use super::gate::{Gate, kernel_caller_of};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The RPCs whose handlers call the gate (or are open by design: Health).
pub const GATED: &[&str] = &[
    "/tufd.v1.System/Health",
    "/tufd.v1.Keys/ListTokens",
    "/tufd.v1.Keys/GenerateKey",
    "/tufd.v1.Keys/LoadKey",
    "/tufd.v1.Keys/ListKeys",
    "/tufd.v1.Keys/DeleteKey",
    "/tufd.v1.Keys/ProveKey",
    "/tufd.v1.Keys/UnlockToken",
    "/tufd.v1.Trust/AddSigner",
    "/tufd.v1.Trust/RemoveSigner",
    "/tufd.v1.Trust/Sign",
    "/tufd.v1.Trust/Revoke",
    "/tufd.v1.Trust/RotateKey",
    "/tufd.v1.Trust/Inspect",
    "/tufd.v1.Trust/InspectStream",
    "/tufd.v1.Trust/Verify",
    "/tufd.v1.Trust/Repair",
    "/tufd.v1.Trust/Forget",
    "/tufd.v1.Policy/Check",
    "/tufd.v1.Policy/VerifyAudit",
    "/tufd.v1.Tuf/Init",
    "/tufd.v1.Tuf/AddTargets",
    "/tufd.v1.Tuf/RemoveTargets",
    "/tufd.v1.Tuf/Status",
    "/tufd.v1.Tuf/Refresh",
    "/tufd.v1.Tuf/Delegate",
    "/tufd.v1.Tuf/Undelegate",
    "/tufd.v1.Tuf/Rotate",
    "/tufd.v1.Tuf/StageRoot",
    "/tufd.v1.Tuf/SignStaged",
    "/tufd.v1.Tuf/PublishStaged",
];

/// Wraps the router with [`AdminUnlessGated`].
#[derive(Clone)]
pub struct AdminUnlessGatedLayer {
    gate: Arc<Gate>,
}

impl AdminUnlessGatedLayer {
    /// The layer over `gate`'s policy.
    pub fn new(gate: Arc<Gate>) -> Self {
        Self { gate }
    }
}

impl<S> tower::Layer<S> for AdminUnlessGatedLayer {
    type Service = AdminUnlessGated<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AdminUnlessGated {
            inner,
            gate: self.gate.clone(),
        }
    }
}

/// Refuses unmapped RPCs to callers who are not administrators.
#[derive(Clone)]
pub struct AdminUnlessGated<S> {
    inner: S,
    gate: Arc<Gate>,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B, RB> tower::Service<http::Request<B>> for AdminUnlessGated<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>> + Send + 'static,
    S::Future: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = http::Response<RB>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path().to_owned();
        if !GATED.contains(&path.as_str()) {
            let probe = tonic::Request::from_parts(
                tonic::metadata::MetadataMap::new(),
                req.extensions().clone(),
                (),
            );
            let refusal = match kernel_caller_of(&probe) {
                Err(s) => Some(s),
                Ok(c) if self.gate.policy().is_admin(&c).is_none() => {
                    tracing::warn!(caller = %c.describe(), method = %path, "refused: no policy mapping for this method");
                    Some(tonic::Status::permission_denied(format!(
                        "permission denied: {} may not call {path}: it has no policy mapping, so only root and the admin group may",
                        c.describe()
                    )))
                }
                Ok(_) => None,
            };
            if let Some(s) = refusal {
                return Box::pin(async move { Ok(s.into_http()) });
            }
        }
        let fut = self.inner.call(req);
        Box::pin(fut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;
    use tower::{Layer, Service};

    fn call(path: &str) -> http::Response<String> {
        let gate = Arc::new(Gate::new(Policy::default(), None));
        let inner = tower::service_fn(|_req: http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new("handled".to_owned()))
        });
        let mut svc = AdminUnlessGatedLayer::new(gate).layer(inner);
        let req = http::Request::builder().uri(path).body(()).unwrap();
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(svc.call(req))
            .unwrap()
    }

    #[test]
    fn unmapped_methods_never_reach_a_handler_for_an_unknown_caller() {
        // Mapped methods go to their handler, which consults the gate.
        assert_eq!(call("/tufd.v1.Trust/Sign").body(), "handled");
        // An unmapped one is refused before it (here: no peer credentials).
        let refused = call("/tufd.v1.Trust/SomethingNew");
        assert_eq!(refused.body(), "");
        let status = tonic::Status::from_header_map(refused.headers()).unwrap();
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
    }
}
