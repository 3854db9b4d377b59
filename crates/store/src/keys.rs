//! API keys: random bearer tokens, stored only as SHA-256 hashes.
//!
//! Keys carry 256 bits of randomness, so a fast unsalted hash is enough: nobody can guess a
//! preimage, and the lookup by hash reveals nothing about the key presented.

use crate::{Error, Result};
use sha2::{Digest, Sha256};

/// Which router a key opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyRole {
    /// The customer-facing API (recommendations, catalog, events, orders).
    Storefront,
    /// The back-office API (catalog edits, models, segments, analytics, keys).
    Admin,
}

impl ApiKeyRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Storefront => "storefront",
            Self::Admin => "admin",
        }
    }

    /// `storefront` or `admin`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "storefront" => Ok(Self::Storefront),
            "admin" => Ok(Self::Admin),
            other => Err(Error::Corrupt(format!("unknown API key role {other:?}"))),
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Self::Storefront => "mq_sf_",
            Self::Admin => "mq_ad_",
        }
    }
}

/// A freshly created key, in clear text. It is shown once and never stored.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub role: ApiKeyRole,
    /// The bearer token: a role tag and 64 hex digits.
    pub key: String,
    /// The first characters, stored to tell keys apart in listings and to revoke one.
    pub prefix: String,
}

/// `tag` followed by 64 hex digits of fresh randomness.
fn random_token(tag: &str) -> Result<String> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)
        .map_err(|e| Error::Conflict(format!("the system random source failed: {e}")))?;
    let mut token = String::with_capacity(tag.len() + 64);
    token.push_str(tag);
    for byte in secret {
        token.push_str(&format!("{byte:02x}"));
    }
    Ok(token)
}

/// A dashboard session token (kept in the browser's cookie; stored only as its hash).
pub(crate) fn session_token() -> Result<String> {
    random_token("mq_se_")
}

impl NewApiKey {
    pub(crate) fn generate(role: ApiKeyRole) -> Result<Self> {
        let key = random_token(role.tag())?;
        let prefix = key[..14].to_owned();
        Ok(Self { role, key, prefix })
    }

    pub(crate) fn hash(&self) -> Vec<u8> {
        hash_key(&self.key)
    }
}

pub(crate) fn hash_key(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}
