//! tufctl: the command-line client of the tufd signing daemon.
//!
//! It sends intents over the daemon's Unix socket and prints the answer.
//! It never handles private keys beyond reading a key file to hand it to the
//! daemon for import. Each verb is a file under `cmd/`.

mod cli;
mod cmd;
mod connect;
mod events;
mod input;
mod output;
mod term;
#[cfg(test)]
mod testing;
mod tuf1;

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
    args.command.precheck()?;
    if let cmd::Command::Tuf(t) = &args.command
        && tuf1::is_local(t)
    {
        let cmd::Command::Tuf(t) = args.command else {
            unreachable!("matched above")
        };
        return tuf1::run_client(t).await;
    }
    let timeout = (!args.command.unbounded() && args.timeout > 0)
        .then(|| std::time::Duration::from_secs(args.timeout));
    let channel = connect::connect(&args.socket, timeout).await?;
    let mut ctx = cmd::Ctx {
        channel,
        term: term::Term::stdio(),
        out,
    };
    args.command.run(&mut ctx).await
}
