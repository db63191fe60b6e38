//! tufctl: the command-line client of the tufd signing daemon.
//!
//! It sends intents over the daemon's Unix socket and prints the answer.
//! It never handles private keys beyond reading a key file to hand it to the
//! daemon for import.

mod cli;
mod connect;
mod docker;
mod inspect_stream;
mod keys;
mod output;
mod policy;
mod tag_list;
mod trust;
mod tuf1;
mod verify;

use clap::Parser;
use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // Output into a closed pipe (`tufctl key list | head -0`) ends the
    // process quietly, as for other command-line tools, instead of a panic.
    // SAFETY: signal(2) restoring the default action before any thread
    // writes to stdout.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let args = cli::Cli::parse();
    let out = output::Output::new(args.output);
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            out.error(&e);
            ExitCode::from(e.exit_code())
        }
    }
}

async fn run(args: cli::Cli) -> Result<(), output::Failure> {
    let out = output::Output::new(args.output);
    trust::precheck(&args.command)?;
    if let cli::Command::Tuf(t) = &args.command {
        tuf1::precheck(t)?;
    }
    if let cli::Command::Tuf(t) = args.command {
        if tuf1::is_local(&t) {
            return tuf1::run_client(t).await;
        }
        // Signing may wait for a touch and a batch may be large: only
        // status and refresh get --timeout.
        let timeout = (tuf1::is_quick(&t) && args.timeout > 0)
            .then(|| std::time::Duration::from_secs(args.timeout));
        let channel = connect::connect(&args.socket, timeout).await?;
        return tuf1::run(t, channel, &out).await;
    }
    // Commands that may wait for a touch (signing, a YubiKey key's
    // certificate) or run a long batch have no deadline; the others get
    // --timeout.
    let unbounded = matches!(
        args.command,
        cli::Command::Sign(_) | cli::Command::Revoke(_) | cli::Command::Signer { .. }
    ) || matches!(
        &args.command,
        cli::Command::Key {
            command: cli::KeyCommand::Rotate { .. }
                | cli::KeyCommand::Generate { .. }
                | cli::KeyCommand::Load { .. }
                | cli::KeyCommand::Test { .. }
        }
    );
    let timeout =
        (!unbounded && args.timeout > 0).then(|| std::time::Duration::from_secs(args.timeout));
    let channel = connect::connect(&args.socket, timeout).await?;
    match args.command {
        cli::Command::Status => keys::status(channel, &out).await,
        cli::Command::Token {
            command: cli::TokenCommand::List,
        } => keys::token_list(channel, &out).await,
        cli::Command::Token {
            command: cli::TokenCommand::Unlock { name, pin_file },
        } => keys::token_unlock(channel, &out, name, pin_file).await,
        cli::Command::Key { command } => keys::run(command, channel, &out).await,
        cli::Command::Signer { command } => {
            trust::signer(command, channel, &mut trust::Term::stdio(), &out).await
        }
        cli::Command::Sign(args) => {
            trust::sign(args, channel, &mut trust::Term::stdio(), &out).await
        }
        cli::Command::Revoke(args) => {
            trust::revoke(args, channel, &mut trust::Term::stdio(), &out).await
        }
        cli::Command::Inspect(args) => {
            trust::inspect(args, channel, &mut trust::Term::stdio(), &out).await
        }
        cli::Command::Verify(args) => args.run(channel, &out).await,
        cli::Command::Policy { command } => policy::policy(command, channel, &out).await,
        cli::Command::Audit { command } => policy::audit(command, channel, &out).await,
        cli::Command::Repair { repo } => {
            trust::repair(repo, channel, &mut trust::Term::stdio(), &out).await
        }
        cli::Command::Trust {
            command: cli::TrustCommand::Forget { repo },
        } => trust::forget(repo, channel, &out).await,
        cli::Command::Tuf(_) => unreachable!("handled above"),
    }
}
