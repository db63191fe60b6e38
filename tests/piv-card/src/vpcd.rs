//! vpcd's TCP protocol, from the card's side.
//!
//! pcscd's vpcd driver listens; the card connects. Every message in either
//! direction is a 2-byte big-endian length and that many bytes. A 1-byte
//! message from vpcd is a control message (power off, power on, reset, get
//! ATR); anything longer is a command APDU. The card answers "get ATR" with
//! its ATR and every APDU with a response APDU, and nothing else.

use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Control message: power the card off.
pub const CTRL_OFF: u8 = 0x00;
/// Control message: power the card on.
pub const CTRL_ON: u8 = 0x01;
/// Control message: reset the card.
pub const CTRL_RESET: u8 = 0x02;
/// Control message: send the ATR.
pub const CTRL_ATR: u8 = 0x04;

/// How often a blocked read looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(200);

/// What a read from vpcd produced.
#[derive(Debug)]
pub enum Incoming {
    /// A complete message (control byte or command APDU).
    Message(Vec<u8>),
    /// vpcd closed the connection (pcscd stopped).
    Closed,
    /// The stop flag was raised (SIGTERM, SIGINT) while waiting.
    Stopped,
}

/// A connection to vpcd.
pub struct Vpcd {
    stream: TcpStream,
}

impl Vpcd {
    /// Connects to vpcd at `host:port`, retrying until `timeout` passes (pcscd
    /// may still be starting) or `stop` is raised. `Ok(None)` means stopped.
    pub fn connect(
        host: &str,
        port: u16,
        timeout: Duration,
        stop: &AtomicBool,
    ) -> io::Result<Option<Self>> {
        let deadline = Instant::now() + timeout;
        loop {
            match TcpStream::connect((host, port)) {
                Ok(stream) => {
                    // vpcd writes the length prefix and the payload in two
                    // writes; with Nagle on one side and delayed ACKs on the
                    // other every APDU would stall for 40 ms or more.
                    stream.set_nodelay(true)?;
                    stream.set_read_timeout(Some(STOP_POLL))?;
                    return Ok(Some(Self { stream }));
                }
                Err(err) if Instant::now() >= deadline => {
                    return Err(io::Error::new(
                        err.kind(),
                        format!("cannot connect to vpcd at {host}:{port}: {err}"),
                    ));
                }
                Err(_) => {
                    if stop.load(Ordering::SeqCst) {
                        return Ok(None);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }

    /// Reads the next message from vpcd.
    pub fn receive(&mut self, stop: &AtomicBool) -> io::Result<Incoming> {
        let mut header = [0u8; 2];
        match self.read_full(&mut header, stop)? {
            Fill::Done => {}
            Fill::Closed => return Ok(Incoming::Closed),
            Fill::Stopped => return Ok(Incoming::Stopped),
        }
        let mut message = vec![0u8; usize::from(u16::from_be_bytes(header))];
        match self.read_full(&mut message, stop)? {
            Fill::Done => Ok(Incoming::Message(message)),
            Fill::Closed => Err(io::Error::new(
                ErrorKind::UnexpectedEof,
                "vpcd closed the connection in the middle of a message",
            )),
            Fill::Stopped => Ok(Incoming::Stopped),
        }
    }

    /// Sends one message (an ATR or a response APDU) to vpcd.
    pub fn send(&mut self, payload: &[u8]) -> io::Result<()> {
        let len = u16::try_from(payload.len())
            .map_err(|_| io::Error::new(ErrorKind::InvalidInput, "message too long for vpcd"))?;
        let mut frame = Vec::with_capacity(payload.len() + 2);
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(payload);
        // One write: the length and the payload travel in one segment.
        self.stream.write_all(&frame)
    }

    /// Fills `buf` from the socket. Returns `Closed` on end of stream before
    /// the first byte, and `Stopped` when `stop` is raised while waiting.
    fn read_full(&mut self, buf: &mut [u8], stop: &AtomicBool) -> io::Result<Fill> {
        let mut filled = 0;
        while filled < buf.len() {
            self.quickack();
            match self.stream.read(&mut buf[filled..]) {
                Ok(0) if filled == 0 => return Ok(Fill::Closed),
                Ok(0) => {
                    return Err(io::Error::new(
                        ErrorKind::UnexpectedEof,
                        "vpcd closed the connection in the middle of a message",
                    ))
                }
                Ok(n) => filled += n,
                Err(err)
                    if matches!(
                        err.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) =>
                {
                    if stop.load(Ordering::SeqCst) {
                        return Ok(Fill::Stopped);
                    }
                }
                Err(err) if is_disconnect(&err) && filled == 0 => return Ok(Fill::Closed),
                Err(err) => return Err(err),
            }
        }
        Ok(Fill::Done)
    }

    /// Re-arms TCP_QUICKACK, which the kernel clears on its own: ACK vpcd's
    /// length prefix at once instead of delaying it.
    fn quickack(&self) {
        let one: libc::c_int = 1;
        // SAFETY: a valid socket descriptor and a c_int option of the size
        // passed; a failure only costs latency, so the result is ignored.
        unsafe {
            libc::setsockopt(
                self.stream.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

/// The outcome of [`Vpcd::read_full`].
enum Fill {
    Done,
    Closed,
    Stopped,
}

/// Whether `err` means the peer went away.
pub fn is_disconnect(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
    )
}
