//! A damaged data directory: a clear error when the database files cannot be opened, and
//! `squall store check`, which reads every record and reports the ones that do not decode.

use super::reading::decode;
use super::records::tree_key;
use super::{SledStore, StoreError};
use crate::model::Json;
use serde::Serialize;
use std::path::Path;

/// The error for database files that sled cannot open: corruption (a truncated or
/// damaged file) becomes [`StoreError::Damaged`] naming the directory.
pub(super) fn open_error(dir: &Path, e: sled::Error) -> StoreError {
    match e {
        sled::Error::Corruption { .. } | sled::Error::Unsupported(_) => StoreError::Damaged {
            dir: dir.to_path_buf(),
            message: e.to_string().replace(" backtrace ()", ""),
        },
        sled::Error::Io(io) => StoreError::Io(std::io::Error::new(
            io.kind(),
            format!("{}: {io}", dir.join("db").display()),
        )),
        other => StoreError::Sled(other),
    }
}

/// What `squall store check` found in one tree.
#[derive(Debug, Default, Clone, Serialize)]
pub struct TreeReport {
    /// The tree (`executions`, `triggers`, `enforcements`, `audit`, `sensors`, `meta`).
    pub tree: String,
    /// Records read.
    pub records: usize,
    /// Keys (`<tree>:<key>`) of records that do not decode.
    pub unreadable: Vec<String>,
}

/// What `squall store check` found.
#[derive(Debug, Default, Clone, Serialize)]
pub struct CheckReport {
    /// The data directory.
    pub dir: String,
    /// Every tree, in name order.
    pub trees: Vec<TreeReport>,
}

impl CheckReport {
    /// True when every record decodes.
    pub fn clean(&self) -> bool {
        self.trees.iter().all(|t| t.unreadable.is_empty())
    }
}

impl SledStore {
    /// Read every record of every tree and report those that do not decode (nothing is
    /// changed). Encrypted entries (`p:`, `r:`, sealed workflow state) are opened with the
    /// key, so a wrong key file shows up here too.
    pub fn check(&self) -> Result<CheckReport, StoreError> {
        let mut report = CheckReport {
            dir: self.dir.display().to_string(),
            trees: Vec::new(),
        };
        let mut names: Vec<String> = self
            .db
            .tree_names()
            .iter()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .filter(|n| n != "__sled__default")
            .collect();
        names.sort();
        for name in names {
            let tree = self.db.open_tree(&name)?;
            let mut t = TreeReport {
                tree: name.clone(),
                ..Default::default()
            };
            for item in tree.iter() {
                let (k, v) = item?;
                let key = tree_key(&name, &k);
                let ok = match (name.as_str(), &k[..]) {
                    ("meta", _) => true,
                    // Index entries carry no document.
                    ("executions", [b's' | b'a', b':', ..]) => true,
                    ("executions", [b't', b':', ..]) => std::str::from_utf8(&v).is_ok(),
                    ("executions", [b'p' | b'r', b':', ..]) => self
                        .cipher
                        .open_sealed(&v)
                        .and_then(|plain| decode::<Json>(&key, &plain))
                        .is_ok(),
                    ("executions", [b'w', b':', ..]) => self.open_maybe_sealed(&key, &v).is_ok(),
                    _ => decode::<Json>(&key, &v).is_ok(),
                };
                if ok {
                    t.records += 1;
                } else {
                    t.unreadable.push(key);
                }
            }
            report.trees.push(t);
        }
        Ok(report)
    }
}
