//! Standard locks that keep working after a panic elsewhere.
//!
//! A thread that panics while holding a `std::sync` lock poisons it. Every lock in Squall
//! guards state that stays consistent between statements (maps of tokens, caches,
//! counters), so the right answer to poison is to go on with the data as it is — not to
//! spread the panic to every later caller. These helpers say that once instead of at every
//! call site.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// `Mutex::lock` that takes the data of a poisoned lock as it is.
pub trait MutexExt<T: ?Sized> {
    /// Lock, ignoring poison.
    fn locked(&self) -> MutexGuard<'_, T>;
}

impl<T: ?Sized> MutexExt<T> for Mutex<T> {
    fn locked(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `RwLock::read`/`write` that take the data of a poisoned lock as it is.
pub trait RwLockExt<T: ?Sized> {
    /// Lock for reading, ignoring poison.
    fn read_locked(&self) -> RwLockReadGuard<'_, T>;
    /// Lock for writing, ignoring poison.
    fn write_locked(&self) -> RwLockWriteGuard<'_, T>;
}

impl<T: ?Sized> RwLockExt<T> for RwLock<T> {
    fn read_locked(&self) -> RwLockReadGuard<'_, T> {
        self.read().unwrap_or_else(|e| e.into_inner())
    }
    fn write_locked(&self) -> RwLockWriteGuard<'_, T> {
        self.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_poisoned_lock_still_gives_its_data() {
        let m = Arc::new(Mutex::new(1));
        let r = Arc::new(RwLock::new(2));
        let (m2, r2) = (m.clone(), r.clone());
        let _ = std::thread::spawn(move || {
            let _g = m2.lock().unwrap();
            let _w = r2.write().unwrap();
            panic!("poison both");
        })
        .join();
        assert!(m.is_poisoned() && r.is_poisoned());
        *m.locked() += 1;
        *r.write_locked() += 1;
        assert_eq!((*m.locked(), *r.read_locked()), (2, 3));
    }
}
