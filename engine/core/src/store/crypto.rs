//! Encryption of secret values kept in the store (ChaCha20-Poly1305, random nonce per
//! record). The key is 32 random bytes in a key file, created with mode 0600 on first use.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use std::path::Path;

use super::StoreError;

/// Encrypts and decrypts store records.
pub struct Cipher {
    aead: ChaCha20Poly1305,
}

impl Cipher {
    /// Load the key from `path`, creating it when it does not exist.
    pub fn open(path: &Path) -> Result<Cipher, StoreError> {
        let key = match std::fs::read(path) {
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut k = vec![0u8; 32];
                rand::thread_rng().fill_bytes(&mut k);
                write_private(path, &k).map_err(|e| {
                    StoreError::Key(format!("cannot create key file {}: {e}", path.display()))
                })?;
                k
            }
            Err(e) => {
                return Err(StoreError::Key(format!(
                    "cannot read key file {}: {e}",
                    path.display()
                )))
            }
        };
        if key.len() != 32 {
            return Err(StoreError::Key(format!(
                "key file {} must hold exactly 32 bytes, it holds {}",
                path.display(),
                key.len()
            )));
        }
        Ok(Cipher {
            aead: ChaCha20Poly1305::new(Key::from_slice(&key)),
        })
    }

    /// `nonce || ciphertext`.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ct = self
            .aead
            .encrypt(Nonce::from_slice(&nonce), plain)
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend(ct);
        out
    }

    /// Inverse of [`Cipher::seal`].
    pub fn open_sealed(&self, sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        if sealed.len() < 12 {
            return Err(StoreError::Key("encrypted record is truncated".into()));
        }
        self.aead
            .decrypt(Nonce::from_slice(&sealed[..12]), &sealed[12..])
            .map_err(|_| StoreError::Key("cannot decrypt a stored secret: the key file does not match the one it was written with".into()))
    }
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrong_key() {
        let d = tempfile::tempdir().unwrap();
        let c = Cipher::open(&d.path().join("k")).unwrap();
        let s = c.seal(b"password123");
        assert!(!s.windows(11).any(|w| w == b"password123"));
        assert_eq!(c.open_sealed(&s).unwrap(), b"password123");
        let other = Cipher::open(&d.path().join("k2")).unwrap();
        assert!(other.open_sealed(&s).is_err());
        // The same key file gives the same key.
        let again = Cipher::open(&d.path().join("k")).unwrap();
        assert_eq!(again.open_sealed(&s).unwrap(), b"password123");
    }
}
