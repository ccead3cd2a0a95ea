//! Masking text that arrives in pieces (a runner's output): a secret split across two
//! pieces must be masked whole, so the tail of a piece that could be the start of a
//! secret is held back until the next piece or the end.

use super::matcher::Matcher;
use crate::model::MASK;

/// Masks one stream of text chunk by chunk. What [`StreamMasker::push`] returns never
/// contains a known secret, nor a part of one that the next chunk would complete; the
/// held-back tail (shorter than the longest secret) comes out of the next `push` or of
/// [`StreamMasker::finish`].
#[derive(Debug, Default)]
pub struct StreamMasker {
    held: String,
}

impl StreamMasker {
    /// A masker holding nothing.
    pub fn new() -> StreamMasker {
        StreamMasker::default()
    }

    /// Add `data`; returns the masked text that can be shown now (possibly empty).
    pub fn push(&mut self, data: &str) -> String {
        let m = super::global().matcher();
        self.push_with(&m, data)
    }

    /// [`StreamMasker::push`] against a given matcher.
    pub(crate) fn push_with(&mut self, m: &Matcher, data: &str) -> String {
        let mut text = std::mem::take(&mut self.held);
        text.push_str(data);
        if m.is_empty() {
            return text;
        }
        let found = m.find(&text);
        // Cut before the unfinished tail, but never inside a secret found whole: then cut
        // after it and look for an unfinished tail again from there.
        let mut cut = m.unfinished_tail(&text, 0);
        loop {
            let end = found
                .iter()
                .take_while(|(start, _, _)| *start < cut)
                .last()
                .map(|(_, end, _)| *end)
                .unwrap_or(0);
            if end <= cut {
                break;
            }
            cut = m.unfinished_tail(&text, end);
        }
        let mut out = String::with_capacity(cut);
        let mut at = 0;
        for (start, end, _) in found.iter().take_while(|(start, _, _)| *start < cut) {
            out.push_str(&text[at..*start]);
            out.push_str(MASK);
            at = *end;
        }
        out.push_str(&text[at..cut]);
        self.held = text[cut..].to_string();
        out
    }

    /// The held-back tail, masked: the stream has ended.
    pub fn finish(&mut self) -> String {
        self.finish_with(&super::global().matcher())
    }

    /// [`StreamMasker::finish`] against a given matcher.
    pub(crate) fn finish_with(&mut self, m: &Matcher) -> String {
        m.mask(&std::mem::take(&mut self.held))
    }

    /// Bytes held back now.
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn mk(values: &[&str]) -> Matcher {
        Matcher::new(values.iter().map(|v| Arc::from(*v)).collect())
    }

    /// Feed `chunks`, return everything emitted (the tail masked with `m` too).
    fn run(m: &Matcher, chunks: &[&str]) -> (Vec<String>, String) {
        let mut s = StreamMasker::new();
        let out: Vec<String> = chunks.iter().map(|c| s.push_with(m, c)).collect();
        let tail = s.finish_with(m);
        (out, tail)
    }

    #[test]
    fn a_secret_split_across_chunks_is_masked_whole() {
        let m = mk(&["hunter2-secret"]);
        let (out, tail) = run(&m, &["pw=hunter", "2-sec", "ret done\n"]);
        assert_eq!(out, vec!["pw=", "", "******** done\n"]);
        assert_eq!(tail, "");
        assert!(!out.concat().contains("hunter"));
    }

    #[test]
    fn a_tail_that_is_not_a_secret_after_all_comes_out_with_the_next_chunk() {
        let m = mk(&["hunter2-secret"]);
        let (out, tail) = run(&m, &["a hunt", "ing trip\n"]);
        assert_eq!(out, vec!["a ", "hunting trip\n"]);
        assert_eq!(tail, "");
    }

    #[test]
    fn the_held_tail_comes_out_at_the_end() {
        let m = mk(&["hunter2-secret"]);
        let (out, tail) = run(&m, &["ends with hunter2"]);
        assert_eq!(out, vec!["ends with "]);
        assert_eq!(tail, "hunter2");
    }

    #[test]
    fn text_without_a_possible_secret_is_not_held() {
        let m = mk(&["hunter2-secret"]);
        let (out, _) = run(&m, &["line one\n", "line two\n"]);
        assert_eq!(out, vec!["line one\n", "line two\n"]);
    }

    #[test]
    fn a_found_secret_that_reaches_into_the_tail_is_emitted_masked() {
        // "abcd" is found whole; "abcdef" could still follow from "abcde".
        let m = mk(&["abcd", "cdxyz1"]);
        let (out, tail) = run(&m, &["x abcd", "xyz1 y"]);
        assert_eq!(out.concat() + tail.as_str(), "x ********xyz1 y");
        let m2 = mk(&["abcd", "abcdef"]);
        let (out, tail) = run(&m2, &["x abcde", "f y"]);
        assert_eq!(out.concat() + tail.as_str(), "x ******** y");
    }

    #[test]
    fn every_split_of_a_text_gives_the_same_masked_output() {
        let m = mk(&["alpha-secret", "beta-secret-longer", "secret-b"]);
        let text = "1 alpha-secret 2 beta-secret-longer 3 secret-b 4 beta-secret 5";
        let whole = m.mask(text);
        for i in 0..=text.len() {
            for j in i..=text.len() {
                let (out, tail) = run(&m, &[&text[..i], &text[i..j], &text[j..]]);
                assert_eq!(out.concat() + tail.as_str(), whole, "split at {i},{j}");
            }
        }
    }
}
