//! The cache of `TokenReview` answers. It is keyed by the SHA-256 digest of the token
//! (the token itself is never kept), and accepted and rejected tokens live in separate
//! bounded [`TtlCache`]s: rejections briefly, and a flood of made-up tokens can only
//! displace other rejections, never the users that authenticated.

use std::time::Duration;

use crate::auth::User;
use crate::ttl_cache::TtlCache;

/// Bounds and lifetimes of the token cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenCacheConfig {
    /// How many accepted tokens are remembered.
    pub max_accepted: usize,
    /// How long an accepted token is trusted without a new review (kubelet: 2 min).
    pub accepted_ttl: Duration,
    /// How many rejected tokens are remembered.
    pub max_rejected: usize,
    /// How long a rejected token is refused without a new review.
    pub rejected_ttl: Duration,
}

impl Default for TokenCacheConfig {
    /// 4,096 accepted tokens for 2 min, 1,024 rejected ones for 10 s.
    fn default() -> Self {
        Self {
            max_accepted: 4096,
            accepted_ttl: Duration::from_secs(120),
            max_rejected: 1024,
            rejected_ttl: Duration::from_secs(10),
        }
    }
}

/// The SHA-256 digest of a token: what the cache keys on.
pub type TokenDigest = [u8; 32];

/// The digest of `token`.
pub fn digest(token: &str) -> TokenDigest {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref());
    out
}

/// Review answers by token digest.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use vk_node_api::token_cache::{TokenCache, TokenCacheConfig, digest};
///
/// let mut cache = TokenCache::new(TokenCacheConfig::default());
/// cache.insert(digest("made-up"), None);
/// assert_eq!(cache.get(&digest("made-up")), Some(None)); // known to be rejected
/// assert_eq!(cache.get(&digest("other")), None); // not known
/// # }
/// ```
#[derive(Debug)]
pub struct TokenCache {
    config: TokenCacheConfig,
    accepted: TtlCache<TokenDigest, User>,
    rejected: TtlCache<TokenDigest, ()>,
}

impl TokenCache {
    /// An empty cache.
    pub fn new(config: TokenCacheConfig) -> Self {
        Self {
            accepted: TtlCache::new(config.max_accepted),
            rejected: TtlCache::new(config.max_rejected),
            config,
        }
    }

    /// The remembered answer: `Some(Some(user))` accepted, `Some(None)` rejected,
    /// `None` unknown or expired.
    pub fn get(&mut self, token: &TokenDigest) -> Option<Option<User>> {
        if let Some(user) = self.accepted.get(token) {
            return Some(Some(user));
        }
        self.rejected.get(token).map(|()| None)
    }

    /// Remembers the answer for `token` (`None`: rejected).
    pub fn insert(&mut self, token: TokenDigest, user: Option<User>) {
        match user {
            Some(user) => self.accepted.insert(token, user, self.config.accepted_ttl),
            None => self.rejected.insert(token, (), self.config.rejected_ttl),
        }
    }

    /// How many accepted and rejected tokens are stored.
    pub fn len(&self) -> (usize, usize) {
        (self.accepted.len(), self.rejected.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> User {
        User {
            name: name.into(),
            uid: None,
            groups: Vec::new(),
            extra: Default::default(),
        }
    }

    #[test]
    fn the_digest_is_sha256() {
        assert_eq!(
            digest("abc")[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "SHA-256(\"abc\") = ba7816bf..."
        );
        assert_ne!(digest("abc"), digest("abd"));
    }

    #[tokio::test(start_paused = true)]
    async fn rejections_are_kept_briefly_and_acceptances_longer() {
        let mut cache = TokenCache::new(TokenCacheConfig::default());
        cache.insert(digest("good"), Some(user("alice")));
        cache.insert(digest("bad"), None);
        assert_eq!(cache.get(&digest("bad")), Some(None));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(cache.get(&digest("bad")), None, "rejections last 10 s");
        assert_eq!(cache.get(&digest("good")), Some(Some(user("alice"))));
        tokio::time::advance(Duration::from_secs(110)).await;
        assert_eq!(cache.get(&digest("good")), None, "acceptances last 2 min");
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_rejections_never_displaces_accepted_users() {
        let config = TokenCacheConfig {
            max_rejected: 8,
            ..Default::default()
        };
        let mut cache = TokenCache::new(config);
        cache.insert(digest("good"), Some(user("alice")));
        for i in 0..1000 {
            cache.insert(digest(&format!("made-up-{i}")), None);
        }
        assert_eq!(cache.len(), (1, 8));
        assert_eq!(cache.get(&digest("good")), Some(Some(user("alice"))));
    }
}
