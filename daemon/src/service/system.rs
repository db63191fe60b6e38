//! `tufd.v1.System`: health and version.

use crate::keyring::Keyring;
use std::sync::Arc;
use std::time::Instant;
use tonic::{Request, Response, Status};
use tufd_proto::v1::{self, system_server::System};

/// Answers health checks.
pub struct SystemService {
    keyring: Arc<Keyring>,
    started: Instant,
}

impl SystemService {
    pub fn new(keyring: Arc<Keyring>) -> Self {
        Self {
            keyring,
            started: Instant::now(),
        }
    }
}

#[tonic::async_trait]
impl System for SystemService {
    async fn health(
        &self,
        _req: Request<v1::HealthRequest>,
    ) -> Result<Response<v1::HealthResponse>, Status> {
        let tokens = self.keyring.tokens().await;
        Ok(Response::new(v1::HealthResponse {
            version: env!("CARGO_PKG_VERSION").into(),
            tokens: tokens.into_iter().map(super::token_info).collect(),
            uptime_seconds: self.started.elapsed().as_secs(),
        }))
    }
}
