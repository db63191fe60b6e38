//! `tufctl completion bash|zsh|fish|elvish|powershell`: shell completions
//! (clap_complete), as `docker completion` prints them.

use crate::cli::Cli;
use crate::output::Failure;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

/// `completion` arguments.
#[derive(Args)]
pub struct CompletionArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub const ABOUT: &str = "\
Print the completion script for a shell.

  bash: source <(tufctl completion bash)   (or save it as
        /usr/share/bash-completion/completions/tufctl)
  zsh:  tufctl completion zsh > \"${fpath[1]}/_tufctl\"
  fish: tufctl completion fish > ~/.config/fish/completions/tufctl.fish

scripts/install installs the bash, zsh and fish scripts.";

impl CompletionArgs {
    /// Writes the script to stdout.
    pub fn run(self) -> Result<(), Failure> {
        crate::lazy::eager();
        clap_complete::generate(
            self.shell,
            &mut Cli::command(),
            "tufctl",
            &mut std::io::stdout(),
        );
        Ok(())
    }
}
