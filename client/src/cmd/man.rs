//! `tufctl man DIR` (hidden): writes the manual pages, tufctl(1) and one
//! page per subcommand (tufctl-signer-add(1), …), as docker ships them.
//! `scripts/install` runs it.

use crate::cli::Cli;
use crate::output::Failure;
use clap::{Args, CommandFactory};
use std::path::{Path, PathBuf};

/// `man` arguments.
#[derive(Args)]
pub struct ManArgs {
    /// Directory to write the pages into (created if missing).
    pub dir: PathBuf,
}

impl ManArgs {
    /// Writes every page.
    pub fn run(self) -> Result<(), Failure> {
        std::fs::create_dir_all(&self.dir).map_err(|e| write_failure(&self.dir, e))?;
        crate::lazy::eager();
        let mut cmd = Cli::command();
        cmd.build();
        write_pages(&cmd, "tufctl", &self.dir)
    }
}

fn write_failure(path: &Path, e: std::io::Error) -> Failure {
    Failure::input(format!("cannot write {}: {e}", path.display()))
}

/// Writes `cmd`'s page as `name`.1, then its subcommands' pages.
fn write_pages(cmd: &clap::Command, name: &str, dir: &Path) -> Result<(), Failure> {
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .title(name.to_uppercase())
        .render(&mut page)
        .map_err(|e| write_failure(dir, e))?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, page).map_err(|e| write_failure(&path, e))?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(())
}
