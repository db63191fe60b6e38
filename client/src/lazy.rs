//! Subcommand definitions clap builds only when their subcommand is used.
//!
//! clap's derive builds the whole command tree (every verb's arguments and
//! help texts, a few hundred kilobytes of allocations) before it parses,
//! and every tufctl call is a new process. Wrapping a verb's arguments in
//! [`Lazy`] defers them with `Command::defer`: `tufctl sign` builds the
//! arguments of `sign` only. A verb's help builds that verb as before.
//! Completion scripts and man pages need the whole tree at once (clap's
//! `help` subcommand copies the nesting when the top command is built), so
//! they call [`eager`] first and get the tree built as without deferral.

use clap::builder::{Resettable, StyledStr};
use clap::{ArgMatches, Args, Command, FromArgMatches, Id, Subcommand};
use std::cell::Cell;

thread_local! {
    /// Set: definitions are built at once, as without [`Lazy`].
    static EAGER: Cell<bool> = const { Cell::new(false) };
}

/// Makes every later `Cli::command()` on this thread build the whole tree
/// at once (for completion scripts and man pages).
pub fn eager() {
    EAGER.set(true);
}

/// `f` applied to `cmd` now (eager) or when clap builds `cmd`.
fn defer(cmd: Command, f: fn(Command) -> Command) -> Command {
    if EAGER.get() { f(cmd) } else { cmd.defer(f) }
}

/// A verb's arguments added to its command. The derive of an `Args`
/// struct also sets the command's about from the struct's doc comment;
/// called at once, the verb's own about (set after it) wins, so a deferred
/// call keeps the about the command had.
fn add_args<T: Args>(cmd: Command) -> Command {
    keeping_about(cmd, T::augment_args)
}

/// [`add_args`] for `update_from_arg_matches`.
fn add_args_for_update<T: Args>(cmd: Command) -> Command {
    keeping_about(cmd, T::augment_args_for_update)
}

/// A verb's subcommands added to its command (the derive of a
/// `Subcommand` enum sets the about from the enum's doc comment too).
fn add_subcommands<T: Subcommand>(cmd: Command) -> Command {
    keeping_about(cmd, T::augment_subcommands)
}

/// [`add_subcommands`] for `update_from_arg_matches`.
fn add_subcommands_for_update<T: Subcommand>(cmd: Command) -> Command {
    keeping_about(cmd, T::augment_subcommands_for_update)
}

/// `add(cmd)` with the about texts `cmd` had.
fn keeping_about(cmd: Command, add: fn(Command) -> Command) -> Command {
    let value = |s: Option<&StyledStr>| s.cloned().map_or(Resettable::Reset, Resettable::Value);
    let (about, long_about) = (value(cmd.get_about()), value(cmd.get_long_about()));
    add(cmd).about(about).long_about(long_about)
}

/// A verb's arguments (or subcommands) whose definitions clap builds when
/// the verb is parsed.
pub struct Lazy<T>(pub T);

impl<T> std::ops::Deref for Lazy<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: FromArgMatches> FromArgMatches for Lazy<T> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        T::from_arg_matches(matches).map(Lazy)
    }
    fn from_arg_matches_mut(matches: &mut ArgMatches) -> Result<Self, clap::Error> {
        T::from_arg_matches_mut(matches).map(Lazy)
    }
    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches(matches)
    }
    fn update_from_arg_matches_mut(&mut self, matches: &mut ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches_mut(matches)
    }
}

impl<T: Args> Args for Lazy<T> {
    fn group_id() -> Option<Id> {
        T::group_id()
    }
    fn augment_args(cmd: Command) -> Command {
        defer(cmd, add_args::<T>)
    }
    fn augment_args_for_update(cmd: Command) -> Command {
        defer(cmd, add_args_for_update::<T>)
    }
}

impl<T: Subcommand> Subcommand for Lazy<T> {
    fn augment_subcommands(cmd: Command) -> Command {
        defer(cmd, add_subcommands::<T>)
    }
    fn augment_subcommands_for_update(cmd: Command) -> Command {
        defer(cmd, add_subcommands_for_update::<T>)
    }
    fn has_subcommand(name: &str) -> bool {
        T::has_subcommand(name)
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::Cli;
    use clap::CommandFactory;

    /// What tufctl prints for `args` (help, or a usage error).
    fn printed(args: &[&str]) -> String {
        let argv = std::iter::once("tufctl").chain(args.iter().copied());
        match Cli::command().try_get_matches_from(argv) {
            Ok(_) => String::from("(parsed)"),
            Err(e) => e.render().to_string(),
        }
    }

    /// Every command path of the tree, as words after `tufctl`.
    fn paths(cmd: &clap::Command, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
        out.push(prefix.clone());
        for sub in cmd.get_subcommands() {
            let mut p = prefix.clone();
            p.push(sub.get_name().to_owned());
            paths(sub, p, out);
        }
    }

    /// Deferred definitions print the same help, short and long, for every
    /// command, and the same usage errors, as the tree built at once.
    #[test]
    fn deferred_tree_prints_what_the_full_tree_prints() {
        let mut cases: Vec<Vec<String>> = Vec::new();
        let lazy: Vec<(Vec<String>, String)>;
        {
            let mut all = Vec::new();
            let mut full = Cli::command();
            full.build();
            paths(&full, Vec::new(), &mut all);
            for p in all {
                for flag in ["--help", "-h"] {
                    let mut c = p.clone();
                    c.push(flag.to_owned());
                    cases.push(c);
                }
            }
            for extra in [
                &["sign"][..],
                &["sign", "a:b", "--bogus"],
                &["key", "bogus"],
                &["sing"],
                &["tuf"],
                &["help", "key", "generate"],
            ] {
                cases.push(extra.iter().map(|s| s.to_string()).collect());
            }
            lazy = cases
                .iter()
                .map(|c| {
                    let words: Vec<&str> = c.iter().map(String::as_str).collect();
                    (c.clone(), printed(&words))
                })
                .collect();
        }
        assert!(lazy.len() > 80, "{} cases", lazy.len());
        super::eager();
        for (case, text) in lazy {
            let words: Vec<&str> = case.iter().map(String::as_str).collect();
            assert_eq!(text, printed(&words), "tufctl {}", case.join(" "));
        }
    }
}
