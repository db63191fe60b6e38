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
}

impl Term {
    /// The process's stdout and stderr.
    pub fn stdio() -> Self {
        Term {
            out: Box::new(std::io::stdout()),
            err: Box::new(std::io::stderr()),
            err_tty: std::io::stderr().is_terminal(),
            status_shown: false,
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
}
