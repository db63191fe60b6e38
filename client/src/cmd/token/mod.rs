//! `tufctl token list|unlock`: the daemon's tokens.

mod list;
mod unlock;

use crate::cmd::Ctx;
use crate::output::{self, Failure};
use clap::Subcommand;
use tufd_proto::v1;

#[derive(Subcommand)]
pub enum TokenCommand {
    /// List tokens: state, label, serial and how many tufd keys each holds.
    List,
    /// Give a token its PIN (`pin = "prompt"` tokens are locked until then).
    ///
    /// The daemon verifies the PIN on the device and keeps it for the
    /// token's `pin_cache_seconds` (default 15 minutes). The PIN comes from
    /// --pin-file, else the TUFCTL_PIN environment variable, else a prompt.
    /// A wrong PIN reports the tries left. With few tries left the daemon
    /// presents a new PIN only if its configuration allows it
    /// (`allow_last_pin_try`); a token already unlocked is never asked to
    /// check another PIN.
    Unlock(unlock::UnlockArgs),
}

impl TokenCommand {
    /// Runs the subcommand.
    pub async fn run(self, ctx: &mut Ctx) -> Result<(), Failure> {
        match self {
            TokenCommand::List => list::run(ctx).await,
            TokenCommand::Unlock(a) => a.run(ctx).await,
        }
    }
}

/// Prints tokens as a table, then each token's detail.
pub fn print_tokens(tokens: &[v1::TokenInfo]) {
    output::table(
        output::TOKEN_HEADER,
        &tokens.iter().map(output::token_row).collect::<Vec<_>>(),
    );
    for t in tokens.iter().filter(|t| !t.detail.is_empty()) {
        println!("\n{}: {}", t.name, t.detail);
    }
}
