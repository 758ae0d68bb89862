//! A local keyring standing in for KMS, and record encryption at rest.
//!
//! Keys are 256-bit, named as KMS names them (a UUID key id, `arn:aws:kms:REGION:ACCOUNT:key/ID`,
//! aliases `alias/NAME` and their ARNs); `alias/aws/kinesis` exists out of the box. Key material
//! lives in the metadata store next to the data it protects, so this protects data files copied
//! or read on their own (backups, a stolen disk image of the log), not a stolen data directory.
//!
//! An encrypted record's stored data is
//! `[version u8 = 1][key number u32 LE][nonce 12][AES-256-GCM ciphertext + 16-byte tag]`, with
//! the stream ARN and shard id as associated data, so a ciphertext moved to another shard or
//! stream does not decrypt. Nonces are random (96 bits): under 2^32 records per key, the
//! standard bound for random GCM nonces.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use crate::Error;

pub const DEFAULT_ALIAS: &str = "alias/aws/kinesis";
const VERSION: u8 = 1;
const HEADER: usize = 1 + 4 + NONCE_LEN;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyEntry {
    /// Small number stored in each ciphertext to find the key.
    pub number: u32,
    pub key_id: String,
    pub aliases: Vec<String>,
    pub enabled: bool,
    pub created_ms: i64,
    /// The 32 key bytes, hex.
    pub material: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Keyring {
    pub keys: Vec<KeyEntry>,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn random<const N: usize>() -> Result<[u8; N], Error> {
    let mut b = [0u8; N];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| Error::InternalFailure("no randomness for key material".into()))?;
    Ok(b)
}

fn uuid() -> Result<String, Error> {
    let b: [u8; 16] = random()?;
    Ok(format!(
        "{}-{}-4{}-{:x}{}-{}",
        hex(&b[0..4]),
        hex(&b[4..6]),
        &hex(&b[6..8])[1..],
        (b[8] & 0x3) | 0x8,
        &hex(&b[8..10])[1..],
        hex(&b[10..16])
    ))
}

impl Keyring {
    /// Creates a key, optionally with an alias (`alias/NAME`).
    pub fn create(&mut self, alias: Option<&str>, now_ms: i64) -> Result<&KeyEntry, Error> {
        if let Some(a) = alias {
            if !a.starts_with("alias/") || a.len() <= 6 {
                return Err(Error::InvalidArgument(format!(
                    "Alias must start with 'alias/': {a}"
                )));
            }
            if self.keys.iter().any(|k| k.aliases.iter().any(|x| x == a)) {
                return Err(Error::InvalidArgument(format!("Alias {a} already exists.")));
            }
        }
        let key: [u8; 32] = random()?;
        let number = self.keys.iter().map(|k| k.number + 1).max().unwrap_or(1);
        self.keys.push(KeyEntry {
            number,
            key_id: uuid()?,
            aliases: alias.map(|a| vec![a.to_string()]).unwrap_or_default(),
            enabled: true,
            created_ms: now_ms,
            material: hex(&key),
        });
        self.keys
            .last()
            .ok_or_else(|| Error::InternalFailure("keyring".into()))
    }

    /// Finds a key by id, key ARN, alias or alias ARN (the forms KMS accepts as KeyId).
    pub fn find(&self, key_id: &str) -> Option<&KeyEntry> {
        let name = match key_id.strip_prefix("arn:") {
            Some(_) => {
                let resource = key_id.splitn(6, ':').nth(5)?;
                if resource.starts_with("alias/") {
                    resource
                } else {
                    resource.strip_prefix("key/")?
                }
            }
            None => key_id,
        };
        self.keys
            .iter()
            .find(|k| k.key_id == name || k.aliases.iter().any(|a| a == name))
    }

    pub fn by_number(&self, n: u32) -> Option<&KeyEntry> {
        self.keys.iter().find(|k| k.number == n)
    }

    /// Makes sure the default alias exists; true if it was created.
    pub fn ensure_default(&mut self, now_ms: i64) -> Result<bool, Error> {
        if self.find(DEFAULT_ALIAS).is_some() {
            return Ok(false);
        }
        self.create(Some(DEFAULT_ALIAS), now_ms)?;
        Ok(true)
    }
}

fn aead(k: &KeyEntry) -> Result<LessSafeKey, Error> {
    let bytes =
        unhex(&k.material).ok_or_else(|| Error::InternalFailure("bad key material".into()))?;
    let unbound = UnboundKey::new(&AES_256_GCM, &bytes)
        .map_err(|_| Error::InternalFailure("bad key material".into()))?;
    Ok(LessSafeKey::new(unbound))
}

/// Encrypts one record's data.
pub fn seal(k: &KeyEntry, aad: &[u8], data: &[u8]) -> Result<Vec<u8>, Error> {
    if !k.enabled {
        return Err(Error::KmsDisabled(format!("{} is disabled.", k.key_id)));
    }
    let nonce_bytes: [u8; NONCE_LEN] = random()?;
    let mut out = Vec::with_capacity(HEADER + data.len() + 16);
    out.push(VERSION);
    out.extend_from_slice(&k.number.to_le_bytes());
    out.extend_from_slice(&nonce_bytes);
    let mut body = data.to_vec();
    aead(k)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce_bytes),
            Aad::from(aad),
            &mut body,
        )
        .map_err(|_| Error::InternalFailure("encryption failed".into()))?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// The key number an encrypted record names, if the bytes look like one.
pub fn key_number(stored: &[u8]) -> Option<u32> {
    if stored.len() < HEADER + 16 || stored[0] != VERSION {
        return None;
    }
    Some(u32::from_le_bytes(stored[1..5].try_into().ok()?))
}

/// Decrypts one record's stored data.
pub fn open(k: &KeyEntry, aad: &[u8], stored: &[u8]) -> Result<Vec<u8>, Error> {
    if !k.enabled {
        return Err(Error::KmsDisabled(format!("{} is disabled.", k.key_id)));
    }
    if stored.len() < HEADER + 16 || stored[0] != VERSION {
        return Err(Error::InternalFailure("Internal service failure.".into()));
    }
    let nonce: [u8; NONCE_LEN] = stored[5..HEADER]
        .try_into()
        .map_err(|_| Error::InternalFailure("Internal service failure.".into()))?;
    let mut body = stored[HEADER..].to_vec();
    let plain = aead(k)?
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut body,
        )
        .map_err(|_| Error::InternalFailure("Internal service failure.".into()))?;
    let n = plain.len();
    body.truncate(n);
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_by_every_kms_name_and_round_trip() {
        let mut ring = Keyring::default();
        assert!(ring.ensure_default(0).unwrap());
        assert!(!ring.ensure_default(0).unwrap());
        let k = ring.create(Some("alias/orders"), 0).unwrap().clone();
        assert_eq!(k.key_id.len(), 36);
        for name in [
            k.key_id.clone(),
            format!("arn:aws:kms:us-east-1:000000000000:key/{}", k.key_id),
            "alias/orders".to_string(),
            "arn:aws:kms:us-east-1:000000000000:alias/orders".to_string(),
        ] {
            assert_eq!(ring.find(&name).map(|x| x.number), Some(k.number), "{name}");
        }
        assert!(ring.find("alias/nope").is_none());
        let sealed = seal(&k, b"shard", b"hello").unwrap();
        assert_eq!(key_number(&sealed), Some(k.number));
        assert!(!sealed.windows(5).any(|w| w == b"hello"));
        assert_eq!(open(&k, b"shard", &sealed).unwrap(), b"hello");
        assert!(open(&k, b"other shard", &sealed).is_err());
        let mut disabled = k.clone();
        disabled.enabled = false;
        assert_eq!(
            open(&disabled, b"shard", &sealed).unwrap_err().code(),
            "KMSDisabledException"
        );
    }
}
