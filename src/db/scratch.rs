//! A scratch directory for tests that need an SQLite file.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use super::DbUrl;

/// A fresh directory for one test, removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new() -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "ser-db-unit-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    /// `sqlite://<dir>/ser.db`.
    pub(crate) fn url(&self) -> DbUrl {
        DbUrl::parse(&format!("sqlite://{}/ser.db", self.0.display())).unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
