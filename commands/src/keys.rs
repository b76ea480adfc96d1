//! API key secrets. A key reads `blz_<key id, 32 hex>_<secret, 64 hex>`; only the SHA-256 of the whole
//! key is stored (outside the event log), found by key id and compared in constant time. The secret
//! carries 256 random bits, so a fast hash is the right tool (no password stretching needed).

use blazz_domain::ids::{AgentId, ApiKeyId};
use blazz_domain::role::Role;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// A freshly generated key; `secret` is shown to the caller once and never stored.
#[derive(Clone)]
pub struct GeneratedKey {
    pub id: ApiKeyId,
    pub secret: String,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey").field("id", &self.id).field("secret", &"<redacted>").finish()
    }
}

pub fn generate() -> GeneratedKey {
    let id = ApiKeyId::from_uuid(Uuid::now_v7());
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    GeneratedKey { id, secret: format!("blz_{}_{}", id.as_uuid().simple(), hex::encode(bytes)) }
}

/// Hex SHA-256 of a presented key.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The key id inside a presented key, if it has the right shape.
pub fn key_id(secret: &str) -> Option<ApiKeyId> {
    let rest = secret.strip_prefix("blz_")?;
    let (id, tail) = rest.split_once('_')?;
    if id.len() != 32 || tail.len() != 64 || !tail.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Uuid::try_parse(id).ok().map(ApiKeyId::from_uuid)
}

/// Constant-time comparison of a presented key against a stored hash.
pub fn verify(secret: &str, stored_hash: &str) -> bool {
    hash(secret).as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

/// What is stored for a key (outside the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub workspace_id: Uuid,
    pub hash: String,
    /// For a key bound to an agent: the agent's role when the key was looked up.
    pub role: Role,
    pub agent_id: Option<AgentId>,
    /// False when the key's agent is deactivated.
    pub agent_active: bool,
}

/// Stored keys remembered for a short time, so a request needs no database round trip to
/// authenticate. Revoking a key forgets it at once on the node that revoked it; other nodes stop
/// accepting it within the time to live.
#[derive(Debug)]
pub struct KeyCache {
    ttl: Duration,
    entries: Mutex<HashMap<ApiKeyId, (StoredKey, Instant)>>,
}

/// Most keys remembered at once; beyond that the cache starts over.
const KEY_CACHE_CAPACITY: usize = 100_000;

impl KeyCache {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, entries: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ApiKeyId, (StoredKey, Instant)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, id: ApiKeyId) -> Option<StoredKey> {
        let entries = self.lock();
        entries.get(&id).filter(|(_, at)| at.elapsed() < self.ttl).map(|(k, _)| k.clone())
    }

    pub fn put(&self, id: ApiKeyId, key: StoredKey) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= KEY_CACHE_CAPACITY {
            entries.clear();
        }
        entries.insert(id, (key, Instant::now()));
    }

    pub fn forget(&self, id: ApiKeyId) {
        self.lock().remove(&id);
    }

    /// Forgets every key bound to `agent` (its role or activity changed).
    pub fn forget_agent(&self, agent: AgentId) {
        self.lock().retain(|_, (k, _)| k.agent_id != Some(agent));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_verify() {
        let k = generate();
        assert_eq!(key_id(&k.secret), Some(k.id));
        let h = hash(&k.secret);
        assert!(verify(&k.secret, &h));
        let mut wrong = k.secret.clone();
        wrong.pop();
        wrong.push('x');
        assert!(!verify(&wrong, &h));
        assert_eq!(key_id(&wrong), None);
        assert_eq!(key_id("Bearer nonsense"), None);
        assert!(!format!("{k:?}").contains(&k.secret[40..]));
    }

    #[test]
    fn the_key_cache_expires_and_forgets() {
        let id = generate().id;
        let stored = StoredKey {
            workspace_id: Uuid::nil(),
            hash: "h".into(),
            role: Role::Agent,
            agent_id: None,
            agent_active: true,
        };
        let cache = KeyCache::new(Duration::from_secs(60));
        cache.put(id, stored.clone());
        assert_eq!(cache.get(id), Some(stored.clone()));
        cache.forget(id);
        assert_eq!(cache.get(id), None);
        let agent = AgentId::from_uuid(Uuid::from_u128(7));
        let (other, bound) = (generate().id, StoredKey { agent_id: Some(agent), ..stored.clone() });
        cache.put(id, bound);
        cache.put(other, stored.clone());
        cache.forget_agent(agent);
        assert_eq!((cache.get(id), cache.get(other)), (None, Some(stored.clone())));
        let off = KeyCache::new(Duration::ZERO);
        off.put(id, stored);
        assert_eq!(off.get(id), None);
    }
}
