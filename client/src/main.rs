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
mod inspect_stream;
mod lazy;
mod output;
mod tag_list;
mod term;
#[cfg(test)]
mod testing;
mod tuf1;

use clap::{CommandFactory, FromArgMatches};
use std::process::ExitCode;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tufctl: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(tufctl());
    // The process ends here: shutting the runtime down (its connection
    // task, its drivers, their file descriptors) would be work the exit
    // does anyway. Every command's output is written before block_on
    // returns (stdout is flushed by the exit).
    std::mem::forget(runtime);
    code
}

/// The whole command, on a single-threaded runtime.
async fn tufctl() -> ExitCode {
    // Output into a closed pipe (`tufctl key list | head -0`) ends the
    // process quietly, as for other command-line tools, instead of a panic.
    // SAFETY: signal(2) restoring the default action before any thread
    // writes to stdout.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let matches = match cli::Cli::command().try_get_matches_from(&argv) {
        Ok(m) => m,
        Err(e) if e.use_stderr() && output::wants_json(&argv) => {
            // A usage error under --output json is JSON too, same exit code.
            println!("{}", output::usage_error(&e.render().to_string()));
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
        Err(e) => e.exit(),
    };
    let verb = verb_of(&matches);
    let args = match cli::Cli::from_arg_matches(&matches) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    // Completion scripts, man pages and the TUF conformance client print
    // their own formats.
    let own_format = match &args.command {
        cmd::Command::Tuf(t) => tuf1::is_local(t),
        c => c.is_local(),
    };
    let format = if own_format {
        cli::Format::Text
    } else {
        args.output
    };
    let out = output::Output::for_verb(format, verb);
    let result = run(args, &out).await;
    out.finish(&result);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => ExitCode::from(e.exit_code()),
    }
}

/// The verb as typed, without arguments: `key list`, `signer add`.
fn verb_of(matches: &clap::ArgMatches) -> String {
    let mut words = Vec::new();
    let mut m = matches;
    while let Some((name, sub)) = m.subcommand() {
        words.push(name);
        m = sub;
    }
    words.join(" ")
}

async fn run(args: cli::Cli, out: &output::Output) -> Result<(), output::Failure> {
    args.command.precheck(out)?;
    if args.command.is_local() {
        return args.command.run_local();
    }
    if let cmd::Command::Tuf(t) = &args.command
        && tuf1::is_local(t)
    {
        let cmd::Command::Tuf(t) = args.command else {
            unreachable!("matched above")
        };
        return tuf1::run_client(t.0).await;
    }
    let server = args.server.filter(|s| !s.trim().is_empty());
    if let Some(s) = &server
        && tonic::metadata::MetadataValue::<tonic::metadata::Ascii>::try_from(s.as_str()).is_err()
    {
        return Err(output::Failure::input(format!(
            "the notary server \"{s}\" (--server or DOCKER_CONTENT_TRUST_SERVER) is not a URL"
        )));
    }
    let timeout = (!args.command.unbounded() && args.timeout > 0)
        .then(|| std::time::Duration::from_secs(args.timeout));
    let channel = connect::connect(&args.socket, timeout).await?;
    let mut ctx = cmd::Ctx {
        channel,
        term: term::Term::stdio(args.progress),
        out: out.clone(),
        server,
    };
    args.command.run(&mut ctx).await
}
