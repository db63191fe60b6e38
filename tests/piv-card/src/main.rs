//! `piv-card`: a virtual PIV card standing in for a YubiKey in tufd's tests.
//!
//! Runs Nitrokey's piv-authenticator on Trussed's software platform and
//! serves it to pcscd through vsmartcard's vpcd driver. The card answers as a
//! YubiKey 5.4.3 would, as far as the `yubikey` crate, libykpiv (ykcs11,
//! yubico-piv-tool) and OpenSC need. FOR TESTS ONLY: Trussed's software
//! platform seeds its random generator with a constant, so every fresh card
//! generates the same keys.

mod card;
mod trussed_platform;
mod vpcd;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use card::Card;
use trussed_platform::{Dispatch, Shared, BACKENDS};
use vpcd::{Incoming, Vpcd};

const USAGE: &str = "\
usage: piv-card [options]

Serves a virtual PIV card (piv-authenticator on Trussed) to pcscd's vpcd driver.

options:
  --host HOST             vpcd's address (default 127.0.0.1)
  --port PORT             vpcd's port (default 35963, vpcd's slot 0)
  --state-dir DIR         keep the card's flash in DIR (created if missing)
  --in-memory             keep the card's flash in memory (the default)
  --connect-timeout SECS  how long to retry connecting to vpcd (default 30)
  --ready-file PATH       create PATH once pcscd has powered the card and read
                          its ATR (the card is then present for clients)
  -v, --verbose           log every APDU and control message to stderr
  -h, --help              show this help

Exits 0 when vpcd closes the connection or on SIGTERM/SIGINT.";

/// Raised by the SIGTERM/SIGINT handler.
static STOP: AtomicBool = AtomicBool::new(false);

/// Command-line options.
struct Args {
    host: String,
    port: u16,
    state_dir: Option<PathBuf>,
    connect_timeout: Duration,
    ready_file: Option<PathBuf>,
    verbose: bool,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        host: "127.0.0.1".to_owned(),
        port: 35963,
        state_dir: None,
        connect_timeout: Duration::from_secs(30),
        ready_file: None,
        verbose: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--host" => args.host = value("--host")?,
            "--port" => {
                args.port = value("--port")?
                    .parse()
                    .map_err(|err| format!("--port: {err}"))?
            }
            "--state-dir" => args.state_dir = Some(PathBuf::from(value("--state-dir")?)),
            "--in-memory" => args.state_dir = None,
            "--connect-timeout" => {
                let secs: f64 = value("--connect-timeout")?
                    .parse()
                    .map_err(|err| format!("--connect-timeout: {err}"))?;
                args.connect_timeout = Duration::try_from_secs_f64(secs)
                    .map_err(|err| format!("--connect-timeout: {err}"))?;
            }
            "--ready-file" => args.ready_file = Some(PathBuf::from(value("--ready-file")?)),
            "-v" | "--verbose" => args.verbose = true,
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(args))
}

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Raises [`STOP`] on SIGTERM and SIGINT. No `SA_RESTART`: a blocked read
/// returns early and the loop notices.
fn install_signal_handlers() -> std::io::Result<()> {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: a zeroed sigaction is valid; the handler only stores to an
        // atomic, which is async-signal-safe.
        let rc = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Why the card stopped serving.
enum Exit {
    /// vpcd went away (pcscd stopped).
    VpcdGone,
    /// SIGTERM or SIGINT.
    Signal,
}

/// Serves the card on `vpcd` until vpcd goes away or a signal arrives.
///
/// Each power-on or reset starts a new [`Card`] (a fresh application on the
/// same Trussed client and storage), which forgets PIN and management key
/// authentication as a real card does.
fn serve<C: piv_authenticator::Client>(
    vpcd: &mut Vpcd,
    client: &mut C,
    args: &Args,
) -> std::io::Result<Exit> {
    let verbose = args.verbose;
    // Whether the card was powered on, and whether the ready file is written.
    let mut powered = false;
    let mut ready = args.ready_file.is_none();
    loop {
        let mut card = Card::new(card::new_app(Shared(&mut *client)));
        loop {
            let message = match vpcd.receive(&STOP) {
                Ok(Incoming::Message(message)) => message,
                Ok(Incoming::Closed) => return Ok(Exit::VpcdGone),
                Ok(Incoming::Stopped) => return Ok(Exit::Signal),
                Err(err) if vpcd::is_disconnect(&err) => return Ok(Exit::VpcdGone),
                Err(err) => return Err(err),
            };
            let reply = match message.as_slice() {
                [vpcd::CTRL_ATR] => Some(card::ATR.to_vec()),
                [vpcd::CTRL_ON] => {
                    if verbose {
                        eprintln!("piv-card: control {:#04x}", vpcd::CTRL_ON);
                    }
                    powered = true;
                    None
                }
                [control] => {
                    if verbose {
                        eprintln!("piv-card: control {control:#04x}");
                    }
                    match *control {
                        // A new power cycle: a fresh card.
                        vpcd::CTRL_OFF | vpcd::CTRL_RESET => break,
                        other => {
                            eprintln!("piv-card: ignoring unknown control message {other:#04x}");
                            None
                        }
                    }
                }
                apdu => {
                    let response = card.apdu(apdu);
                    if verbose {
                        eprintln!("piv-card: > {}", hex(apdu));
                        eprintln!("piv-card: < {}", hex(&response));
                    }
                    Some(response)
                }
            };
            if let Some(reply) = reply {
                match vpcd.send(&reply) {
                    Ok(()) => {}
                    Err(err) if vpcd::is_disconnect(&err) => return Ok(Exit::VpcdGone),
                    Err(err) => return Err(err),
                }
                // pcscd powers a new card on and reads its ATR before it
                // reports the card present.
                if !ready && powered && message.as_slice() == [vpcd::CTRL_ATR] {
                    if let Some(path) = &args.ready_file {
                        std::fs::write(path, b"ready\n")?;
                    }
                    ready = true;
                }
            }
        }
    }
}

/// Creates the state directory and locks it (`.lock`, flock) so that two
/// cards never share one flash.
fn lock_state_dir(dir: &Path) -> std::io::Result<File> {
    std::fs::create_dir_all(dir)
        .map_err(|err| std::io::Error::new(err.kind(), format!("{}: {err}", dir.display())))?;
    let lock = File::create(dir.join(".lock"))?;
    // SAFETY: flock on a descriptor we own; released when it closes.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::WouldBlock,
            format!("{} is in use by another card", dir.display()),
        ));
    }
    Ok(lock)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("piv-card: {err}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Err(err) = install_signal_handlers() {
        eprintln!("piv-card: cannot install signal handlers: {err}");
        return ExitCode::FAILURE;
    }
    // Held until exit: one card per state directory.
    let _state_lock = match args.state_dir.as_deref().map(lock_state_dir).transpose() {
        Ok(lock) => lock,
        Err(err) => {
            eprintln!("piv-card: {err}");
            return ExitCode::FAILURE;
        }
    };
    let store = match trussed_platform::store_config(args.state_dir.as_deref()) {
        Ok(store) => store,
        Err(err) => {
            eprintln!("piv-card: {err}");
            return ExitCode::FAILURE;
        }
    };

    let mut vpcd = match Vpcd::connect(&args.host, args.port, args.connect_timeout, &STOP) {
        Ok(Some(vpcd)) => vpcd,
        Ok(None) => return ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("piv-card: {err}");
            return ExitCode::FAILURE;
        }
    };
    if args.verbose {
        eprintln!("piv-card: connected to vpcd at {}:{}", args.host, args.port);
    }

    let result = trussed::virt::with_platform(store, |platform| {
        platform.run_client_with_backends("piv", Dispatch::default(), BACKENDS, |mut client| {
            serve(&mut vpcd, &mut client, &args)
        })
    });
    match result {
        Ok(Exit::VpcdGone) => {
            if args.verbose {
                eprintln!("piv-card: vpcd closed the connection");
            }
            ExitCode::SUCCESS
        }
        Ok(Exit::Signal) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("piv-card: vpcd connection failed: {err}");
            ExitCode::FAILURE
        }
    }
}
