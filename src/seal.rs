//! Sealing state that a client carries between the rounds of one request (MRTR
//! `requestState`): AES-256-GCM under a key only this gateway holds, bound through the
//! associated data to what the state is for (the caller's chain, the tool and the exact
//! call), with an expiry inside. A sealed value cannot be read, changed or used for
//! another caller or call; one that was already used is refused too (each carries a
//! nonce, remembered until it expires). Knows nothing of what the payload means.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// What every sealed value starts with (the format's version).
const PREFIX: &str = "mw1.";
/// The most nonces remembered; past it, new states are refused until old ones expire.
const MAX_SPENT: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Not a value this gateway sealed, or sealed for another caller or call, or changed.
    #[error(
        "the requestState was not issued by this gateway for this caller and this call (changed, from another caller or call, or issued before a restart)"
    )]
    Foreign,
    #[error("the requestState expired")]
    Expired,
    #[error("the requestState was already used; make the call again without it")]
    Replayed,
    #[error("too many requestStates are in use; try again shortly")]
    Full,
    #[error("cannot seal: {0}")]
    Sealing(String),
}

/// The gateway's sealing key and the nonces already spent.
pub struct Sealer {
    key: LessSafeKey,
    /// The nonce of every value opened and not yet expired → its expiry (ms).
    spent: Mutex<HashMap<[u8; NONCE_LEN], u64>>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer")
    }
}

impl Sealer {
    /// A sealer with a fresh random key: values it sealed cannot be opened after a
    /// restart (the client then starts the request over).
    pub fn random() -> Result<Self, SealError> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| SealError::Sealing(e.to_string()))?;
        Self::with_key(&key)
    }

    /// A sealer for `purpose` whose key is derived from a secret the replicas share
    /// (`[store] session_key`): what one replica sealed, another opens.
    pub fn shared(secret: &[u8; 32], purpose: &str) -> Result<Self, SealError> {
        use sha2::Digest;
        let mut derived = sha2::Sha256::new();
        derived.update(b"mcp-warden sealing key\0");
        derived.update(purpose.as_bytes());
        derived.update(b"\0");
        derived.update(secret);
        Self::with_key(&derived.finalize().into())
    }

    pub fn with_key(key: &[u8; 32]) -> Result<Self, SealError> {
        let unbound = UnboundKey::new(&AES_256_GCM, key)
            .map_err(|_| SealError::Sealing("the key was refused".into()))?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
            spent: Mutex::default(),
        })
    }

    /// Seal `payload` for `bound` (what it may be used for), good until `expires` (ms
    /// since the epoch).
    pub fn seal(&self, payload: &[u8], bound: &[u8], expires: u64) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| SealError::Sealing(e.to_string()))?;
        let mut data = expires.to_be_bytes().to_vec();
        data.extend_from_slice(payload);
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(bound),
                &mut data,
            )
            .map_err(|_| SealError::Sealing("the payload could not be sealed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(out)))
    }

    /// Open a sealed value for `bound`, once: the payload, or why it is refused.
    pub fn open(&self, sealed: &str, bound: &[u8], now_ms: u64) -> Result<Vec<u8>, SealError> {
        let (nonce, expires, payload) = self.unseal(sealed, bound, now_ms)?;
        let mut spent = self.spent.lock().unwrap_or_else(PoisonError::into_inner);
        spent.retain(|_, until| *until > now_ms);
        if spent.contains_key(&nonce) {
            return Err(SealError::Replayed);
        }
        if spent.len() >= MAX_SPENT {
            return Err(SealError::Full);
        }
        spent.insert(nonce, expires);
        Ok(payload)
    }

    /// Open a sealed value for `bound` that may be shown many times (a session id): the
    /// payload, or why it is refused.
    pub fn read(&self, sealed: &str, bound: &[u8], now_ms: u64) -> Result<Vec<u8>, SealError> {
        self.unseal(sealed, bound, now_ms)
            .map(|(_, _, payload)| payload)
    }

    /// The nonce, expiry and payload of a value this key sealed for `bound`, unexpired.
    fn unseal(
        &self,
        sealed: &str,
        bound: &[u8],
        now_ms: u64,
    ) -> Result<([u8; NONCE_LEN], u64, Vec<u8>), SealError> {
        let raw = sealed
            .strip_prefix(PREFIX)
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .ok_or(SealError::Foreign)?;
        if raw.len() < NONCE_LEN {
            return Err(SealError::Foreign);
        }
        let (nonce, body) = raw.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SealError::Foreign)?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(bound),
                &mut body,
            )
            .map_err(|_| SealError::Foreign)?;
        let (expires, payload) = plain.split_at_checked(8).ok_or(SealError::Foreign)?;
        let expires = u64::from_be_bytes(expires.try_into().map_err(|_| SealError::Foreign)?);
        if expires <= now_ms {
            return Err(SealError::Expired);
        }
        Ok((nonce, expires, payload.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000_000;

    #[test]
    fn a_sealed_value_opens_once_for_what_it_was_bound_to() {
        let sealer = Sealer::random().unwrap();
        let sealed = sealer
            .seal(b"approval=1", b"user:a>agent:b|demo/echo", NOW + 10)
            .unwrap();
        assert!(
            !sealed.contains("approval"),
            "the payload cannot be read: {sealed}"
        );
        assert_eq!(
            sealer
                .open(&sealed, b"user:a>agent:b|demo/echo", NOW)
                .unwrap(),
            b"approval=1"
        );
        assert_eq!(
            sealer.open(&sealed, b"user:a>agent:b|demo/echo", NOW),
            Err(SealError::Replayed)
        );
    }

    #[test]
    fn another_binding_a_changed_byte_another_key_or_expiry_are_refused() {
        let sealer = Sealer::random().unwrap();
        let sealed = sealer.seal(b"x", b"mine", NOW + 10).unwrap();
        assert_eq!(sealer.open(&sealed, b"yours", NOW), Err(SealError::Foreign));
        // Every byte position changed is refused.
        let raw = URL_SAFE_NO_PAD.decode(&sealed[PREFIX.len()..]).unwrap();
        for at in 0..raw.len() {
            let mut bent = raw.clone();
            bent[at] ^= 1;
            let bent = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bent));
            assert_eq!(
                sealer.open(&bent, b"mine", NOW),
                Err(SealError::Foreign),
                "byte {at}"
            );
        }
        let cut = &sealed[..sealed.len() - 4];
        assert_eq!(sealer.open(cut, b"mine", NOW), Err(SealError::Foreign));
        assert_eq!(
            sealer.open("plain text", b"mine", NOW),
            Err(SealError::Foreign)
        );
        let other = Sealer::random().unwrap();
        assert_eq!(other.open(&sealed, b"mine", NOW), Err(SealError::Foreign));
        assert_eq!(
            sealer.open(&sealed, b"mine", NOW + 10),
            Err(SealError::Expired)
        );
        // Still good before its expiry (the refusals above spent nothing).
        assert!(sealer.open(&sealed, b"mine", NOW + 9).is_ok());
    }

    #[test]
    fn a_shared_secret_opens_on_every_replica_and_only_for_its_purpose() {
        let secret = [7u8; 32];
        let (a, b) = (
            Sealer::shared(&secret, "session").unwrap(),
            Sealer::shared(&secret, "session").unwrap(),
        );
        let sealed = a.seal(b"s", b"bound", NOW + 10).unwrap();
        assert_eq!(b.read(&sealed, b"bound", NOW).unwrap(), b"s");
        assert_eq!(
            b.read(&sealed, b"bound", NOW).unwrap(),
            b"s",
            "read many times"
        );
        let other = Sealer::shared(&secret, "requestState").unwrap();
        assert_eq!(other.read(&sealed, b"bound", NOW), Err(SealError::Foreign));
        let stranger = Sealer::shared(&[8u8; 32], "session").unwrap();
        assert_eq!(
            stranger.read(&sealed, b"bound", NOW),
            Err(SealError::Foreign)
        );
        assert_eq!(b.read(&sealed, b"bound", NOW + 10), Err(SealError::Expired));
    }
}
