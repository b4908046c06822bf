//! Turning an HTTP bearer credential into a [`Verified`] caller: an API key (`mwk_…`,
//! looked up by its SHA-256 among the configured hashes) or a JWT (see `jwt`). Nothing
//! else a request carries (headers, `_meta`, arguments) can add to the chain.

use sha2::{Digest, Sha256};

use super::jwt::Keys;
use super::{AuthError, Credential, Verified};
use crate::config::{ApiKeyConfig, Config};

/// Every API key starts with this, so it is never mistaken for a JWT.
pub const API_KEY_PREFIX: &str = "mwk_";

/// Verifies HTTP callers' credentials.
pub struct Authenticator {
    api_keys: Vec<ApiKeyConfig>,
    jwt: Option<Keys>,
    max_chain_depth: usize,
}

impl Authenticator {
    /// Load what verification needs (JWKS files and URLs, secrets); `None` when the
    /// configuration asks HTTP callers for no credential.
    pub async fn load(config: &Config) -> Result<Option<Self>, String> {
        if !config.authenticates() {
            return Ok(None);
        }
        let jwt = match &config.live.auth {
            Some(auth) if !auth.issuers.is_empty() => Some(Keys::load(auth).await?),
            _ => None,
        };
        Ok(Some(Self {
            api_keys: config.live.api_keys.clone(),
            jwt,
            max_chain_depth: config.live.auth.as_ref().map_or(4, |a| a.max_chain_depth),
        }))
    }

    /// Verify a bearer credential.
    pub async fn verify(&self, bearer: &str) -> Result<Verified, AuthError> {
        if bearer.starts_with(API_KEY_PREFIX) {
            return self.api_key(bearer);
        }
        match &self.jwt {
            Some(keys) => keys.verify(bearer).await,
            None => Err(AuthError::Invalid(
                "this gateway accepts API keys only (`mwk_…`)".into(),
            )),
        }
    }

    fn api_key(&self, key: &str) -> Result<Verified, AuthError> {
        let hash = hex::encode(Sha256::digest(key.as_bytes()));
        let found = self
            .api_keys
            .iter()
            .find(|k| k.sha256 == hash)
            .ok_or_else(|| AuthError::Invalid("unknown API key".into()))?;
        let agents = vec![found.agent.clone()];
        super::check_chain(found.on_behalf_of.as_deref(), &agents, self.max_chain_depth)?;
        Ok(Verified {
            task: None,
            principal: found.on_behalf_of.clone(),
            agents,
            credential: Credential {
                kind: "api_key",
                issuer: None,
                jti: None,
            },
        })
    }
}

/// A fresh API key and its SHA-256 (hex), for `[[identity.api_keys]]`.
pub fn new_api_key() -> (String, String) {
    let random = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let key = format!("{API_KEY_PREFIX}{random}");
    let hash = hex::encode(Sha256::digest(key.as_bytes()));
    (key, hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_hashes_to_the_hash_it_is_printed_with() {
        let (key, hash) = new_api_key();
        assert!(key.starts_with(API_KEY_PREFIX) && key.len() > 60);
        assert_eq!(hex::encode(Sha256::digest(key.as_bytes())), hash);
        assert_ne!(new_api_key().0, key);
    }
}
