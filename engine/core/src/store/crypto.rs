//! Encryption of secret values kept in the store (ChaCha20-Poly1305, random nonce per
//! record). The key is 32 random bytes in a key file, created with mode 0600 on first use.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use std::path::{Path, PathBuf};

use super::StoreError;

/// A problem with the key file or with a record it should decrypt.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file did not exist and could not be written.
    #[error("cannot create key file {}: {source}", path.display())]
    Create {
        /// The key file.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The key file exists but cannot be read.
    #[error("cannot read key file {}: {source}", path.display())]
    Read {
        /// The key file.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The key file does not hold a key.
    #[error("key file {} must hold exactly 32 bytes, it holds {len}", path.display())]
    Length {
        /// The key file.
        path: PathBuf,
        /// Bytes it holds.
        len: usize,
    },
    /// A sealed record shorter than its nonce.
    #[error("encrypted record is truncated")]
    Truncated,
    /// The record was sealed with another key (or is damaged).
    #[error(
        "cannot decrypt a stored secret: the key file does not match the one it was written with"
    )]
    Mismatch,
}

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
                write_private(path, &k).map_err(|source| KeyError::Create {
                    path: path.to_path_buf(),
                    source,
                })?;
                k
            }
            Err(source) => {
                return Err(KeyError::Read {
                    path: path.to_path_buf(),
                    source,
                }
                .into())
            }
        };
        if key.len() != 32 {
            return Err(KeyError::Length {
                path: path.to_path_buf(),
                len: key.len(),
            }
            .into());
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
            return Err(KeyError::Truncated.into());
        }
        self.aead
            .decrypt(Nonce::from_slice(&sealed[..12]), &sealed[12..])
            .map_err(|_| KeyError::Mismatch.into())
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
