//! Keyed hashes for names (hostnames, comm, file names, cgroup paths, the
//! command line): HMAC-SHA256 under the redaction key, shortened. The same
//! key gives the same name in every trace; without it, a name cannot be
//! tested for.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub struct Names {
    key: [u8; 32],
}

impl Names {
    pub fn new(key: &[u8; 32]) -> Names {
        Names { key: *key }
    }

    /// `<prefix>-<12 hex digits>`: what kind of name it was, not which.
    /// 12 digits keep a comm within the kernel's 15 bytes.
    pub fn hash(&self, prefix: &str, value: &str) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(prefix.as_bytes());
        mac.update(b"\0");
        mac.update(value.as_bytes());
        let tag = mac.finalize().into_bytes();
        let hex: String = tag.iter().take(6).map(|b| format!("{b:02x}")).collect();
        format!("{prefix}-{hex}")
    }

    /// Identifies the key without revealing it: two traces redacted with
    /// one key say the same.
    pub fn key_id(&self) -> String {
        self.hash("key", "netrec redaction key id")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_keyed_stable_and_short() {
        let a = Names::new(&[1; 32]);
        let b = Names::new(&[2; 32]);
        assert_eq!(a.hash("comm", "mysqld"), a.hash("comm", "mysqld"));
        assert_ne!(a.hash("comm", "mysqld"), b.hash("comm", "mysqld"));
        assert_ne!(a.hash("comm", "mysqld"), a.hash("host", "mysqld"));
        // As comm is replaced: within the kernel's 15 bytes.
        assert!(a.hash("p", "mysqld").len() <= 15);
    }
}
