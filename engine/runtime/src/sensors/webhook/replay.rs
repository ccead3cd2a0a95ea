//! The bounded memory of signed webhook calls already accepted, per sensor.
//!
//! A call is *claimed* before its trigger is accepted (so two concurrent copies cannot both
//! pass) and *released* when the trigger is then refused (queue full, store error), so a
//! sender's retry of a refused call is not mistaken for a replay. Entries are forgotten
//! when their window ends — after that the timestamp check refuses the call anyway
//! (`squall` scheme) — or, when a sensor holds [`MAX_ENTRIES`] unexpired entries, oldest
//! first.

use super::signing::Refusal;
use squall_core::locks::MutexExt;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

/// Most entries remembered per sensor.
pub const MAX_ENTRIES: usize = 100_000;

/// What a verified call asks to be remembered: its keys (a signature, a delivery id — each
/// with what it is, for the refusal message) until `expires_at` (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// 32-byte keys with their kind.
    pub keys: Vec<([u8; 32], &'static str)>,
    /// When the entries may be forgotten.
    pub expires_at: i64,
}

#[derive(Default)]
struct Seen {
    expiry: HashMap<[u8; 32], i64>,
    order: BTreeSet<(i64, [u8; 32])>,
}

impl Seen {
    fn forget_until(&mut self, now: i64) {
        while let Some(&(at, key)) = self.order.first() {
            if at >= now {
                break;
            }
            self.order.remove(&(at, key));
            self.expiry.remove(&key);
        }
    }
}

/// Signed calls accepted recently, per sensor reference.
#[derive(Default)]
pub struct ReplayGuard {
    sensors: Mutex<HashMap<String, Seen>>,
}

impl ReplayGuard {
    /// Register `claim` for `sensor` at Unix time `now`; refused when one of its keys is
    /// still remembered.
    pub fn claim(&self, sensor: &str, claim: &Claim, now: i64) -> Result<(), Refusal> {
        let mut sensors = self.sensors.locked();
        let seen = sensors.entry(sensor.to_string()).or_default();
        seen.forget_until(now);
        if let Some((_, what)) = claim
            .keys
            .iter()
            .find(|(k, _)| seen.expiry.get(k).is_some_and(|at| *at >= now))
        {
            return Err(Refusal::Replayed(format!(
                "this {what} was already accepted: a signed webhook call is accepted once; send a new one"
            )));
        }
        for (key, _) in &claim.keys {
            while seen.order.len() >= MAX_ENTRIES {
                if let Some(first) = seen.order.pop_first() {
                    seen.expiry.remove(&first.1);
                }
            }
            if let Some(old) = seen.expiry.insert(*key, claim.expires_at) {
                seen.order.remove(&(old, *key));
            }
            seen.order.insert((claim.expires_at, *key));
        }
        Ok(())
    }

    /// [`claim`](Self::claim), held until [`Held::keep`]: dropped without it (the trigger
    /// was not accepted, or the request ended early), the claim is released.
    pub fn hold<'a>(&'a self, sensor: &str, claim: Claim, now: i64) -> Result<Held<'a>, Refusal> {
        self.claim(sensor, &claim, now)?;
        Ok(Held {
            guard: self,
            sensor: sensor.to_string(),
            claim: Some(claim),
        })
    }

    /// Forget `claim` again (its trigger was not accepted).
    pub fn release(&self, sensor: &str, claim: &Claim) {
        let mut sensors = self.sensors.locked();
        if let Some(seen) = sensors.get_mut(sensor) {
            for (key, _) in &claim.keys {
                if let Some(at) = seen.expiry.remove(key) {
                    seen.order.remove(&(at, *key));
                }
            }
        }
    }

    /// Entries remembered for `sensor` (for tests and diagnostics).
    pub fn len(&self, sensor: &str) -> usize {
        let sensors = self.sensors.locked();
        sensors.get(sensor).map_or(0, |s| s.expiry.len())
    }

    /// Whether nothing is remembered for `sensor`.
    pub fn is_empty(&self, sensor: &str) -> bool {
        self.len(sensor) == 0
    }
}

/// A claim registered with a [`ReplayGuard`] and released when dropped, unless kept.
pub struct Held<'a> {
    guard: &'a ReplayGuard,
    sensor: String,
    claim: Option<Claim>,
}

impl Held<'_> {
    /// The trigger was accepted: remember the claim until it expires.
    pub fn keep(mut self) {
        self.claim = None;
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.claim.take() {
            self.guard.release(&self.sensor, &c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(byte: u8, expires_at: i64) -> Claim {
        Claim {
            keys: vec![([byte; 32], "signature")],
            expires_at,
        }
    }

    #[test]
    fn a_claim_is_accepted_once_until_it_expires_or_is_released() {
        let g = ReplayGuard::default();
        assert!(g.claim("s.a", &claim(1, 100), 10).is_ok());
        let again = g.claim("s.a", &claim(1, 100), 20).unwrap_err();
        assert!(
            matches!(&again, Refusal::Replayed(m) if m.contains("signature was already accepted")),
            "{again:?}"
        );
        // Another sensor has its own memory.
        assert!(g.claim("s.b", &claim(1, 100), 20).is_ok());
        // Released (its trigger was refused): the retry passes.
        g.release("s.a", &claim(1, 100));
        assert!(g.claim("s.a", &claim(1, 100), 30).is_ok());
        // Expired: forgotten.
        assert!(g.claim("s.a", &claim(1, 200), 101).is_ok());
        assert_eq!(g.len("s.a"), 1);
    }

    #[test]
    fn a_held_claim_is_released_unless_kept() {
        let g = ReplayGuard::default();
        drop(g.hold("s", claim(1, 100), 0).unwrap());
        assert!(g.is_empty("s"), "dropped: released");
        let held = g.hold("s", claim(1, 100), 0).unwrap();
        assert!(g.hold("s", claim(1, 100), 0).is_err(), "held: refused");
        held.keep();
        assert!(
            g.hold("s", claim(1, 100), 1).is_err(),
            "kept: still refused"
        );
        assert_eq!(g.len("s"), 1);
    }

    #[test]
    fn any_key_of_a_claim_that_was_seen_refuses_it() {
        let g = ReplayGuard::default();
        let first = Claim {
            keys: vec![([7; 32], "delivery id"), ([8; 32], "signature")],
            expires_at: 100,
        };
        g.claim("s", &first, 0).unwrap();
        let new_id_same_signature = Claim {
            keys: vec![([9; 32], "delivery id"), ([8; 32], "signature")],
            expires_at: 100,
        };
        let e = g.claim("s", &new_id_same_signature, 1).unwrap_err();
        assert_eq!(
            e,
            Refusal::Replayed(
                "this signature was already accepted: a signed webhook call is accepted once; send a new one".into()
            )
        );
        // The refused claim left nothing behind.
        assert_eq!(g.len("s"), 2);
    }

    #[test]
    fn memory_is_bounded_oldest_first() {
        let g = ReplayGuard::default();
        for i in 0..(MAX_ENTRIES + 10) {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let c = Claim {
                keys: vec![(key, "signature")],
                expires_at: 1_000 + i as i64,
            };
            g.claim("s", &c, 0).unwrap();
        }
        assert_eq!(g.len("s"), MAX_ENTRIES);
        // The newest is still refused; the oldest was forgotten.
        let mut newest = [0u8; 32];
        newest[..8].copy_from_slice(&((MAX_ENTRIES + 9) as u64).to_le_bytes());
        assert!(g
            .claim(
                "s",
                &Claim {
                    keys: vec![(newest, "signature")],
                    expires_at: 5_000
                },
                0
            )
            .is_err());
        assert!(g
            .claim(
                "s",
                &Claim {
                    keys: vec![([0; 32], "signature")],
                    expires_at: 5_000
                },
                0
            )
            .is_ok());
    }
}
