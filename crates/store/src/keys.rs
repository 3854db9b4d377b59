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
    /// Safe to put in a web page: may only send events (`POST /v1/events`) and read an
    /// anonymous session's answer, and only from the origins listed with the key.
    Publishable,
}

impl ApiKeyRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Storefront => "storefront",
            Self::Admin => "admin",
            Self::Publishable => "publishable",
        }
    }

    /// `storefront`, `admin` or `publishable`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "storefront" => Ok(Self::Storefront),
            "admin" => Ok(Self::Admin),
            "publishable" => Ok(Self::Publishable),
            other => Err(Error::Corrupt(format!("unknown API key role {other:?}"))),
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Self::Storefront => "mq_sf_",
            Self::Admin => "mq_ad_",
            Self::Publishable => "mq_pk_",
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

/// Checks the allowed origins of a publishable key: each is `self` (the server's own origin,
/// as the browser reaches it) or `scheme://host[:port]` with an http or https scheme and
/// nothing after the host; 1 to 20 of them. Returns them normalised (no trailing slash,
/// lowercase), or what is wrong.
pub fn check_origins(origins: &[String]) -> std::result::Result<Vec<String>, String> {
    if origins.is_empty() || origins.len() > 20 {
        return Err(format!(
            "give between 1 and 20 origins, not {} (`self` is the server's own pages)",
            origins.len()
        ));
    }
    origins
        .iter()
        .enumerate()
        .map(|(n, o)| {
            let o = o.trim().trim_end_matches('/').to_ascii_lowercase();
            if o == "self" {
                return Ok(o);
            }
            let rest = o
                .strip_prefix("https://")
                .or_else(|| o.strip_prefix("http://"))
                .ok_or_else(|| {
                    format!(
                        "origins[{n}] = {o:?} must start with http:// or https:// (or be `self`)"
                    )
                })?;
            let host_ok = !rest.is_empty()
                && rest
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
            if !host_ok {
                return Err(format!(
                    "origins[{n}] = {o:?} must be scheme://host[:port], with no path or query"
                ));
            }
            Ok(o)
        })
        .collect()
}
