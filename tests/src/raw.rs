//! A raw gRPC client for the daemon's socket: sends bytes tufctl would
//! never send (oversized or malformed messages) and returns the status.

use std::path::Path;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint, Uri};

/// Passes message bytes through unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

/// See [`RawCodec`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCoder;

impl Encoder for RawCoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl Decoder for RawCoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let n = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, n).to_vec()))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCoder;
    type Decoder = RawCoder;

    fn encoder(&mut self) -> RawCoder {
        RawCoder
    }

    fn decoder(&mut self) -> RawCoder {
        RawCoder
    }
}

/// Connects to the daemon's socket.
pub async fn connect(socket: &Path) -> Channel {
    let path = socket.to_owned();
    Endpoint::from_static("http://tufd.local")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(path).await?,
                ))
            }
        }))
        .await
        .expect("connect to tufd")
}

/// Sends `message` (already encoded, or not protobuf at all) to `method`
/// (as `/tufd.v1.Keys/LoadKey`) and returns the answer's bytes or status.
pub fn unary(socket: &Path, method: &str, message: Vec<u8>) -> Result<Vec<u8>, tonic::Status> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let path = PathAndQuery::try_from(method.to_owned()).expect("method path");
    rt.block_on(async move {
        let mut grpc = tonic::client::Grpc::new(connect(socket).await);
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        grpc.unary(tonic::Request::new(message), path, RawCodec)
            .await
            .map(tonic::Response::into_inner)
    })
}

/// A request whose message is announced but only partly sent, held open
/// (as a hostile client would leave it) until dropped.
pub struct HalfSent {
    _send: h2::SendStream<bytes::Bytes>,
    response: Option<h2::client::ResponseFuture>,
    refusal: Option<tonic::Status>,
    _connection: tokio::task::JoinHandle<()>,
}

/// Opens a connection of its own and sends to `method` a message header
/// announcing `announced` bytes, then `sent` bytes of it, and nothing more.
pub async fn half_sent(socket: &Path, method: &str, announced: u32, sent: usize) -> HalfSent {
    let (client, connection) = open(socket).await;
    let mut client = client.ready().await.expect("h2 ready");
    let (response, mut send) = client
        .send_request(grpc_request(method), false)
        .expect("send");
    send.send_data(frame(announced, sent), false)
        .expect("send data");
    HalfSent {
        _send: send,
        response: Some(response),
        refusal: None,
        _connection: connection,
    }
}

/// An HTTP/2 connection of its own to the daemon's socket, driven by a task.
async fn open(
    socket: &Path,
) -> (
    h2::client::SendRequest<bytes::Bytes>,
    tokio::task::JoinHandle<()>,
) {
    let io = tokio::net::UnixStream::connect(socket)
        .await
        .expect("connect to tufd");
    let (client, connection) = h2::client::handshake(io).await.expect("h2 handshake");
    let connection = tokio::spawn(async move {
        let _ = connection.await;
    });
    (client, connection)
}

/// The headers of a gRPC call to `method`.
fn grpc_request(method: &str) -> http::Request<()> {
    http::Request::post(format!("http://tufd.local{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("request")
}

/// A gRPC message header announcing `announced` bytes, then `sent` of them.
fn frame(announced: u32, sent: usize) -> bytes::Bytes {
    let mut frame = Vec::with_capacity(5 + sent);
    frame.push(0);
    frame.extend_from_slice(&announced.to_be_bytes());
    frame.resize(5 + sent, 0x0a);
    bytes::Bytes::from(frame)
}

impl HalfSent {
    /// The status the daemon answered with, if it answered within `wait`
    /// (a held request is not answered).
    pub async fn refusal(&mut self, wait: std::time::Duration) -> Option<&tonic::Status> {
        if let Some(response) = self.response.as_mut()
            && let Ok(answer) = tokio::time::timeout(wait, response).await
        {
            self.response = None;
            self.refusal = Some(match answer {
                Ok(r) => tonic::Status::from_header_map(r.headers()).unwrap_or_else(|| {
                    tonic::Status::unknown(format!("answer without a status: {r:?}"))
                }),
                Err(e) => tonic::Status::unknown(format!("stream error: {e}")),
            });
        }
        self.refusal.as_ref()
    }
}

/// One connection crowded past the daemon's per-connection request limit
/// (as a hostile client would leave it, until dropped): `held` requests
/// announced and left half-sent, each holding one of the connection's
/// request slots, then `waiting` more that each send `each` bytes of a
/// large message, which the daemon does not read until a slot frees.
pub struct Crowded {
    _sends: Vec<h2::SendStream<bytes::Bytes>>,
    _responses: Vec<h2::client::ResponseFuture>,
    _connection: tokio::task::JoinHandle<()>,
}

/// Opens a [`Crowded`] connection to `method`.
pub async fn crowded(
    socket: &Path,
    method: &str,
    held: usize,
    waiting: usize,
    each: usize,
) -> Crowded {
    let (mut client, connection) = open(socket).await;
    let (mut sends, mut responses) = (Vec::new(), Vec::new());
    for i in 0..held + waiting {
        client = client.ready().await.expect("h2 ready");
        let (response, mut send) = client
            .send_request(grpc_request(method), false)
            .expect("send");
        let sent = if i < held { 1 } else { each };
        send.send_data(frame(30 << 20, sent), false)
            .expect("send data");
        sends.push(send);
        responses.push(response);
        if i + 1 == held {
            // The held ones reach their handlers (and take the slots) first.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    Crowded {
        _sends: sends,
        _responses: responses,
        _connection: connection,
    }
}
