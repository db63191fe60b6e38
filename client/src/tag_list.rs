//! `tufctl sign --tags-from FILE`: a list of tags too long for a command
//! line, one a line.

use crate::output::Failure;
use std::io::Read;
use std::path::Path;

/// The largest list read: 100 000 tags of long names with digests fit.
const MAX_LIST_BYTES: u64 = 64 * 1024 * 1024;

/// A listed tag: `REPO:TAG`, with its own manifest (digest, size) when the
/// line gives one.
pub type Listed = (String, Option<(String, u64)>);

/// Reads `path` (`-`: stdin). Lines: `REPO:TAG` or `REPO:TAG DIGEST SIZE`;
/// blank lines and lines starting with `#` are skipped.
pub fn read(path: &Path) -> Result<Vec<Listed>, Failure> {
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
    parse(&text).map_err(|e| Failure::input(format!("--tags-from {name}: {e}")))
}

fn parse(text: &str) -> Result<Vec<Listed>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let listed = match fields[..] {
            [reference] => (reference.to_owned(), None),
            [reference, digest, size] => {
                if crate::trust::check_digest(digest).is_err() {
                    return Err(format!(
                        "line {}: digest {digest:?} is not sha256: and 64 lowercase hex digits",
                        n + 1
                    ));
                }
                let size = size.parse::<u64>().ok().filter(|s| *s > 0).ok_or_else(|| {
                    format!(
                        "line {}: size {size:?} is not a manifest's size in bytes",
                        n + 1
                    )
                })?;
                (reference.to_owned(), Some((digest.to_owned(), size)))
            }
            _ => {
                return Err(format!(
                    "line {}: expected REPO:TAG or REPO:TAG DIGEST SIZE, got {line:?}",
                    n + 1
                ));
            }
        };
        out.push(listed);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_with_and_without_manifests() {
        let d = format!("sha256:{}", "ab".repeat(32));
        let text = format!("# list\nreg/app:v1\n\n  reg/app:v2 {d} 527\n");
        let listed = parse(&text).unwrap();
        assert_eq!(
            listed,
            vec![
                ("reg/app:v1".to_owned(), None),
                ("reg/app:v2".to_owned(), Some((d.clone(), 527)))
            ]
        );
        for bad in [
            format!("reg/app:v1 {d}"),
            format!("reg/app:v1 {d} 0"),
            "reg/app:v1 sha256:00 5".to_owned(),
        ] {
            let e = parse(&bad).unwrap_err();
            assert!(e.starts_with("line 1:"), "{e}");
        }
    }
}
