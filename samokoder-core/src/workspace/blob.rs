//! Content-addressed blobs: a file's content is stored once per SHA-256 hash.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// The hash of a blob: lower-case hex SHA-256 of its content — the same string
/// `samokoder_store::blob_hash` produces, so hashes move between the workspace and the store
/// unchanged.
///
/// ```
/// use samokoder_core::workspace::BlobHash;
///
/// let h = BlobHash::of(b"");
/// assert_eq!(h.as_str(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
/// assert_eq!(h.as_str().parse::<BlobHash>().unwrap(), h);
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobHash(String);

/// A string that is not 64 lower-case hex characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a blob hash (64 lower-case hex characters of SHA-256)")]
pub struct InvalidBlobHash(pub String);

impl BlobHash {
    /// Hashes `content`.
    pub fn of(content: &[u8]) -> Self {
        Self(hex::encode(Sha256::digest(content)))
    }

    /// Parses a hash read from the store or the wire.
    pub fn parse(s: &str) -> Result<Self, InvalidBlobHash> {
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidBlobHash(s.chars().take(80).collect()))
        }
    }

    /// The hex string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Twelve characters identify a blob in logs as well as the full 64.
        write!(f, "BlobHash({})", &self.0[..12])
    }
}

impl FromStr for BlobHash {
    type Err = InvalidBlobHash;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl From<BlobHash> for String {
    fn from(h: BlobHash) -> Self {
        h.0
    }
}

impl Serialize for BlobHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for BlobHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Where blob contents come from when a snapshot is read, materialised or exported.
///
/// The workspace's functions are synchronous file-system work, so this is a synchronous lookup:
/// an engine backed by an asynchronous store loads the blobs a snapshot needs
/// ([`crate::workspace::Snapshot::hashes`]) into a [`MemoryBlobs`] first, fetching only those
/// it does not hold yet.
pub trait BlobSource: Send + Sync {
    /// The content stored under `hash`, or `None` when this source does not have it.
    fn blob(&self, hash: &BlobHash) -> Option<Arc<[u8]>>;
}

/// An in-memory blob store: one copy per distinct content.
///
/// ```
/// use samokoder_core::workspace::{BlobSource, MemoryBlobs};
///
/// let mut blobs = MemoryBlobs::new();
/// let a = blobs.put(b"same");
/// let b = blobs.put(b"same".to_vec());
/// assert_eq!(a, b);
/// assert_eq!(blobs.len(), 1);
/// assert_eq!(&*blobs.blob(&a).unwrap(), b"same");
/// ```
#[derive(Clone, Default)]
pub struct MemoryBlobs {
    blobs: HashMap<BlobHash, Arc<[u8]>>,
    bytes: u64,
}

impl MemoryBlobs {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `content` unless a blob with the same hash is already here; returns its hash.
    pub fn put(&mut self, content: impl AsRef<[u8]>) -> BlobHash {
        let content = content.as_ref();
        let hash = BlobHash::of(content);
        if !self.blobs.contains_key(&hash) {
            self.bytes += content.len() as u64;
            self.blobs.insert(hash.clone(), Arc::from(content));
        }
        hash
    }

    /// Stores a blob fetched from elsewhere under its claimed hash, after checking the claim, so
    /// a corrupted store row cannot poison a workspace. Returns the hash on success.
    pub fn insert_verified(
        &mut self,
        hash: &BlobHash,
        content: impl AsRef<[u8]>,
    ) -> Result<BlobHash, InvalidBlobHash> {
        let actual = self.put(content);
        if &actual == hash {
            Ok(actual)
        } else {
            Err(InvalidBlobHash(format!(
                "content hashes to {actual}, not the claimed {hash}"
            )))
        }
    }

    /// Whether a blob is stored.
    pub fn contains(&self, hash: &BlobHash) -> bool {
        self.blobs.contains_key(hash)
    }

    /// Number of distinct blobs.
    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// Whether no blob is stored.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Total bytes of the distinct blobs.
    pub fn total_bytes(&self) -> u64 {
        self.bytes
    }

    /// The stored blobs, in no particular order (for uploading new ones to a store).
    pub fn iter(&self) -> impl Iterator<Item = (&BlobHash, &Arc<[u8]>)> {
        self.blobs.iter()
    }

    /// Moves every blob of `other` in (keeping one copy per hash).
    pub fn extend(&mut self, other: MemoryBlobs) {
        for (hash, content) in other.blobs {
            if !self.blobs.contains_key(&hash) {
                self.bytes += content.len() as u64;
                self.blobs.insert(hash, content);
            }
        }
    }
}

impl fmt::Debug for MemoryBlobs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBlobs")
            .field("blobs", &self.blobs.len())
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl BlobSource for MemoryBlobs {
    fn blob(&self, hash: &BlobHash) -> Option<Arc<[u8]>> {
        self.blobs.get(hash).cloned()
    }
}

impl<T: BlobSource + ?Sized> BlobSource for &T {
    fn blob(&self, hash: &BlobHash) -> Option<Arc<[u8]>> {
        (**self).blob(hash)
    }
}

impl<T: BlobSource + ?Sized> BlobSource for Arc<T> {
    fn blob(&self, hash: &BlobHash) -> Option<Arc<[u8]>> {
        (**self).blob(hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_lower_hex_sha256() {
        assert_eq!(
            BlobHash::of(b"abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(BlobHash::parse("ABC").is_err());
        assert!(BlobHash::parse(&"A".repeat(64)).is_err());
        assert!(serde_json::from_str::<BlobHash>("\"nope\"").is_err());
    }

    #[test]
    fn same_content_stored_once() {
        let mut blobs = MemoryBlobs::new();
        let h1 = blobs.put("hello");
        let h2 = blobs.put("hello");
        let h3 = blobs.put("world!");
        assert_eq!(h1, h2);
        assert_ne!(h1, h3);
        assert_eq!(blobs.len(), 2);
        assert_eq!(blobs.total_bytes(), 11);
    }

    #[test]
    fn insert_verified_refuses_a_wrong_claim() {
        let mut blobs = MemoryBlobs::new();
        let right = BlobHash::of(b"x");
        assert!(blobs.insert_verified(&right, b"x").is_ok());
        let err = blobs.insert_verified(&right, b"y").unwrap_err();
        assert!(err.0.contains("not the claimed"), "{err}");
    }
}
