//! The manual: tufd.toml(5) from the configuration reference (the module
//! documentation of [`crate::config`], one source for rustdoc and man), and
//! the commented example configuration `tufd --print-example-config`
//! prints (`daemon/tufd.example.toml`: every section, accepted by
//! `tufd --check-config` wherever SoftHSM2 is installed).

/// The commented example configuration.
pub const EXAMPLE_CONFIG: &str = include_str!("../tufd.example.toml");

/// The configuration reference: `config.rs`'s `//!` lines, as Markdown.
fn config_reference() -> String {
    include_str!("config.rs")
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .map(|l| {
            l.strip_prefix("//! ")
                .unwrap_or(l.trim_start_matches("//!"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Escapes text for roff: backslashes, and a leading `.` or `'` that roff
/// would read as a request.
fn roff_escape(line: &str) -> String {
    let escaped = line.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// Inline Markdown for roff: `code` in bold, [`links`] as their text.
fn roff_inline(line: &str) -> String {
    let mut out = String::new();
    let mut code = false;
    for part in roff_escape(line)
        .replace("[`", "`")
        .replace("`]", "`")
        .split('`')
    {
        if code {
            out.push_str(&format!("\\fB{part}\\fR"));
        } else {
            out.push_str(part);
        }
        code = !code;
    }
    out
}

/// tufd.toml(5) in roff.
pub fn config_page() -> String {
    let mut page = format!(
        ".TH TUFD.TOML 5 \"\" \"tufd {}\" \"File Formats\"\n.SH NAME\ntufd.toml \\- configuration of the tufd signing daemon\n.SH SYNOPSIS\n/etc/tufd/tufd.toml (\\fBtufd \\-\\-config\\fR, \\fBTUFD_CONFIG\\fR)\n.SH DESCRIPTION\n",
        env!("CARGO_PKG_VERSION")
    );
    let mut in_code = false;
    let mut paragraph = false;
    for line in config_reference().lines().skip(1) {
        if line.starts_with("```") {
            page.push_str(if in_code {
                ".fi\n.RE\n"
            } else {
                ".PP\n.RS 4\n.nf\n"
            });
            in_code = !in_code;
            paragraph = false;
        } else if in_code {
            page.push_str(&roff_escape(line));
            page.push('\n');
        } else if line.trim().is_empty() {
            paragraph = false;
        } else {
            if !paragraph {
                page.push_str(".PP\n");
                paragraph = true;
            }
            page.push_str(&roff_inline(line));
            page.push('\n');
        }
    }
    page.push_str(".SH EXAMPLE\n\\fBtufd \\-\\-print\\-example\\-config\\fR prints a commented configuration that \\fBtufd \\-\\-check\\-config\\fR accepts.\n.SH SEE ALSO\n\\fBtufd\\fR(8), \\fBtufctl\\fR(1)\n");
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_page_carries_the_reference() {
        let page = config_page();
        assert!(page.starts_with(".TH TUFD.TOML 5"));
        // Sections of the reference, its TOML verbatim, inline code in bold.
        assert!(page.contains("[[remote]]"), "{page}");
        assert!(page.contains("pin_cache_seconds = 900"), "{page}");
        assert!(page.contains("\\fBtufctl sign REPO:TAG\\fR"), "{page}");
        assert_eq!(page.matches(".nf\n").count(), page.matches(".fi\n").count());
        assert!(!page.contains("//!"));
        assert!(EXAMPLE_CONFIG.contains("[[token]]"));
    }
}
