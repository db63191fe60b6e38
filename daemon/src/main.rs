//! The tufd daemon binary.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// Freed memory is zeroed: request buffers that carried a PIN, a
/// passphrase or a key file leave no copy behind (see `tufd::zalloc`).
#[global_allocator]
static ALLOCATOR: tufd::zalloc::ZeroingAllocator = tufd::zalloc::ZeroingAllocator;

/// tufd keeps TUF and Docker Content Trust signing keys on hardware tokens
/// (PKCS#11, YubiKey) and serves signing intents over a Unix socket.
///
/// Clients (tufctl, CI jobs) never see private key material.
#[derive(Parser)]
#[command(version, about, long_about, after_help = AFTER_HELP)]
struct Args {
    /// Configuration file (TOML).
    #[arg(
        short,
        long,
        env = "TUFD_CONFIG",
        default_value = "/etc/tufd/tufd.toml"
    )]
    config: PathBuf,

    /// Check the configuration and exit.
    #[arg(long)]
    check_config: bool,

    /// Check the hash chain of an audit log (and its rotated predecessors)
    /// against its head file, print what was checked, and exit: 0 intact,
    /// 1 broken (the message says where).
    #[arg(long, value_name = "FILE")]
    audit_verify: Option<PathBuf>,

    /// Remove the rotated audit files of the configured log that hold only
    /// lines before SEQ (keep copies elsewhere first), then exit. The
    /// daemon must be stopped. A record of the pruning is written into the
    /// chain and the head records where the chain starts now, so
    /// verification passes, and still fails for any file removed otherwise.
    #[arg(long, value_name = "SEQ")]
    audit_prune_before: Option<u64>,

    /// Log filter (tracing EnvFilter syntax), e.g. "info" or "tufd=debug".
    #[arg(long, env = "TUFD_LOG", default_value = "info")]
    log: String,

    /// Print a commented example configuration (the one `--check-config`
    /// accepts once its tokens exist) and exit.
    #[arg(long)]
    print_example_config: bool,

    /// Write the manual pages tufd(8) and tufd.toml(5) into DIR and exit
    /// (for packaging; scripts/install runs it).
    #[arg(long, value_name = "DIR", hide = true)]
    man: Option<PathBuf>,
}

/// Exit codes and environment variables, at the end of `tufd --help`.
const AFTER_HELP: &str = "\
Exit codes:
  0  stopped cleanly, or the check passed
  1  failed while running, or the audit log is broken (--audit-verify),
     or cannot be pruned (--audit-prune-before)
  2  the configuration cannot be used (the message says why)

Environment:
  TUFD_CONFIG                  the configuration file (--config)
  TUFD_LOG                     the log filter (--log)
  DOCKER_CONTENT_TRUST_SERVER  the notary server for repositories no [[remote]] matches

The configuration is described in tufd.toml(5).";

/// Writes tufd(8) and tufd.toml(5) into `dir`.
fn write_manual(dir: &std::path::Path) -> std::io::Result<()> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir)?;
    let mut page = Vec::new();
    clap_mangen::Man::new(Args::command())
        .section("8")
        .render(&mut page)?;
    std::fs::write(dir.join("tufd.8"), page)?;
    std::fs::write(dir.join("tufd.toml.5"), tufd::manual::config_page())
}

/// `--audit-prune-before SEQ`: prunes the configured audit log, holding
/// the state directory's lock (so no daemon appends meanwhile).
fn prune_audit(config: &tufd::config::Config, before: u64) -> ExitCode {
    let Some(audit) = config.audit.clone() else {
        eprintln!("tufd: the audit log is off ([audit] enabled = false): nothing to prune");
        return ExitCode::from(2);
    };
    let pruned = tufd::server::lock_state_dir(&config.state_dir)
        .map_err(|e| e.to_string())
        .and_then(|_lock| {
            tufd::audit::AuditLog::open(audit.clone())
                .and_then(|mut log| log.prune(before))
                .map_err(|e| e.to_string())
        });
    match pruned {
        Ok(p) => {
            for f in &p.files {
                println!("removed {}", f.display());
            }
            println!(
                "{}: the chain starts at seq {} now (pruning recorded as seq {})",
                audit.path.display(),
                p.start.seq,
                p.record
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tufd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    tufd::memory::configure();
    if args.print_example_config {
        print!("{}", tufd::manual::EXAMPLE_CONFIG);
        return ExitCode::SUCCESS;
    }
    if let Some(dir) = &args.man {
        return match write_manual(dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tufd: cannot write the manual into {}: {e}", dir.display());
                ExitCode::FAILURE
            }
        };
    }
    tufd::logging::init(&args.log);
    tufd::check::set_umask();

    if let Some(log) = &args.audit_verify {
        return match tufd::audit::verify(log) {
            Ok(r) => {
                println!(
                    "{}: intact: {} line(s), seq {}..{} in {} file(s), head {}",
                    log.display(),
                    r.lines,
                    r.first_seq,
                    r.last_seq,
                    r.files.len(),
                    r.last_hash
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("tufd: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let config = match tufd::config::Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tufd: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(before) = args.audit_prune_before {
        return prune_audit(&config, before);
    }
    if args.check_config {
        let problems = tufd::check::check(&config);
        if !problems.is_empty() {
            for p in &problems {
                eprintln!("tufd: {}: {p}", args.config.display());
            }
            return ExitCode::from(2);
        }
        println!(
            "{}: ok ({} token(s))",
            args.config.display(),
            config.tokens.len()
        );
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tufd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(tufd::server::serve(
        config,
        Some(args.config.clone()),
        tufd::server::shutdown_signal(),
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tufd: {e}");
            ExitCode::FAILURE
        }
    }
}
