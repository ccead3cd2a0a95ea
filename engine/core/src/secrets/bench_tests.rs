//! Masking throughput with many secrets: run with
//! `cargo test --lib secrets::bench_tests -- --ignored --nocapture`. Prints figures; asserts
//! only that both ways mask the same.

use super::matcher::Matcher;
use super::registry::Registry;
use super::stream::StreamMasker;
use crate::model::MASK;
use std::sync::Arc;
use std::time::Instant;

/// The masking of before: every secret searched in turn, longest first.
fn mask_naively(secrets: &[String], text: &str) -> String {
    let mut found: Vec<&String> = secrets
        .iter()
        .filter(|s| text.contains(s.as_str()))
        .collect();
    if found.is_empty() {
        return text.to_string();
    }
    found.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_string();
    for s in found {
        out = out.replace(s.as_str(), MASK);
    }
    out
}

fn secret(i: usize) -> String {
    format!("pw-{:016x}", (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

#[test]
#[ignore = "benchmark: prints figures"]
fn masking_2_mb_of_output_with_8000_secrets() {
    let n = 8000;
    let secrets: Vec<String> = (0..n).map(secret).collect();
    // 2 MB of output in 64-byte lines; every 100th line holds a secret.
    let lines: Vec<String> = (0..32_768)
        .map(|i| {
            if i % 100 == 0 {
                format!(
                    "line {i:06} token={} end{}\n",
                    secret(i % n),
                    ".".repeat(20)
                )
            } else {
                format!("line {i:06} {}\n", "o".repeat(51))
            }
        })
        .collect();
    let bytes: usize = lines.iter().map(String::len).sum();

    let t = Instant::now();
    let registry = Registry::new(super::MAX_KEPT.max(n), usize::MAX);
    for s in &secrets {
        registry.register(s);
    }
    let registered = t.elapsed();
    let t = Instant::now();
    let m = registry.matcher();
    let built = t.elapsed();

    let t = Instant::now();
    let fast: Vec<String> = lines.iter().map(|l| m.mask(l)).collect();
    let automaton = t.elapsed();

    let t = Instant::now();
    let mut stream = StreamMasker::new();
    let mut streamed: String = lines.iter().map(|l| stream.push_with(&m, l)).collect();
    streamed.push_str(&stream.finish_with(&m));
    let stream_time = t.elapsed();

    // The search of before on 1/16 of the lines (it is slow), scaled.
    let some = &lines[..lines.len() / 16];
    let t = Instant::now();
    let slow: Vec<String> = some.iter().map(|l| mask_naively(&secrets, l)).collect();
    let naive = t.elapsed() * 16;
    assert_eq!(fast[..some.len()], slow[..]);
    assert_eq!(streamed, fast.concat());

    let small = Matcher::new(
        secrets
            .iter()
            .take(10)
            .map(|s| Arc::from(s.as_str()))
            .collect(),
    );
    let t = Instant::now();
    let _: Vec<String> = lines.iter().map(|l| small.mask(l)).collect();
    let ten = t.elapsed();

    // A new secret when the set is full rebuilds the automaton once.
    let full = Registry::new(super::MAX_KEPT, usize::MAX);
    for s in secrets.iter().take(super::MAX_KEPT) {
        full.register(s);
    }
    let _ = full.matcher();
    full.register("one-more-secret-value");
    let t = Instant::now();
    let _ = full.matcher();
    let rebuild = t.elapsed();

    println!(
        "rebuild after one new secret with {} known: {rebuild:?}",
        super::MAX_KEPT
    );
    println!("{bytes} bytes in {} lines, {n} secrets", lines.len());
    println!(
        "register {n}: {registered:?}; build the automaton: {built:?} ({} KiB)",
        m.memory() / 1024
    );
    println!("mask line by line: automaton {automaton:?}, stream masker {stream_time:?}, one-by-one search (before, scaled from 1/16) {naive:?}");
    println!("automaton with 10 secrets: {ten:?}");
}
