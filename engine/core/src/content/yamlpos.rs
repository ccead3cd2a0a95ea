//! Source positions of YAML nodes, so that validation errors can say `path:line:col`.
//!
//! serde gives us typed values but forgets where they came from; this walks the YAML event
//! stream once and records the position of every node under its dotted path
//! (`chain.2.on-success`).

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A line and column, both 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub col: usize,
}

/// Positions of the nodes of one YAML document, by dotted path (`""` is the document).
#[derive(Debug, Default, Clone)]
pub struct PosMap {
    values: HashMap<String, Pos>,
    keys: HashMap<String, Pos>,
    duplicates: Vec<Duplicate>,
}

/// A key written twice in one mapping (YAML readers keep the last one silently).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    /// The key.
    pub key: String,
    /// Dotted path of the mapping that holds it (`""` for the top level).
    pub mapping: String,
    /// Where it is first.
    pub first: Pos,
    /// Where it is again.
    pub second: Pos,
}

impl PosMap {
    /// Parse `text`; positions of whatever was read before a syntax error are kept.
    pub fn parse(text: &str) -> PosMap {
        let mut rec = Recorder::default();
        let mut parser = Parser::new_from_str(text);
        let _ = parser.load(&mut rec, false);
        rec.map
    }

    /// Position of the value at `path`, else of its key, else of the nearest ancestor.
    pub fn find(&self, path: &str) -> Pos {
        let mut p = path;
        loop {
            if let Some(pos) = self.values.get(p).or_else(|| self.keys.get(p)) {
                return *pos;
            }
            match p.rfind('.') {
                Some(i) => p = &p[..i],
                None if !p.is_empty() => p = "",
                None => return Pos { line: 1, col: 1 },
            }
        }
    }

    /// Keys written more than once in the same mapping, in file order.
    pub fn duplicates(&self) -> &[Duplicate] {
        &self.duplicates
    }

    /// Position of the key of the map entry at `path` (falls back like [`PosMap::find`]).
    pub fn key(&self, path: &str) -> Pos {
        self.keys
            .get(path)
            .copied()
            .unwrap_or_else(|| self.find(path))
    }
}

enum Frame {
    Map {
        path: String,
        next_is_key: bool,
        key: Option<String>,
        seen: HashMap<String, Pos>,
    },
    Seq {
        path: String,
        index: usize,
    },
}

#[derive(Default)]
struct Recorder {
    stack: Vec<Frame>,
    map: PosMap,
    done: bool,
}

fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}.{child}")
    }
}

fn pos_of(mark: Marker) -> Pos {
    Pos {
        line: mark.line().max(1),
        col: mark.col() + 1,
    }
}

impl Recorder {
    /// Path of the node that starts now, advancing the parent's cursor. `None` when the
    /// event is a map key.
    fn next_path(&mut self, scalar: Option<&str>, pos: Pos) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, index }) => {
                let p = join(path, &index.to_string());
                *index += 1;
                Some(p)
            }
            Some(Frame::Map {
                path,
                next_is_key,
                key,
                seen,
            }) => {
                if *next_is_key {
                    let k = scalar.unwrap_or("?").to_string();
                    if let Some(first) = scalar.and_then(|k| seen.get(k)) {
                        self.map.duplicates.push(Duplicate {
                            key: k.clone(),
                            mapping: path.clone(),
                            first: *first,
                            second: pos,
                        });
                    } else if scalar.is_some() {
                        seen.insert(k.clone(), pos);
                    }
                    let full = join(path, &k);
                    // A block mapping's own position is where its first key starts (the
                    // parser's mark for the mapping itself is not reliable).
                    self.map.values.entry(path.clone()).or_insert(pos);
                    self.map.keys.insert(full, pos);
                    *key = Some(k);
                    *next_is_key = false;
                    None
                } else {
                    *next_is_key = true;
                    Some(join(path, key.as_deref().unwrap_or("?")))
                }
            }
        }
    }
}

impl MarkedEventReceiver for Recorder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.done {
            return;
        }
        let pos = pos_of(mark);
        match ev {
            Event::Scalar(ref s, ..) => {
                if let Some(p) = self.next_path(Some(s), pos) {
                    self.map.values.entry(p).or_insert(pos);
                }
            }
            Event::Alias(_) => {
                if let Some(p) = self.next_path(None, pos) {
                    self.map.values.entry(p).or_insert(pos);
                }
            }
            Event::MappingStart(..) => {
                let path = self.next_path(None, pos).unwrap_or_default();
                self.stack.push(Frame::Map {
                    path,
                    next_is_key: true,
                    key: None,
                    seen: HashMap::new(),
                });
            }
            Event::SequenceStart(..) => {
                let path = self.next_path(None, pos).unwrap_or_default();
                self.map.values.entry(path.clone()).or_insert(pos);
                self.stack.push(Frame::Seq { path, index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            // Only the first document of a file is content.
            Event::DocumentEnd => self.done = true,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_nested_paths() {
        let text =
            "name: x\nchain:\n  - name: a\n    ref: core.noop\n  - name: b\n    on-success: c\n";
        let m = PosMap::parse(text);
        assert_eq!(m.find("name"), Pos { line: 1, col: 7 });
        assert_eq!(m.find("chain.0.ref"), Pos { line: 4, col: 10 });
        assert_eq!(m.find("chain.1.on-success"), Pos { line: 6, col: 17 });
        assert_eq!(m.key("chain.1.on-success"), Pos { line: 6, col: 5 });
        // Unknown leaf falls back to the nearest ancestor.
        assert_eq!(m.find("chain.1.nothing"), Pos { line: 5, col: 5 });
        assert!(m.duplicates().is_empty());
    }

    #[test]
    fn records_keys_written_twice_in_one_mapping() {
        let text = "name: x
chain:
  - name: a
    ref: b
    ref: c
  - name: b
name: y
flow: {k: 1, k: 2}
";
        let m = PosMap::parse(text);
        let d: Vec<_> = m
            .duplicates()
            .iter()
            .map(|d| (d.key.as_str(), d.mapping.as_str(), d.first, d.second))
            .collect();
        assert_eq!(
            d,
            [
                (
                    "ref",
                    "chain.0",
                    Pos { line: 4, col: 5 },
                    Pos { line: 5, col: 5 }
                ),
                ("name", "", Pos { line: 1, col: 1 }, Pos { line: 7, col: 1 }),
                (
                    "k",
                    "flow",
                    Pos { line: 8, col: 8 },
                    Pos { line: 8, col: 14 }
                ),
            ]
        );
    }
}
