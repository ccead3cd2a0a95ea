//! Reading one YAML content file: syntax, `${env:}`/`${file:}` references, typed
//! deserialisation, and diagnostics that point at `path:line:col`.

use super::written::{Reference, Step};
use super::yamlpos::{Pos, PosMap};
use crate::model::Json;
use serde::de::DeserializeOwned;
use std::fmt;
use std::path::{Path, PathBuf};

/// One problem found in the content, at a place in a file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    /// The file, as found under the content root.
    pub file: PathBuf,
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub col: usize,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic at a position of `file`. The message is made one line (some errors,
    /// like the regex crate's, span several), so that each problem is one
    /// `path:line:col: message` line.
    pub fn at(file: &Path, pos: Pos, message: impl Into<String>) -> Diagnostic {
        let message: String = message.into();
        let message = if message.contains('\n') {
            message
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            message
        };
        // A message may quote a value that a reference resolved to (a config value of the
        // wrong type): never print it.
        let message = crate::secrets::mask_str(&message);
        Diagnostic {
            file: file.to_path_buf(),
            line: pos.line,
            col: pos.col,
            message,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// Every problem found while loading, in file order.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        write!(f, "{} problem(s) found", self.0.len())
    }
}

impl std::error::Error for Diagnostics {}

impl std::error::Error for Diagnostic {}

/// A parsed YAML file: its JSON value (references resolved) and node positions.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Path of the file.
    pub path: PathBuf,
    /// Positions of nodes by dotted path.
    pub pos: PosMap,
    /// The document as JSON, `${env:}`/`${file:}` resolved.
    pub json: Json,
    /// The references resolved in it, to show them as written.
    pub refs: Vec<Reference>,
}

impl SourceFile {
    /// Read and parse `path`. Problems with references are pushed to `diags`; a file that
    /// cannot be read or parsed at all is an `Err`.
    pub fn read(path: &Path, diags: &mut Vec<Diagnostic>) -> Result<SourceFile, Diagnostic> {
        let text = super::guard::read_text(path, path)?;
        SourceFile::parse(path, &text, diags)
    }

    /// Parse YAML `text` that came from `path`.
    pub fn parse(
        path: &Path,
        text: &str,
        diags: &mut Vec<Diagnostic>,
    ) -> Result<SourceFile, Diagnostic> {
        // Size, byte-order mark and nesting, before the (costly) parse.
        let text = super::guard::check(path, text)?;
        let mut json: Json = serde_yaml::from_str(text).map_err(|e| {
            let pos = e
                .location()
                .map(|l| Pos {
                    line: l.line(),
                    col: l.column(),
                })
                .unwrap_or(Pos { line: 1, col: 1 });
            Diagnostic::at(
                path,
                pos,
                format!("invalid YAML: {}", strip_location(&e.to_string())),
            )
        })?;
        let pos = PosMap::parse(text);
        for d in pos.duplicates() {
            diags.push(Diagnostic::at(
                path,
                d.second,
                format!(
                    "duplicate key `{}`: it is also at {}:{}:{}; a key may appear once in a mapping (remove one)",
                    d.key,
                    path.display(),
                    d.first.line,
                    d.first.col
                ),
            ));
        }
        if !json.is_object() {
            return Err(Diagnostic::at(
                path,
                Pos { line: 1, col: 1 },
                "expected a YAML mapping (key: value lines) at the top of the file",
            ));
        }
        let mut problems = Vec::new();
        let mut refs = Vec::new();
        resolve_refs(&mut json, "", &mut Vec::new(), &mut refs, &mut problems);
        for (field, msg) in problems {
            diags.push(Diagnostic::at(path, pos.find(&field), msg));
        }
        Ok(SourceFile {
            path: path.to_path_buf(),
            pos,
            json,
            refs,
        })
    }

    /// A diagnostic at the node `field` (dotted path) of this file.
    pub fn diag(&self, field: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::at(&self.path, self.pos.find(field), message)
    }

    /// Deserialize the document into `T`; the error points at the offending field.
    pub fn typed<T: DeserializeOwned>(&self) -> Result<T, Diagnostic> {
        self.typed_at(&self.json, "")
    }

    /// Deserialize `value`, found at `base` in this file, into `T`.
    pub fn typed_at<T: DeserializeOwned>(&self, value: &Json, base: &str) -> Result<T, Diagnostic> {
        serde_path_to_error::deserialize(value.clone()).map_err(|e| {
            let inner = e.path().to_string();
            let field = match (base.is_empty(), inner == ".") {
                (_, true) => base.to_string(),
                (true, false) => inner,
                (false, false) => format!("{base}.{inner}"),
            };
            let message = e.into_inner().to_string();
            let shown = if field.is_empty() {
                message
            } else {
                format!("{field}: {message}")
            };
            self.diag(&field, shown)
        })
    }
}

/// serde_yaml appends "at line X column Y"; we print the position in front instead.
fn strip_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// Replace `${env:NAME}` and `${file:PATH}` string values by what they name; the resolved
/// values are registered as secrets and each reference is remembered in `refs`.
fn resolve_refs(
    value: &mut Json,
    path: &str,
    steps: &mut Vec<Step>,
    refs: &mut Vec<Reference>,
    problems: &mut Vec<(String, String)>,
) {
    match value {
        Json::String(s) => {
            if let Some(resolved) = resolve_one(s, path, problems) {
                crate::secrets::register(&resolved);
                refs.push(Reference::new(steps.clone(), s, &resolved));
                *s = resolved;
            }
        }
        Json::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                steps.push(Step::Index(i));
                resolve_refs(v, &join(path, &i.to_string()), steps, refs, problems);
                steps.pop();
            }
        }
        Json::Object(map) => {
            for (k, v) in map.iter_mut() {
                steps.push(Step::Key(k.clone()));
                resolve_refs(v, &join(path, k), steps, refs, problems);
                steps.pop();
            }
        }
        _ => {}
    }
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}.{b}")
    }
}

fn resolve_one(s: &str, path: &str, problems: &mut Vec<(String, String)>) -> Option<String> {
    let inner = s.trim().strip_prefix("${")?.strip_suffix('}')?;
    if let Some(name) = inner.strip_prefix("env:") {
        match std::env::var(name) {
            Ok(v) => Some(v),
            Err(_) => {
                problems.push((
                    path.to_string(),
                    format!("environment variable {name} (from ${{env:{name}}}) is not set; export it before starting Squall"),
                ));
                None
            }
        }
    } else if let Some(file) = inner.strip_prefix("file:") {
        let expanded = expand_home(file);
        match std::fs::read_to_string(&expanded) {
            Ok(v) => Some(v.trim_end_matches(['\n', '\r']).to_string()),
            Err(e) => {
                problems.push((
                    path.to_string(),
                    format!(
                        "cannot read {} (from ${{file:{file}}}): {e}",
                        expanded.display()
                    ),
                ));
                None
            }
        }
    } else {
        None
    }
}

/// Expand a leading `~/` to the home directory.
pub fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_line_message_becomes_one_line() {
        let d = Diagnostic::at(
            Path::new("a.yaml"),
            Pos { line: 2, col: 3 },
            "regex parse error:\n    ([a-z\n     ^\nerror: unclosed character class",
        );
        assert_eq!(
            d.to_string(),
            "a.yaml:2:3: regex parse error: ([a-z ^ error: unclosed character class"
        );
    }

    #[test]
    fn syntax_errors_point_at_the_line() {
        let mut d = Vec::new();
        let err = SourceFile::parse(Path::new("a.yaml"), "name: x\nfoo: [1, 2\nbar: 3\n", &mut d)
            .unwrap_err();
        assert!(err.to_string().starts_with("a.yaml:"), "{err}");
        assert!(err.message.contains("invalid YAML"), "{err}");
        assert!(err.line >= 2, "{err}");
    }

    #[test]
    fn env_and_file_references_resolve_and_become_secret() {
        std::env::set_var("SQUALL_TEST_REF_VALUE", "s3cr3t-from-env");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "s3cr3t-from-file\n").unwrap();
        let text = format!(
            "a: ${{env:SQUALL_TEST_REF_VALUE}}\nb: ${{file:{}}}\nc: ${{env:SQUALL_TEST_MISSING_VAR}}\n",
            f.display()
        );
        let mut d = Vec::new();
        let sf = SourceFile::parse(Path::new("x.yaml"), &text, &mut d).unwrap();
        assert_eq!(sf.json["a"], "s3cr3t-from-env");
        assert_eq!(sf.json["b"], "s3cr3t-from-file");
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].line, d[0].col), (3, 4));
        assert!(d[0].message.contains("SQUALL_TEST_MISSING_VAR"));
        assert_eq!(crate::secrets::mask_str("x s3cr3t-from-env"), "x ********");
        let written: Vec<(&[Step], &str)> = sf
            .refs
            .iter()
            .map(|r| (r.path.as_slice(), r.written.as_str()))
            .collect();
        assert_eq!(
            written[0],
            (&[Step::Key("a".into())][..], "${env:SQUALL_TEST_REF_VALUE}")
        );
        assert_eq!(written.len(), 2, "the unset one resolved to nothing");
    }

    #[test]
    fn type_errors_name_the_field_and_line() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct T {
            name: String,
            inner: Inner,
        }
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Inner {
            count: u32,
        }
        let mut d = Vec::new();
        let sf = SourceFile::parse(
            Path::new("t.yaml"),
            "name: x\ninner:\n  count: lots\n",
            &mut d,
        )
        .unwrap();
        let err = sf.typed::<T>().unwrap_err();
        assert_eq!((err.line, err.col), (3, 10), "{err}");
        assert!(
            err.message.starts_with("inner.count: invalid type"),
            "{err}"
        );
    }
}
