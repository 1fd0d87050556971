//! Tokens already verified, so a caller's next request skips the signature check.
//!
//! Checking an Ed25519 signature was 30 % of the gateway's CPU per order and 6 % of
//! order-service's, and a signed-in client sends the same token with every request until
//! it expires. A hit is keyed by the whole token, so it stands only for the exact bytes
//! whose signature was checked; its expiry is checked on every use; and the cache is
//! emptied whenever the keys are fetched again, so a key gone from the new set stops its
//! tokens from then on. A check that began before such a fetch remembers nothing.

use std::collections::HashMap;
use std::sync::Mutex;

use super::Caller;

/// How many tokens are kept at most; past that, expired ones are dropped, then all.
const CAPACITY: usize = 10_000;

/// What a verified token stands for, until when.
#[derive(Clone, Copy)]
struct Entry {
    caller: Caller,
    /// `exp`, seconds since the epoch.
    expires_at: i64,
}

/// Verified tokens and the callers they stand for.
#[derive(Default)]
pub(super) struct Verified {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    tokens: HashMap<Box<str>, Entry>,
    /// How many times the cache was emptied: a check that began under an older count
    /// used keys that may be gone, and its token is not remembered.
    generation: u64,
}

impl Verified {
    /// The caller of `token` if it was verified and is not expired at `now` (seconds),
    /// allowing `leeway` seconds as the signature check does.
    pub(super) fn get(&self, token: &str, now: i64, leeway: i64) -> Option<Caller> {
        let inner = self.lock();
        inner
            .tokens
            .get(token)
            .filter(|entry| entry.expires_at.saturating_add(leeway) >= now)
            .map(|entry| entry.caller)
    }

    /// The generation to give [`Verified::insert`]: taken before the keys are read.
    pub(super) fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Remembers that `token` verified as `caller`, valid until `expires_at` (seconds),
    /// unless the cache was emptied since `generation` was taken.
    pub(super) fn insert(&self, token: &str, caller: Caller, expires_at: i64, now: i64, generation: u64) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        let tokens = &mut inner.tokens;
        if tokens.len() >= CAPACITY {
            tokens.retain(|_, entry| entry.expires_at >= now);
            if tokens.len() >= CAPACITY {
                tokens.clear();
            }
        }
        tokens.insert(token.into(), Entry { caller, expires_at });
    }

    /// Forgets every token, and every check still under way: the keys they were checked
    /// with may be gone.
    pub(super) fn clear(&self) {
        let mut inner = self.lock();
        inner.tokens.clear();
        inner.generation += 1;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().tokens.len()
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::auth::Role;

    fn caller() -> Caller {
        Caller { user_id: Uuid::now_v7(), role: Role::User }
    }

    #[test]
    fn a_token_is_known_until_it_expires_with_the_leeway() {
        let verified = Verified::default();
        let alice = caller();
        verified.insert("token-a", alice, 1_000, 900, 0);
        assert_eq!(verified.get("token-a", 1_000, 5).map(|c| c.user_id), Some(alice.user_id));
        assert!(verified.get("token-a", 1_005, 5).is_some(), "within the leeway");
        assert!(verified.get("token-a", 1_006, 5).is_none(), "expired");
        assert!(verified.get("token-b", 900, 5).is_none(), "never verified");
        assert!(verified.get("token-", 900, 5).is_none(), "only the exact token");
    }

    #[test]
    fn when_full_the_expired_go_first_then_everything() {
        let verified = Verified::default();
        for i in 0..CAPACITY {
            // Half of them expire at 100, half at 10_000.
            let expires_at = if i % 2 == 0 { 100 } else { 10_000 };
            verified.insert(&format!("t{i}"), caller(), expires_at, 50, 0);
        }
        assert_eq!(verified.len(), CAPACITY);
        verified.insert("new", caller(), 10_000, 200, 0);
        assert_eq!(verified.len(), CAPACITY / 2 + 1, "the expired half dropped");
        assert!(verified.get("t1", 200, 0).is_some(), "a live token kept");

        for i in 0..CAPACITY {
            verified.insert(&format!("u{i}"), caller(), 10_000, 200, 0);
        }
        assert!(verified.len() <= CAPACITY, "never more than the capacity: {}", verified.len());
        assert!(verified.get("new", 200, 0).is_none(), "no expired one to drop, so all went");
    }

    #[test]
    fn clearing_forgets_every_token_and_every_check_under_way() {
        let verified = Verified::default();
        verified.insert("token-a", caller(), 1_000, 900, verified.generation());
        let under_way = verified.generation();
        verified.clear();
        assert!(verified.get("token-a", 900, 5).is_none());
        // A check that read the keys before they were fetched again.
        verified.insert("token-b", caller(), 1_000, 900, under_way);
        assert!(verified.get("token-b", 900, 5).is_none(), "checked with keys that may be gone");
        verified.insert("token-b", caller(), 1_000, 900, verified.generation());
        assert!(verified.get("token-b", 900, 5).is_some());
    }
}
