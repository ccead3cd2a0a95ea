//! One multi-pattern matcher over every known secret (Aho-Corasick, leftmost-longest, so
//! a secret that contains another is masked whole), and the prefix test the output
//! stream needs to hold back a tail that could be the start of a secret.

use crate::model::MASK;
use aho_corasick::{AhoCorasick, MatchKind};
use std::sync::Arc;

/// A matcher built from a snapshot of the secret set.
pub struct Matcher {
    ac: Option<AhoCorasick>,
    /// The values, by pattern id; also the fallback when the automaton cannot be built.
    patterns: Vec<Arc<str>>,
    /// The values in byte order, for the prefix test.
    sorted: Vec<Arc<str>>,
    /// Whether some value starts with this byte.
    first: [bool; 256],
    /// Length of the longest value in bytes.
    max_len: usize,
}

impl Matcher {
    /// A matcher for `patterns` (no duplicates expected).
    pub fn new(patterns: Vec<Arc<str>>) -> Matcher {
        let ac = if patterns.is_empty() {
            None
        } else {
            match AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(patterns.iter().map(|p| p.as_bytes()))
            {
                Ok(ac) => Some(ac),
                Err(e) => {
                    tracing::error!(error = %e, secrets = patterns.len(), "cannot build the secret matcher; masking with a slower search");
                    None
                }
            }
        };
        let mut sorted = patterns.clone();
        sorted.sort();
        let mut first = [false; 256];
        for p in &patterns {
            if let Some(b) = p.as_bytes().first() {
                first[*b as usize] = true;
            }
        }
        let max_len = patterns.iter().map(|p| p.len()).max().unwrap_or(0);
        Matcher {
            ac,
            patterns,
            sorted,
            first,
            max_len,
        }
    }

    /// Heap bytes used by the automaton.
    pub fn memory(&self) -> usize {
        self.ac.as_ref().map_or(0, AhoCorasick::memory_usage)
    }

    /// True when there is nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Byte ranges of the secrets in `text`, in order, not overlapping; each with the
    /// value's pattern id.
    pub fn find(&self, text: &str) -> Vec<(usize, usize, usize)> {
        if self.patterns.is_empty() {
            return Vec::new();
        }
        match &self.ac {
            Some(ac) => ac
                .find_iter(text)
                .map(|m| (m.start(), m.end(), m.pattern().as_usize()))
                .collect(),
            None => self.find_slowly(text),
        }
    }

    /// Leftmost-longest by brute force (only when the automaton could not be built).
    fn find_slowly(&self, text: &str) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < text.len() {
            let best = self
                .patterns
                .iter()
                .enumerate()
                .filter_map(|(id, p)| text[at..].find(p.as_ref()).map(|i| (at + i, p.len(), id)))
                .min_by_key(|(start, len, _)| (*start, std::cmp::Reverse(*len)));
            match best {
                Some((start, len, id)) => {
                    out.push((start, start + len, id));
                    at = start + len;
                }
                None => break,
            }
        }
        out
    }

    /// The value with pattern id `id`.
    pub fn value(&self, id: usize) -> &Arc<str> {
        &self.patterns[id]
    }

    /// `text` with every secret replaced by the mask.
    pub fn mask(&self, text: &str) -> String {
        let found = self.find(text);
        if found.is_empty() {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (start, end, _) in found {
            out.push_str(&text[at..start]);
            out.push_str(MASK);
            at = end;
        }
        out.push_str(&text[at..]);
        out
    }

    /// The first position `>= from` where the rest of `text` is the beginning (and not
    /// the whole) of some secret — the tail a stream must hold back until more text
    /// comes; `text.len()` when there is none.
    pub fn unfinished_tail(&self, text: &str, from: usize) -> usize {
        let len = text.len();
        if self.max_len < 2 {
            return len;
        }
        let start = from.max(len.saturating_sub(self.max_len - 1));
        let bytes = text.as_bytes();
        (start..len)
            .find(|&i| {
                text.is_char_boundary(i) && self.first[bytes[i] as usize] && self.begins(&text[i..])
            })
            .unwrap_or(len)
    }

    /// Whether some secret is longer than `tail` and starts with it.
    fn begins(&self, tail: &str) -> bool {
        let i = self.sorted.partition_point(|p| p.as_ref() < tail);
        // Values starting with `tail` sort together, `tail` itself first.
        self.sorted[i..]
            .iter()
            .take(2)
            .any(|p| p.len() > tail.len() && p.starts_with(tail))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk(values: &[&str]) -> Matcher {
        Matcher::new(values.iter().map(|v| Arc::from(*v)).collect())
    }

    #[test]
    fn the_longest_secret_at_a_position_is_masked_whole() {
        let m = mk(&["abcd", "abcdef", "cdefgh"]);
        assert_eq!(m.mask("x abcdefgh y"), "x ********gh y");
        assert_eq!(m.mask("abcd cdefgh"), "******** ********");
        assert_eq!(m.mask("nothing here"), "nothing here");
    }

    #[test]
    fn the_slow_search_agrees_with_the_automaton() {
        let fast = mk(&["abcd", "abcdef", "cdefgh", "zzzz"]);
        let mut slow = mk(&["abcd", "abcdef", "cdefgh", "zzzz"]);
        slow.ac = None;
        for text in [
            "x abcdefgh y",
            "abcd cdefgh",
            "zzzzzz abc",
            "cdefghabcd",
            "",
        ] {
            assert_eq!(fast.find(text), slow.find(text), "{text}");
        }
    }

    #[test]
    fn an_unfinished_tail_is_the_start_of_a_longer_secret() {
        let m = mk(&["secret-one", "sec"]);
        assert_eq!(m.unfinished_tail("line with secr", 0), 10);
        assert_eq!(
            m.unfinished_tail("line with sec", 0),
            10,
            "sec could grow into secret-one"
        );
        assert_eq!(m.unfinished_tail("line ends here\n", 0), 15);
        assert_eq!(m.unfinished_tail("whole secret-one", 0), 16);
        assert_eq!(m.unfinished_tail("only after s", 12), 12);
    }

    #[test]
    fn an_unfinished_tail_starts_on_a_character_boundary() {
        let m = mk(&["é-secret-value"]);
        let text = "aaaé-sec";
        let at = m.unfinished_tail(text, 0);
        assert_eq!(&text[at..], "é-sec");
    }
}
