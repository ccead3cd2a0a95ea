//! Bearer-token authentication with roles (`viewer` < `operator` < `admin`), from the tokens
//! file named in `squall.yaml` (`auth.tokens_file`).

use serde::{Deserialize, Serialize};
use squall_core::content::{Diagnostic, SourceFile};
use std::path::{Path, PathBuf};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read everything.
    Viewer,
    /// Also run, cancel, re-run and emit triggers.
    Operator,
    /// Also change content and settings (reload).
    Admin,
}

/// One entry of the tokens file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// Who the token belongs to (shown in the audit trail).
    pub name: String,
    /// The secret itself (may be `${env:NAME}`).
    pub token: String,
    /// Its role.
    pub role: Role,
}

/// The caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Token name, or `local` when auth is off.
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// Why the tokens file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    /// The file cannot be read.
    #[error("cannot read tokens file {}: {source}", path.display())]
    Read {
        /// The tokens file.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a list of `{name, token, role}` (with the place in the file).
    #[error(transparent)]
    Invalid(#[from] Diagnostic),
    /// A token too short to be safe.
    #[error("{}: token of `{name}` is shorter than 16 characters; use a long random value", path.display())]
    TooShort {
        /// The tokens file.
        path: PathBuf,
        /// The token's name.
        name: String,
    },
}

/// Configured tokens; empty means auth is off (loopback only).
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    entries: Vec<TokenEntry>,
}

impl Tokens {
    /// Read the tokens file (a YAML list of `{name, token, role}`).
    pub fn load(path: &Path) -> Result<Tokens, TokensError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokensError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        // Wrap the list so the content reader (references, positions) can parse it.
        let wrapped = format!(
            "tokens:\n{}",
            text.lines().map(|l| format!("  {l}\n")).collect::<String>()
        );
        let mut diags = Vec::new();
        let sf = SourceFile::parse(path, &wrapped, &mut diags)?;
        if let Some(d) = diags.into_iter().next() {
            return Err(d.into());
        }
        #[derive(Deserialize)]
        struct Wrapper {
            tokens: Vec<TokenEntry>,
        }
        let w: Wrapper = sf.typed()?;
        for t in &w.tokens {
            if t.token.len() < 16 {
                return Err(TokensError::TooShort {
                    path: path.to_path_buf(),
                    name: t.name.clone(),
                });
            }
            squall_core::secrets::keep(&t.token);
        }
        Ok(Tokens { entries: w.tokens })
    }

    /// Whether any token is configured.
    pub fn enabled(&self) -> bool {
        !self.entries.is_empty()
    }

    /// The caller for an `Authorization` header value; `None` when it is missing or wrong.
    pub fn check(&self, header: Option<&str>) -> Option<Caller> {
        if !self.enabled() {
            return Some(Caller {
                name: "local".into(),
                role: Role::Admin,
            });
        }
        let token = header?.strip_prefix("Bearer ")?.trim();
        self.entries
            .iter()
            .find(|e| constant_time_eq(e.token.as_bytes(), token.as_bytes()))
            .map(|e| Caller {
                name: e.name.clone(),
                role: e.role,
            })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_file_roles_and_checks() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("tokens.yaml");
        std::env::set_var("SQUALL_TEST_ADMIN_TOKEN", "admin-token-0123456789");
        std::fs::write(&f, "- {name: ops, token: operator-token-0123456789, role: operator}\n- {name: root, token: \"${env:SQUALL_TEST_ADMIN_TOKEN}\", role: admin}\n").unwrap();
        let t = Tokens::load(&f).unwrap();
        assert_eq!(
            t.check(Some("Bearer operator-token-0123456789"))
                .unwrap()
                .role,
            Role::Operator
        );
        assert_eq!(
            t.check(Some("Bearer admin-token-0123456789")).unwrap().name,
            "root"
        );
        assert!(t.check(Some("Bearer nope")).is_none());
        assert!(t.check(None).is_none());
        std::fs::write(&f, "- {name: x, token: short, role: admin}\n").unwrap();
        assert!(Tokens::load(&f)
            .unwrap_err()
            .to_string()
            .contains("shorter than 16"));
        std::fs::write(
            &f,
            "- {name: x, token: long-enough-token-000, role: root}\n",
        )
        .unwrap();
        assert!(Tokens::load(&f).unwrap_err().to_string().contains("role"));
    }
}
