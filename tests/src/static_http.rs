//! A small static HTTP server for TUF client tests: serves files under a
//! directory that the test can swap between phases, and can answer one
//! path endlessly or slowly (hostile repositories), or fail its first
//! request (a notary server with a transient error). It keeps a log of the
//! requests it was sent.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the server answers a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Files from the directory (404 when missing).
    Files,
    /// Requests for paths ending in this suffix get an endless body.
    Endless(String),
    /// Requests for paths ending in this suffix get their headers, then
    /// nothing for a minute.
    Slow(String),
    /// The first request gets this status (e.g. 503) and an empty body;
    /// later ones are answered as [`Mode::Files`].
    FailFirst(u16),
}

struct State {
    root: PathBuf,
    mode: Mode,
    /// Every request line's method and path, in arrival order.
    requests: Vec<String>,
}

/// A running server on a loopback port (stops with the test process).
pub struct StaticHttp {
    state: Arc<Mutex<State>>,
    port: u16,
}

impl StaticHttp {
    /// Serves `root` on a free loopback port.
    pub fn start(root: PathBuf) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind loopback");
        let port = listener.local_addr().expect("local addr").port();
        let state = Arc::new(Mutex::new(State {
            root,
            mode: Mode::Files,
            requests: Vec::new(),
        }));
        let s = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &s);
                });
            }
        });
        Self { state, port }
    }

    /// The base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Serves another directory from now on.
    pub fn set_root(&self, root: PathBuf) {
        self.state.lock().expect("state").root = root;
    }

    /// Changes how paths are answered.
    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().expect("state").mode = mode;
    }

    /// The requests received so far, as `METHOD /path`.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().expect("state").requests.clone()
    }
}

fn serve(conn: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let method = line.split_whitespace().next().unwrap_or("").to_owned();
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
    }
    let (root, mode, first) = {
        let mut s = state.lock().expect("state");
        s.requests.push(format!("{method} {path}"));
        (s.root.clone(), s.mode.clone(), s.requests.len() == 1)
    };
    let mut conn = conn;
    match mode {
        Mode::FailFirst(status) if first => write!(
            conn,
            "HTTP/1.1 {status} Failing\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
        Mode::Endless(suffix) if path.ends_with(&suffix) => {
            conn.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")?;
            let chunk = vec![b' '; 64 * 1024];
            loop {
                conn.write_all(&chunk)?;
            }
        }
        Mode::Slow(suffix) if path.ends_with(&suffix) => {
            conn.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{",
            )?;
            std::thread::sleep(Duration::from_secs(60));
            Ok(())
        }
        _ => {
            let rel = percent_decode(path.trim_start_matches('/'));
            let file = root.join(rel);
            match std::fs::read(&file) {
                Ok(body) if !path.contains("..") => {
                    write!(
                        conn,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )?;
                    conn.write_all(&body)
                }
                _ => conn.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                ),
            }
        }
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
