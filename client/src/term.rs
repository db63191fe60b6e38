//! Where a command writes: stdout for results, stderr for progress,
//! prompts and warnings.

use std::io::{IsTerminal, Write};

/// Where a command writes: stdout for results, stderr for progress,
/// prompts and warnings.
pub struct Term {
    out: Box<dyn Write + Send>,
    err: Box<dyn Write + Send>,
    /// stderr is a terminal: progress is one line updated in place.
    err_tty: bool,
    /// An updating status line is on screen and must be cleared.
    status_shown: bool,
    /// Progress of long calls is shown: stderr is a terminal, or --progress.
    progress: bool,
}

impl Term {
    /// The process's stdout and stderr; `progress` forces progress lines
    /// when stderr is not a terminal (--progress).
    pub fn stdio(progress: bool) -> Self {
        let err_tty = std::io::stderr().is_terminal();
        Term {
            out: Box::new(std::io::stdout()),
            err: Box::new(std::io::stderr()),
            err_tty,
            status_shown: false,
            progress: progress || err_tty,
        }
    }

    /// Writers of the caller's choice (tests).
    #[cfg(test)]
    pub fn new(out: Box<dyn Write + Send>, err: Box<dyn Write + Send>, err_tty: bool) -> Self {
        Term {
            out,
            err,
            err_tty,
            status_shown: false,
            progress: err_tty,
        }
    }

    // Write errors on stdout/stderr (a closed pipe) are ignored, as
    // `println!` users expect the command's own result to decide the exit.
    pub fn out(&mut self, text: &str) {
        let _ = self.out.write_all(text.as_bytes());
        let _ = self.out.flush();
    }

    /// A line on stderr, below any status line.
    pub fn note(&mut self, line: &str) {
        self.clear_status();
        let _ = writeln!(self.err, "{line}");
        let _ = self.err.flush();
    }

    /// A question on stderr, the answer typed on the same line.
    pub fn prompt(&mut self, question: &str) {
        self.clear_status();
        let _ = write!(self.err, "{question}");
        let _ = self.err.flush();
    }

    /// A transient line: updated in place on a terminal, else one line each.
    pub fn status(&mut self, line: &str) {
        if self.err_tty {
            let _ = write!(self.err, "\r\x1b[2K{line}");
            self.status_shown = true;
            let _ = self.err.flush();
        } else {
            self.note(line);
        }
    }

    pub fn clear_status(&mut self) {
        if self.status_shown {
            let _ = write!(self.err, "\r\x1b[2K");
            let _ = self.err.flush();
            self.status_shown = false;
        }
    }

    /// Asks `question` on stderr and reads the answer from stdin: yes for
    /// y, Y or yes; no for anything else, end of input included.
    pub fn confirm(&mut self, question: &str) -> Result<bool, crate::output::Failure> {
        self.prompt(question);
        let mut answer = String::new();
        std::io::stdin()
            .read_line(&mut answer)
            .map_err(|e| crate::output::Failure::input(format!("cannot read the answer: {e}")))?;
        if answer.is_empty() {
            self.note("");
        }
        Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
    }

    /// Enables progress lines whatever stderr is (tests).
    #[cfg(test)]
    pub fn with_progress(mut self) -> Self {
        self.progress = true;
        self
    }

    /// Awaits `call`, showing `what` and the seconds elapsed while it runs:
    /// updated in place on a terminal, a line every 5 s with --progress
    /// otherwise. The line is cleared when the call ends.
    pub async fn waiting<T>(
        &mut self,
        what: &str,
        call: impl std::future::Future<Output = T>,
    ) -> T {
        if !self.progress {
            return call.await;
        }
        let every = if self.err_tty {
            std::time::Duration::from_millis(250)
        } else {
            std::time::Duration::from_secs(5)
        };
        let start = tokio::time::Instant::now();
        let mut ticks = tokio::time::interval_at(start + every, every);
        tokio::pin!(call);
        self.status(&format!("{what}…"));
        let result = loop {
            tokio::select! {
                r = &mut call => break r,
                _ = ticks.tick() => {
                    let secs = start.elapsed().as_secs_f32();
                    self.status(&format!("{what}… {secs:.0} s"));
                }
            }
        };
        self.clear_status();
        result
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::term;

    #[tokio::test]
    async fn waiting_shows_the_time_elapsed_and_clears_its_line() {
        let (mut t, o, e) = term(true);
        let slow = tokio::time::sleep(std::time::Duration::from_millis(600));
        t.waiting("asking the devices for attestations", slow).await;
        let err = e.text();
        assert!(
            err.starts_with("\r\x1b[2Kasking the devices for attestations…\r\x1b[2Kasking the devices for attestations… "),
            "{err:?}"
        );
        assert!(
            err.contains(" s\r\x1b[2K") && err.ends_with("\r\x1b[2K"),
            "{err:?}"
        );
        assert!(o.text().is_empty());
        // Without a terminal (and without --progress): nothing.
        let (mut t, _, e) = term(false);
        t.waiting("x", async {}).await;
        assert!(e.text().is_empty());
    }
}
