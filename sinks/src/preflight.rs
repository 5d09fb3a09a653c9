//! What `outflow check` learns about a sink ([`crate::SinkFactory::preflight`]):
//! one [`Probe`] per condition, and the probes several sinks share — a
//! local directory is writable, an object store prefix is writable. Probes
//! leave nothing behind: a probe file or object is deleted again, and a
//! directory a run would create is not created, its nearest existing
//! ancestor is tried instead.

use std::path::{Path, PathBuf};

/// One checked condition: printed as `✓ what`, or `✗ what` and `fix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub ok: bool,
    pub what: String,
    /// What to do when it failed (empty when it passed).
    pub fix: String,
}

impl Probe {
    pub fn pass(what: impl Into<String>) -> Probe {
        Probe { ok: true, what: what.into(), fix: String::new() }
    }

    pub fn fail(what: impl Into<String>, fix: impl Into<String>) -> Probe {
        Probe { ok: false, what: what.into(), fix: fix.into() }
    }
}

/// Whether files can be created in `dir`: a probe file is written and
/// deleted there, or, when `dir` does not exist yet (a run creates it), in
/// its nearest existing ancestor. Err says why not.
pub fn writable_dir(dir: &Path) -> Result<(), String> {
    let mut at: PathBuf = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir.to_path_buf() };
    while !at.exists() {
        match at.parent() {
            Some(p) if !p.as_os_str().is_empty() => at = p.to_path_buf(),
            _ => {
                at = PathBuf::from(".");
                break;
            }
        }
    }
    if !at.is_dir() {
        return Err(format!("{} is not a directory", at.display()));
    }
    let probe = at.join(format!(".outflow-check-{}", std::process::id()));
    let written = std::fs::write(&probe, b"");
    let _ = std::fs::remove_file(&probe);
    written.map_err(|e| format!("cannot create a file in {}: {e}", at.display()))
}

/// Whether objects can be written under the object store URL `url`
/// (`s3://bucket/prefix`, `gs://...`, `az://...`): a probe object is put
/// and deleted. Err says why not.
#[cfg(feature = "parquet")]
pub async fn object_store_writable(url: &str, options: &[(String, String)]) -> Result<(), String> {
    use object_store::path::Path as ObjectPath;
    use object_store::{ObjectStoreExt, PutPayload};

    let parsed = url::Url::parse(url).map_err(|e| format!("{url:?} is not a valid URL: {e}"))?;
    let (store, prefix) = object_store::parse_url_opts(&parsed, options.iter().map(|(k, v)| (k, v.clone())))
        .map_err(|e| format!("cannot open {url}: {e}"))?;
    let mut parts: Vec<String> = prefix.parts().map(|p| p.as_ref().to_string()).collect();
    parts.push(format!(".outflow-check-{}", std::process::id()));
    let key = ObjectPath::from_iter(parts);
    let timeout = std::time::Duration::from_secs(30);
    let put = tokio::time::timeout(timeout, store.put(&key, PutPayload::from_static(b"")))
        .await
        .map_err(|_| format!("writing {key} timed out after 30 s"))?;
    put.map_err(|e| format!("cannot write {key}: {e}"))?;
    let deleted = tokio::time::timeout(timeout, store.delete(&key))
        .await
        .map_err(|_| format!("deleting {key} timed out after 30 s"))?;
    deleted.map_err(|e| format!("cannot delete {key}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_directory_is_probed_at_its_nearest_ancestor() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(writable_dir(&dir.path().join("a/b/c")), Ok(()));
        assert!(!dir.path().join("a").exists(), "the probe created a directory");
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let err = writable_dir(&file.join("sub")).unwrap_err();
        assert!(err.contains("is not a directory"), "{err}");
    }
}
