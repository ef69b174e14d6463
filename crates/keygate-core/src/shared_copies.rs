//! One shared copy of each value that many in-memory tokens repeat (a tenant id, an owner id, a
//! scope set), so that a million tokens of one tenant hold one copy of its id, not a million.
//! The server's verification cache and a client's replica both keep tokens this way.

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// Bounded: past `max` values it starts afresh. Values in use stay alive through the tokens
/// holding them; only sharing with later tokens is lost.
pub struct SharedCopies<T: ?Sized> {
    set: Mutex<HashSet<Arc<T>>>,
    max: usize,
}

impl<T: ?Sized> Default for SharedCopies<T> {
    fn default() -> Self {
        Self {
            set: Mutex::new(HashSet::new()),
            max: 65_536,
        }
    }
}

impl<T: ?Sized + Eq + Hash> SharedCopies<T> {
    /// The shared copy of `value`, made by `share` when there is none yet.
    pub fn of(&self, value: &T, share: impl FnOnce() -> Arc<T>) -> Arc<T> {
        let mut set = self.set.lock().expect("shared copies lock");
        if let Some(shared) = set.get(value) {
            return shared.clone();
        }
        if set.len() >= self.max {
            set.clear();
        }
        let shared = share();
        set.insert(shared.clone());
        shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_share_one_copy_until_the_bound() {
        let copies = SharedCopies::<str> {
            set: Mutex::new(HashSet::new()),
            max: 2,
        };
        let a = copies.of("tenant", || Arc::from("tenant"));
        let b = copies.of("tenant", || Arc::from("tenant"));
        assert!(Arc::ptr_eq(&a, &b));
        copies.of("other", || Arc::from("other"));
        // Full: the next new value starts a fresh set, and "tenant" gets a new copy.
        copies.of("third", || Arc::from("third"));
        let c = copies.of("tenant", || Arc::from("tenant"));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(&*a, &*c);
    }
}
