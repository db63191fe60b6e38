//! A hostile registry for the mirror's tests: a loopback listener whose
//! every connection is handed, after its request head is read, to a
//! function of the test (a thread each), which answers as badly as it
//! likes: never, slowly, endlessly or with crafted headers. It speaks
//! plain HTTP only: a TLS handshake gets a plain HTTP answer (tufd then
//! falls back to HTTP, as for a loopback registry).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

/// A running hostile upstream (stops with the test process).
pub struct HostileUpstream {
    port: u16,
    arrived: Receiver<String>,
}

impl HostileUpstream {
    /// Listens on a free loopback port; `answer` gets each connection and
    /// its request head (request line and headers).
    pub fn start(answer: impl Fn(TcpStream, &str) + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind loopback");
        let port = listener.local_addr().expect("local addr").port();
        let answer = Arc::new(answer);
        let (tell, arrived): (Sender<String>, _) = channel();
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let answer = answer.clone();
                let tell = tell.clone();
                std::thread::spawn(move || {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match conn.read(&mut byte) {
                            // A TLS handshake (tufd tries HTTPS first):
                            // answered in plain HTTP, so it falls back.
                            Ok(1) if head.is_empty() && !byte[0].is_ascii_uppercase() => {
                                let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
                                return;
                            }
                            Ok(1) => head.push(byte[0]),
                            _ => return,
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let _ = tell.send(head.lines().next().unwrap_or_default().to_owned());
                    answer(conn, &head);
                });
            }
        });
        HostileUpstream { port, arrived }
    }

    /// `127.0.0.1:<port>`, as the mirror's configuration names it.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Waits up to `timeout` for the next request line that arrived.
    pub fn next_request(&self, timeout: std::time::Duration) -> Option<String> {
        self.arrived.recv_timeout(timeout).ok()
    }
}

/// Writes a `200` answer's head with these extra header lines (each
/// ending in `\r\n`) and a `Content-Length`.
pub fn answer_head(conn: &mut TcpStream, headers: &str, length: usize) -> std::io::Result<()> {
    write!(
        conn,
        "HTTP/1.1 200 OK\r\n{headers}Content-Length: {length}\r\nConnection: close\r\n\r\n"
    )
}
