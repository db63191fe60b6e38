//! Connecting to the daemon's Unix socket, and the request metadata sent
//! with trust requests (the caller's choice of notary server).

use crate::output::Failure;
use hyper_util::rt::TokioIo;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::net::UnixStream;
use tonic::codegen::InterceptedService;
use tonic::transport::{Channel, Endpoint, Uri};
use tufd_proto::v1::trust_client::TrustClient;

/// How often a connection with a request in flight pings the daemon.
const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(10);

/// Opens a gRPC channel over the Unix socket at `path`; each request on it
/// fails with DEADLINE_EXCEEDED after `timeout` (`None`: no limit).
///
/// The socket is connected once, here, so a failure gets a message that
/// says what to do; that same connection carries the requests (the daemon
/// accepts one connection per call, not a probe and then the real one).
/// Should the channel ever reconnect, it dials the socket again.
pub async fn connect(
    path: &Path,
    timeout: Option<std::time::Duration>,
) -> Result<Channel, Failure> {
    let first = UnixStream::connect(path).await.map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                "is tufd running? (choose the socket with --socket or TUFD_SOCKET)"
            }
            std::io::ErrorKind::PermissionDenied => {
                "your user needs to be in the group that owns the socket"
            }
            _ => "check --socket / TUFD_SOCKET",
        };
        Failure::connect(format!(
            "cannot connect to tufd at {}: {e}; {hint}",
            path.display()
        ))
    })?;
    let first = Arc::new(Mutex::new(Some(first)));
    let path = path.to_owned();
    // The URI is required by the API but unused: the connector dials the socket.
    // While a request is out, a ping every KEEPALIVE keeps the connection
    // from looking idle to the daemon (it closes connections silent for
    // 120 s): a sign queued behind long transactions, or a large target
    // file being hashed, is not cut off.
    let mut endpoint = Endpoint::from_static("http://tufd.local")
        .connect_timeout(std::time::Duration::from_secs(10))
        .http2_keep_alive_interval(KEEPALIVE)
        .keep_alive_timeout(std::time::Duration::from_secs(60));
    if let Some(t) = timeout {
        endpoint = endpoint.timeout(t);
    }
    endpoint
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            let ready = first.lock().map(|mut s| s.take()).unwrap_or(None);
            async move {
                let stream = match ready {
                    Some(s) => s,
                    None => UnixStream::connect(path).await?,
                };
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
        .map_err(|e| Failure::connect(format!("cannot connect to tufd: {e}")))
}

/// Adds the caller's choice of notary server to a request's metadata.
#[derive(Clone)]
pub struct ServerChoice(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl ServerChoice {
    /// The choice `server` (none: the daemon's own routing, unchecked).
    pub fn new(server: Option<&str>) -> Self {
        ServerChoice(server.and_then(|s| s.parse().ok()))
    }
}

impl tonic::service::Interceptor for ServerChoice {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert(SERVER_HEADER, v.clone());
        }
        Ok(req)
    }
}

/// The metadata key the daemon reads the choice from.
const SERVER_HEADER: &str = "tufd-notary-server";

/// A Trust client that sends the caller's server choice.
pub type Trust = TrustClient<InterceptedService<Channel, ServerChoice>>;

#[cfg(test)]
mod tests {
    use crate::testing::{Fake, result};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio_stream::StreamExt;
    use tokio_stream::wrappers::UnixListenerStream;
    use tufd_proto::v1::{self, trust_client::TrustClient, trust_server::TrustServer};

    /// The daemon sees one connection per tufctl call: the one opened to
    /// check the socket also carries the requests.
    #[tokio::test]
    async fn one_connection_carries_the_requests() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tufd.sock");
        let listener = tokio::net::UnixListener::bind(&path).expect("bind");
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        let incoming = UnixListenerStream::new(listener).map(move |s| {
            counter.fetch_add(1, Ordering::SeqCst);
            s
        });
        let fake = Fake {
            script: vec![result()],
            ..Default::default()
        };
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TrustServer::new(fake))
                .serve_with_incoming(incoming),
        );
        let channel = super::connect(&path, None).await.expect("connect");
        let mut client = TrustClient::new(channel);
        for _ in 0..2 {
            let mut events = client
                .sign(v1::SignRequest::default())
                .await
                .expect("sign")
                .into_inner();
            while events.message().await.expect("event").is_some() {}
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    /// No daemon: the message says what to do.
    #[tokio::test]
    async fn missing_socket_says_what_to_do() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tufd.sock");
        let err = super::connect(&path, None).await.expect_err("no daemon");
        assert_eq!(err.exit_code(), 3);
        assert!(err.message.contains("is tufd running?"), "{}", err.message);
    }
}
