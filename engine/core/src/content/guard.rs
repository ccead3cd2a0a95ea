//! Checks on a content file's text before it is parsed: its size, a leading byte-order
//! mark, and how deep its flow collections (`[…]`, `{…}`) nest. The YAML parser takes
//! time quadratic in the nesting of flow collections, and the same parser runs at
//! start-up and on every reload: a file nested absurdly deep is refused here, in one
//! linear pass, with its position.

use super::source::Diagnostic;
use super::yamlpos::Pos;
use std::path::Path;

/// Largest content file read (bytes): 1 MiB.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Deepest nesting of collections in a content file (the same limit as for values from
/// outside, [`crate::limits::MAX_DEPTH`]).
pub const MAX_NESTING: usize = crate::limits::MAX_DEPTH;

/// Read `path` (shown as `shown` in errors) as text, refusing files over
/// [`MAX_FILE_BYTES`] before reading them.
pub fn read_text(path: &Path, shown: &Path) -> Result<String, Diagnostic> {
    let start = Pos { line: 1, col: 1 };
    let cannot = |e: std::io::Error| Diagnostic::at(shown, start, format!("cannot read file: {e}"));
    let size = std::fs::metadata(path).map_err(cannot)?.len();
    if size > MAX_FILE_BYTES {
        return Err(too_big(shown, size as usize));
    }
    std::fs::read_to_string(path).map_err(cannot)
}

fn too_big(shown: &Path, size: usize) -> Diagnostic {
    Diagnostic::at(
        shown,
        Pos { line: 1, col: 1 },
        format!(
            "the file is {size} bytes, more than the limit of {MAX_FILE_BYTES} bytes (1 MiB) per content file: split it, or keep large data outside the content (a `${{file:}}` reference, a pack config)"
        ),
    )
}

/// `text` without a leading UTF-8 byte-order mark, after checking its size and nesting.
pub fn check<'t>(shown: &Path, text: &'t str) -> Result<&'t str, Diagnostic> {
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(too_big(shown, text.len()));
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if let Some(pos) = too_deep_at(text, MAX_NESTING) {
        return Err(Diagnostic::at(
            shown,
            pos,
            format!("collections nest more than {MAX_NESTING} levels deep here; the limit is {MAX_NESTING} levels per content file"),
        ));
    }
    Ok(text)
}

/// Where flow collections first nest deeper than `limit` (quoted scalars and comments
/// skipped), if they do. Block nesting needs indentation, so its depth is bounded by the
/// file size, and the YAML reader bounds it.
fn too_deep_at(text: &str, limit: usize) -> Option<Pos> {
    let (mut line, mut col) = (1usize, 0usize);
    let mut depth = 0usize;
    // Whether the next non-blank character starts a node (so `[`, `{`, `"`, `'` there are
    // indicators, not part of a plain scalar like `don't` or `a[0]`).
    let mut node_start = true;
    let mut chars = text.chars().peekable();
    let mut prev_blank = true;
    while let Some(c) = chars.next() {
        col += 1;
        if c == '\n' {
            line += 1;
            col = 0;
            node_start = true;
            prev_blank = true;
            continue;
        }
        match c {
            '#' if prev_blank => {
                // A comment: skip to the end of the line.
                while chars.peek().is_some_and(|&n| n != '\n') {
                    chars.next();
                }
                continue;
            }
            '"' | '\'' if node_start => {
                let quote = c;
                while let Some(n) = chars.next() {
                    col += 1;
                    if n == '\n' {
                        line += 1;
                        col = 0;
                    } else if quote == '"' && n == '\\' {
                        if chars.next().is_some() {
                            col += 1;
                        }
                    } else if n == quote {
                        if quote == '\'' && chars.peek() == Some(&'\'') {
                            chars.next();
                            col += 1;
                        } else {
                            break;
                        }
                    }
                }
                node_start = false;
            }
            '[' | '{' if node_start || depth > 0 => {
                depth += 1;
                if depth > limit {
                    return Some(Pos { line, col });
                }
                node_start = true;
            }
            ']' | '}' if depth > 0 => {
                depth -= 1;
                node_start = false;
            }
            ',' if depth > 0 => node_start = true,
            ':' | '-' | '?' => {
                // `key: value`, `- item`, `? key`: a node may start after them.
                node_start =
                    chars.peek().is_none_or(|n| n.is_whitespace()) || (depth > 0 && c == ':');
            }
            c if c.is_whitespace() => {}
            _ => node_start = false,
        }
        prev_blank = c.is_whitespace();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deep(n: usize) -> String {
        format!("name: x\nv: {}1{}\n", "[".repeat(n), "]".repeat(n))
    }

    #[test]
    fn nesting_is_bounded_with_the_position() {
        assert!(check(Path::new("a.yaml"), &deep(MAX_NESTING)).is_ok());
        let d = check(Path::new("a.yaml"), &deep(MAX_NESTING + 1)).unwrap_err();
        assert_eq!((d.line, d.col), (2, 4 + MAX_NESTING));
        assert!(
            d.to_string()
                .starts_with("a.yaml:2:68: collections nest more than 64"),
            "{d}"
        );
        // Mixed maps and lists inside flow collections count too.
        let mixed = format!("v: {}1{}\n", "{a: [".repeat(40), "]}".repeat(40));
        assert!(check(Path::new("m.yaml"), &mixed).is_err());
    }

    #[test]
    fn brackets_in_scalars_and_comments_do_not_count() {
        let many = "[".repeat(200);
        let text = format!(
            "a: \"{many}\"\nb: '{many}'\nc: x{many}\nd: don't {many}\n# {many}\ne: [1, \"]]]]\", 'it''s [[['] # {many}\n"
        );
        assert!(check(Path::new("a.yaml"), &text).is_ok());
    }

    #[test]
    fn a_byte_order_mark_is_dropped_and_size_is_bounded() {
        assert_eq!(
            check(Path::new("a.yaml"), "\u{feff}name: x\n").unwrap(),
            "name: x\n"
        );
        let big = "a: b\n".repeat((MAX_FILE_BYTES as usize) / 5 + 1);
        let d = check(Path::new("big.yaml"), &big).unwrap_err();
        assert!(
            d.message.contains("more than the limit of 1048576 bytes"),
            "{d}"
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.yaml");
        std::fs::write(&p, &big).unwrap();
        let d = read_text(&p, Path::new("rules/big.yaml")).unwrap_err();
        assert!(
            d.to_string().starts_with("rules/big.yaml:1:1: the file is"),
            "{d}"
        );
    }
}
