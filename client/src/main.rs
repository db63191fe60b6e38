//! tufctl: the command-line client of the tufd signing daemon.
//!
//! It sends intents over the daemon's Unix socket and prints the answer.
//! It never handles private keys beyond reading a key file to hand it to the
//! daemon for import.

mod cli;
mod connect;
mod docker;
mod keys;
mod output;
mod trust;
mod tuf1;

use clap::Parser;
use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
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
        let channel = connect::connect(&args.socket).await?;
        return tuf1::run(t, channel, &out).await;
    }
    let channel = connect::connect(&args.socket).await?;
    match args.command {
        cli::Command::Status => keys::status(channel, &out).await,
        cli::Command::Token {
            command: cli::TokenCommand::List,
        } => keys::token_list(channel, &out).await,
        cli::Command::Token {
            command:
                cli::TokenCommand::Unlock {
                    name,
                    pin_file,
                    confirm_last_try,
                },
        } => keys::token_unlock(channel, &out, name, pin_file, confirm_last_try).await,
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
        cli::Command::Tuf(_) => unreachable!("handled above"),
    }
}
