//! The set of secret values: which values are kept, which may be forgotten, and the
//! multi-pattern matcher built from them.
//!
//! Every value has a *tick* (a counter bumped by every registration, pin release and
//! execution start). A value is **pinned** while something that uses it is alive (the
//! loaded content's `${env:}`/`${file:}` values, pack configuration, API tokens), and
//! **protected** while an execution that was already running when the value was last
//! registered is still running (its tick is newer than the oldest live [`Hold`]). Only values
//! that are neither are forgotten, oldest first, and only when more than the cap are kept.

use super::matcher::Matcher;
use crate::locks::RwLockExt;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

/// Values shorter than this are not registered: masking `1` or `no` everywhere would
/// destroy output without protecting anything.
pub const MIN_SECRET_LEN: usize = 4;

/// At most this many unpinned values are kept (pinned and protected ones do not count
/// towards eviction, see the module documentation).
pub const MAX_KEPT: usize = 4096;

/// At most this many bytes of unpinned values are kept.
pub const MAX_KEPT_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, Copy)]
struct Entry {
    tick: u64,
    pins: u32,
    permanent: bool,
}

impl Entry {
    fn evictable(&self) -> bool {
        self.pins == 0 && !self.permanent
    }
}

#[derive(Default)]
struct Inner {
    entries: HashMap<Arc<str>, Entry>,
    /// Evictable values by tick (oldest first).
    lru: BTreeMap<u64, Arc<str>>,
    /// Bytes of the values in `lru`.
    lru_bytes: usize,
    /// Start ticks of live holds (running executions).
    holds: BTreeSet<u64>,
    tick: u64,
    matcher: Option<Arc<Matcher>>,
    evicted: u64,
}

/// A set of secret values with bounded growth (see the module documentation).
pub struct Registry {
    inner: RwLock<Inner>,
    len: AtomicUsize,
    max_kept: usize,
    max_bytes: usize,
}

/// Figures about a registry, for benchmarks and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Values known now.
    pub known: usize,
    /// Values that could be forgotten (not pinned).
    pub unpinned: usize,
    /// Values forgotten so far.
    pub evicted: u64,
}

impl Registry {
    /// An empty registry that keeps at most `max_kept` values and `max_bytes` bytes of
    /// unpinned values.
    pub fn new(max_kept: usize, max_bytes: usize) -> Registry {
        Registry {
            inner: RwLock::new(Inner::default()),
            len: AtomicUsize::new(0),
            max_kept,
            max_bytes,
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write_locked()
    }

    /// Remember `value` (or refresh it: it becomes the most recent).
    pub fn register(&self, value: &str) {
        if value.len() < MIN_SECRET_LEN {
            return;
        }
        let mut g = self.write();
        self.touch(&mut g, value);
        self.evict(&mut g);
    }

    /// Remember `value` for the life of the process.
    pub fn keep(&self, value: &str) {
        if value.len() < MIN_SECRET_LEN {
            return;
        }
        let mut g = self.write();
        let key = self.touch(&mut g, value);
        let e = g.entries.get_mut(&key).copied();
        if let Some(mut e) = e {
            if e.evictable() {
                unlink(&mut g, &key, e.tick);
            }
            e.permanent = true;
            g.entries.insert(key, e);
        }
    }

    /// Pin `value`: it is not forgotten until as many [`Registry::unpin`] calls.
    pub fn pin(&self, value: &str) {
        if value.len() < MIN_SECRET_LEN {
            return;
        }
        let mut g = self.write();
        let key = self.touch(&mut g, value);
        if let Some(mut e) = g.entries.get(&key).copied() {
            if e.evictable() {
                unlink(&mut g, &key, e.tick);
            }
            e.pins += 1;
            g.entries.insert(key, e);
        }
    }

    /// Release one pin of `value`; when none is left it becomes the most recent
    /// unpinned value (so executions running now keep it masked until they end).
    pub fn unpin(&self, value: &str) {
        let mut g = self.write();
        let Some((key, mut e)) = g.entries.get_key_value(value).map(|(k, e)| (k.clone(), *e))
        else {
            return;
        };
        if e.pins == 0 {
            return;
        }
        e.pins -= 1;
        if e.evictable() {
            g.tick += 1;
            e.tick = g.tick;
            g.lru.insert(e.tick, key.clone());
            g.lru_bytes += key.len();
        }
        g.entries.insert(key, e);
        self.evict(&mut g);
    }

    /// Start a hold: values registered from now on are not forgotten before it ends.
    pub fn hold_start(&self) -> u64 {
        let mut g = self.write();
        g.tick += 1;
        let t = g.tick;
        g.holds.insert(t);
        t
    }

    /// End the hold started at `tick`.
    pub fn hold_end(&self, tick: u64) {
        let mut g = self.write();
        g.holds.remove(&tick);
        self.evict(&mut g);
    }

    /// Insert or refresh `value`; returns its key.
    fn touch(&self, g: &mut Inner, value: &str) -> Arc<str> {
        g.tick += 1;
        let tick = g.tick;
        if let Some((key, e)) = g.entries.get_key_value(value).map(|(k, e)| (k.clone(), *e)) {
            if e.evictable() {
                g.lru.remove(&e.tick);
                g.lru.insert(tick, key.clone());
            }
            g.entries.insert(key.clone(), Entry { tick, ..e });
            return key;
        }
        let key: Arc<str> = Arc::from(value);
        g.entries.insert(
            key.clone(),
            Entry {
                tick,
                pins: 0,
                permanent: false,
            },
        );
        g.lru.insert(tick, key.clone());
        g.lru_bytes += key.len();
        g.matcher = None;
        self.len.store(g.entries.len(), Ordering::Release);
        key
    }

    /// Forget the oldest unpinned values while over the cap, but none that a live hold
    /// protects.
    fn evict(&self, g: &mut Inner) {
        let floor = g.holds.first().copied().unwrap_or(u64::MAX);
        while g.lru.len() > self.max_kept || g.lru_bytes > self.max_bytes {
            let Some((&tick, key)) = g.lru.first_key_value() else {
                break;
            };
            if tick >= floor {
                break;
            }
            let key = key.clone();
            g.lru.remove(&tick);
            g.lru_bytes -= key.len();
            g.entries.remove(&key);
            g.matcher = None;
            g.evicted += 1;
        }
        self.len.store(g.entries.len(), Ordering::Release);
    }

    /// True when no value is known.
    pub fn is_empty(&self) -> bool {
        self.len.load(Ordering::Acquire) == 0
    }

    /// Whether `value` is known.
    pub fn contains(&self, value: &str) -> bool {
        let g = self.inner.read_locked();
        g.entries.contains_key(value)
    }

    /// The matcher for the values known now, built when the set changed since the last
    /// call.
    pub fn matcher(&self) -> Arc<Matcher> {
        {
            let g = self.inner.read_locked();
            if let Some(m) = &g.matcher {
                return m.clone();
            }
        }
        let mut g = self.write();
        if let Some(m) = &g.matcher {
            return m.clone();
        }
        let m = Arc::new(Matcher::new(g.entries.keys().cloned().collect()));
        g.matcher = Some(m.clone());
        m
    }

    /// Figures about the set.
    pub fn stats(&self) -> Stats {
        let g = self.inner.read_locked();
        Stats {
            known: g.entries.len(),
            unpinned: g.lru.len(),
            evicted: g.evicted,
        }
    }
}

/// Take an evictable entry out of the LRU index (it is being pinned).
fn unlink(g: &mut Inner, key: &Arc<str>, tick: u64) {
    if g.lru.remove(&tick).is_some() {
        g.lru_bytes -= key.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(i: usize) -> String {
        format!("secret-value-{i:05}")
    }

    #[test]
    fn the_oldest_unpinned_values_are_forgotten_beyond_the_cap() {
        let r = Registry::new(10, usize::MAX);
        for i in 0..25 {
            r.register(&v(i));
        }
        assert_eq!(r.stats().known, 10);
        assert_eq!(r.stats().evicted, 15);
        assert!(!r.contains(&v(14)));
        assert!(r.contains(&v(15)) && r.contains(&v(24)));
    }

    #[test]
    fn registering_again_makes_a_value_recent() {
        let r = Registry::new(3, usize::MAX);
        r.register(&v(0));
        r.register(&v(1));
        r.register(&v(2));
        r.register(&v(0));
        r.register(&v(3));
        assert!(r.contains(&v(0)), "refreshed value kept");
        assert!(!r.contains(&v(1)), "oldest value forgotten");
    }

    #[test]
    fn pinned_and_kept_values_are_never_forgotten() {
        let r = Registry::new(2, usize::MAX);
        r.pin("pinned-value-1");
        r.keep("kept-value-2");
        for i in 0..50 {
            r.register(&v(i));
        }
        assert!(r.contains("pinned-value-1") && r.contains("kept-value-2"));
        assert_eq!(r.stats().unpinned, 2);
        // Released, it is the newest unpinned value and is forgotten in its turn.
        r.unpin("pinned-value-1");
        assert!(r.contains("pinned-value-1"));
        r.register(&v(100));
        r.register(&v(101));
        assert!(!r.contains("pinned-value-1"));
        assert!(r.contains("kept-value-2"));
    }

    #[test]
    fn values_registered_during_a_live_hold_are_kept_until_it_ends() {
        let r = Registry::new(2, usize::MAX);
        r.register(&v(0));
        let hold = r.hold_start();
        for i in 1..20 {
            r.register(&v(i));
        }
        // v(0) was older than the hold: forgotten; everything since is protected.
        assert!(!r.contains(&v(0)));
        assert_eq!(r.stats().known, 19);
        r.hold_end(hold);
        assert_eq!(r.stats().known, 2);
        assert!(r.contains(&v(18)) && r.contains(&v(19)));
    }

    #[test]
    fn a_value_unpinned_during_a_hold_stays_until_the_hold_ends() {
        let r = Registry::new(1, usize::MAX);
        r.pin("content-value-a");
        let hold = r.hold_start();
        r.unpin("content-value-a");
        r.register(&v(1));
        r.register(&v(2));
        assert!(r.contains("content-value-a"));
        r.hold_end(hold);
        assert!(!r.contains("content-value-a"));
        assert!(r.contains(&v(2)));
    }

    #[test]
    fn the_byte_cap_bounds_the_unpinned_values() {
        let r = Registry::new(usize::MAX, 100);
        for i in 0..50 {
            r.register(&v(i)); // 18 bytes each
        }
        assert_eq!(r.stats().known, 5);
    }

    #[test]
    fn the_matcher_is_rebuilt_only_when_the_set_changes() {
        let r = Registry::new(100, usize::MAX);
        r.register(&v(1));
        let a = r.matcher();
        r.register(&v(1));
        assert!(Arc::ptr_eq(&a, &r.matcher()), "refresh keeps the matcher");
        r.register(&v(2));
        assert!(!Arc::ptr_eq(&a, &r.matcher()), "a new value rebuilds it");
    }
}
