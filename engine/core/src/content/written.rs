//! What a content file said before `${env:}`/`${file:}` references were resolved, so that
//! documents about content objects (`action get`, `rule get`, the API) show the reference
//! as written (`${env:DB_PASSWORD}`) and never the value it resolved to.

use crate::model::{Json, MASK};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One step of the path to a value in a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A key of a mapping.
    Key(String),
    /// An index of a sequence.
    Index(usize),
}

/// A reference found in a content file and the value it resolved to.
#[derive(Clone, PartialEq, Eq)]
pub struct Reference {
    /// Where it is in the file's document.
    pub path: Vec<Step>,
    /// The text as written, e.g. `${env:DB_PASSWORD}`.
    pub written: String,
    /// What it resolved to (never shown).
    resolved: String,
}

impl std::fmt::Debug for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reference")
            .field("path", &self.path)
            .field("written", &self.written)
            .field("resolved", &MASK)
            .finish()
    }
}

impl Reference {
    /// A reference at `path`, written as `written`, resolved to `resolved`.
    pub fn new(path: Vec<Step>, written: &str, resolved: &str) -> Reference {
        Reference {
            path,
            written: written.trim().to_string(),
            resolved: resolved.to_string(),
        }
    }
}

/// The references of every file of the loaded content, by file (as in `Action::file`,
/// `Rule::file`, `Sensor::file`).
#[derive(Debug, Default)]
pub struct Written {
    by_file: BTreeMap<PathBuf, Arc<[Reference]>>,
    /// Every resolved value, to hide it wherever a document shows it.
    values: HashSet<String>,
}

impl Written {
    /// Remember the references of `file`.
    pub fn add(&mut self, file: &Path, refs: &[Reference]) {
        if refs.is_empty() {
            return;
        }
        self.values.extend(
            refs.iter()
                .map(|r| r.resolved.clone())
                .filter(|v| !v.is_empty()),
        );
        self.by_file.insert(file.to_path_buf(), refs.into());
    }

    /// Every resolved value (to pin them as secrets).
    pub fn values(&self) -> impl Iterator<Item = &String> {
        self.values.iter()
    }

    /// `doc` (the typed object of `file`, serialized back, with `file`'s root at `doc`'s
    /// root) as written: each resolved value still at its reference's place becomes the
    /// reference again; then [`Written::hide`].
    pub fn as_written(&self, file: &Path, mut doc: Json) -> Json {
        if let Some(refs) = self.by_file.get(file) {
            for r in refs.iter() {
                if let Some(Json::String(s)) = at_mut(&mut doc, &r.path) {
                    if *s == r.resolved {
                        *s = r.written.clone();
                    }
                }
            }
        }
        self.hide(&doc)
    }

    /// `doc` with every string that is a resolved value shown as the mask, and every
    /// known secret inside longer strings masked.
    pub fn hide(&self, doc: &Json) -> Json {
        let mut doc = crate::secrets::mask_json(doc);
        if !self.values.is_empty() {
            replace_exact(&mut doc, &self.values);
        }
        doc
    }
}

fn at_mut<'a>(doc: &'a mut Json, path: &[Step]) -> Option<&'a mut Json> {
    let mut cur = doc;
    for step in path {
        cur = match (step, cur) {
            (Step::Key(k), Json::Object(m)) => m.get_mut(k)?,
            (Step::Index(i), Json::Array(a)) => a.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Values too short to be registered as secrets are still not shown when a document
/// holds one as a whole string.
fn replace_exact(doc: &mut Json, values: &HashSet<String>) {
    match doc {
        Json::String(s) if values.contains(s.as_str()) => *s = MASK.to_string(),
        Json::Array(items) => items.iter_mut().for_each(|v| replace_exact(v, values)),
        Json::Object(map) => map.values_mut().for_each(|v| replace_exact(v, values)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resolved_values_at_their_place_are_shown_as_written() {
        let mut w = Written::default();
        let path = vec![Step::Key("env".into()), Step::Key("PW".into())];
        w.add(
            Path::new("a.yaml"),
            &[
                Reference::new(path, " ${env:PW} ", "written-test-value-1"),
                Reference::new(
                    vec![Step::Key("list".into()), Step::Index(1)],
                    "${file:/x}",
                    "ab",
                ),
            ],
        );
        let doc =
            json!({"env": {"PW": "written-test-value-1"}, "list": ["ab", "ab"], "other": "ab"});
        assert_eq!(
            w.as_written(Path::new("a.yaml"), doc.clone()),
            json!({"env": {"PW": "${env:PW}"}, "list": ["********", "${file:/x}"], "other": "********"})
        );
        // Another file's document: the values are hidden, not restored.
        assert_eq!(
            w.as_written(Path::new("b.yaml"), doc)["env"]["PW"],
            json!("********")
        );
    }

    #[test]
    fn a_reference_does_not_show_its_value_in_debug_output() {
        let r = Reference::new(Vec::new(), "${env:X}", "debug-hidden-value");
        assert!(!format!("{r:?}").contains("debug-hidden-value"));
    }
}
