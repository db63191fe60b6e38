//! `tufctl sign --tags-from FILE`: a list of tags too long for a command
//! line, one a line.

use crate::output::Failure;
use std::io::Read;
use std::path::Path;

/// The largest list read: 100 000 tags of long names with digests fit.
const MAX_LIST_BYTES: u64 = 64 * 1024 * 1024;

/// Reads `path` (`-`: stdin): one tag a line, written as on the command
/// line (`REPO:TAG` or `REPO:TAG@sha256:HEX:SIZE`); blank lines and lines
/// starting with `#` are skipped.
pub fn read(path: &Path) -> Result<Vec<String>, Failure> {
    let name = path.display();
    let mut text = String::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin()
            .take(MAX_LIST_BYTES + 1)
            .read_to_string(&mut text)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(MAX_LIST_BYTES + 1).read_to_string(&mut text))
    };
    read.map_err(|e| Failure::input(format!("--tags-from {name}: {e}")))?;
    if text.len() as u64 > MAX_LIST_BYTES {
        return Err(Failure::input(format!(
            "--tags-from {name}: larger than {MAX_LIST_BYTES} bytes; split the list over several calls"
        )));
    }
    Ok(parse(&text))
}

fn parse(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_tag_a_line_comments_and_blanks_skipped() {
        let d = format!("sha256:{}", "ab".repeat(32));
        let text = format!("# list\nreg/app:v1\n\n  reg/app:v2@{d}:527  \n");
        assert_eq!(
            parse(&text),
            vec!["reg/app:v1".to_owned(), format!("reg/app:v2@{d}:527")]
        );
    }
}
