//! Where the Parquet sink's files go: a local directory or an object store
//! (S3, GCS, Azure via `object_store`), behind the few operations the commit
//! protocol needs.
//!
//! Files are always *written* locally: on local disk directly under
//! `<root>/_outflow/tmp/`, for object stores in a local spool directory from
//! which a finished file is uploaded (multipart, in 8 MiB parts, so memory
//! stays bounded) to `_outflow/tmp/` in the bucket. A commit then creates the
//! manifest if absent (a hard link on disk, `PutMode::Create` on object
//! stores), and moves the staged files to their final names.
//!
//! The sink trait is synchronous and runs on its own thread, while
//! `object_store` is async: a remote store keeps the pipeline's runtime
//! handle and blocks on it. Every method here may block, so it is called
//! only from the sink's thread or a blocking thread, never from a task.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};

use crate::SinkError;

/// Part size for multipart uploads.
const PART_BYTES: usize = 8 << 20;

pub enum Store {
    Local { root: PathBuf },
    Remote(Remote),
}

pub struct Remote {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    shown: String,
    runtime: tokio::runtime::Handle,
    spool: PathBuf,
}

impl Drop for Remote {
    fn drop(&mut self) {
        // Only removed when empty: a file still there is uncommitted and is
        // deleted by the next start's recovery anyway.
        let _ = fs::remove_dir(&self.spool);
    }
}

fn store_err(what: impl Into<String>, e: object_store::Error) -> SinkError {
    SinkError::io(what, io::Error::other(e.to_string()))
}

impl Store {
    /// `path` is a local directory or a URL (`s3://bucket/prefix`,
    /// `gs://...`, `az://...`); `options` are object_store configuration keys
    /// (endpoint, region, access_key_id, ...) on top of the usual environment
    /// variables (AWS_*, GOOGLE_*, AZURE_*).
    pub fn open(
        path: &str,
        options: &[(String, String)],
        spool: PathBuf,
        runtime: tokio::runtime::Handle,
    ) -> Result<Store, SinkError> {
        if !path.contains("://") {
            let root = PathBuf::from(path);
            fs::create_dir_all(root.join("_outflow/tmp"))
                .map_err(|e| SinkError::io(format!("cannot create {}", root.display()), e))?;
            return Ok(Store::Local { root });
        }
        let url = url::Url::parse(path)
            .map_err(|e| SinkError::io(format!("path {path:?} is not a valid URL"), io::Error::other(e.to_string())))?;
        let (store, prefix) = object_store::parse_url_opts(&url, options.iter().map(|(k, v)| (k, v.clone())))
            .map_err(|e| store_err(format!("cannot open {path}"), e))?;
        fs::create_dir_all(&spool).map_err(|e| SinkError::io(format!("cannot create {}", spool.display()), e))?;
        Ok(Store::Remote(Remote {
            store: Arc::from(store),
            prefix,
            shown: path.trim_end_matches('/').to_string(),
            runtime,
            spool,
        }))
    }

    /// Shown in logs and errors.
    pub fn display(&self, rel: &str) -> String {
        match self {
            Store::Local { root } => root.join(rel).display().to_string(),
            Store::Remote(r) => format!("{}/{rel}", r.shown),
        }
    }

    /// The local file a new Parquet file `name` is written to before staging.
    pub fn local_tmp(&self, name: &str) -> PathBuf {
        match self {
            Store::Local { root } => root.join("_outflow/tmp").join(name),
            Store::Remote(r) => r.spool.join(name),
        }
    }

    /// Makes a finished local file durable at `_outflow/tmp/<name>` in the store.
    pub fn stage(&self, name: &str) -> Result<(), SinkError> {
        match self {
            Store::Local { root } => {
                let path = root.join("_outflow/tmp").join(name);
                File::open(&path)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| SinkError::io(format!("cannot fsync {}", path.display()), e))
            }
            Store::Remote(r) => {
                let local = r.spool.join(name);
                let dest = r.key(&format!("_outflow/tmp/{name}"));
                r.block_on(async {
                    let mut file =
                        File::open(&local).map_err(|e| SinkError::io(format!("cannot open {}", local.display()), e))?;
                    let upload = r
                        .store
                        .put_multipart(&dest)
                        .await
                        .map_err(|e| store_err(format!("cannot upload {dest}"), e))?;
                    let mut w = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
                    let mut buf = vec![0u8; 1 << 20];
                    loop {
                        let n = file
                            .read(&mut buf)
                            .map_err(|e| SinkError::io(format!("cannot read {}", local.display()), e))?;
                        if n == 0 {
                            break;
                        }
                        w.wait_for_capacity(2).await.map_err(|e| store_err(format!("cannot upload {dest}"), e))?;
                        w.write(&buf[..n]);
                    }
                    w.finish().await.map_err(|e| store_err(format!("cannot upload {dest}"), e))?;
                    Ok(())
                })?;
                let _ = fs::remove_file(&local);
                Ok(())
            }
        }
    }

    /// Creates `rel` with `bytes` unless it exists: `Ok(false)` if it did.
    pub fn create(&self, rel: &str, bytes: Vec<u8>) -> Result<bool, SinkError> {
        match self {
            Store::Local { root } => {
                let path = root.join(rel);
                let dir = path.parent().unwrap_or(root);
                fs::create_dir_all(dir).map_err(|e| SinkError::io(format!("cannot create {}", dir.display()), e))?;
                let tmp = dir.join(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("manifest")));
                let shown = path.display();
                let write = || -> io::Result<()> {
                    let mut f = File::create(&tmp)?;
                    io::Write::write_all(&mut f, &bytes)?;
                    f.sync_all()
                };
                write().map_err(|e| SinkError::io(format!("cannot write {}", tmp.display()), e))?;
                let linked = fs::hard_link(&tmp, &path);
                let _ = fs::remove_file(&tmp);
                match linked {
                    Ok(()) => {
                        sync_dir(dir)?;
                        Ok(true)
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                    Err(e) => Err(SinkError::io(format!("cannot create {shown}"), e)),
                }
            }
            Store::Remote(r) => {
                let key = r.key(rel);
                let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
                r.block_on(async {
                    match r.store.put_opts(&key, PutPayload::from(bytes), opts).await {
                        Ok(_) => Ok(true),
                        Err(object_store::Error::AlreadyExists { .. })
                        | Err(object_store::Error::Precondition { .. }) => Ok(false),
                        Err(e) => Err(store_err(format!("cannot write {key}"), e)),
                    }
                })
            }
        }
    }

    /// Moves a staged file to its final name; a no-op when it already moved.
    pub fn publish(&self, staged: &str, dest: &str) -> Result<(), SinkError> {
        match self {
            Store::Local { root } => {
                let (from, to) = (root.join(staged), root.join(dest));
                if !from.exists() && to.exists() {
                    return Ok(());
                }
                let dir = to.parent().unwrap_or(root);
                fs::create_dir_all(dir).map_err(|e| SinkError::io(format!("cannot create {}", dir.display()), e))?;
                fs::rename(&from, &to)
                    .map_err(|e| SinkError::io(format!("cannot rename {} to {}", from.display(), to.display()), e))?;
                sync_dir(dir)
            }
            Store::Remote(r) => {
                let (from, to) = (r.key(staged), r.key(dest));
                r.block_on(async {
                    match r.store.rename(&from, &to).await {
                        Ok(()) => Ok(()),
                        Err(object_store::Error::NotFound { .. }) => match r.store.head(&to).await {
                            Ok(_) => Ok(()),
                            Err(e) => Err(store_err(
                                format!("staged file {from} and committed file {to} are both missing"),
                                e,
                            )),
                        },
                        Err(e) => Err(store_err(format!("cannot move {from} to {to}"), e)),
                    }
                })
            }
        }
    }

    /// Reads a small object; `None` when it does not exist.
    pub fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, SinkError> {
        match self {
            Store::Local { root } => match fs::read(root.join(rel)) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(SinkError::io(format!("cannot read {}", root.join(rel).display()), e)),
            },
            Store::Remote(r) => {
                let key = r.key(rel);
                r.block_on(async {
                    match r.store.get(&key).await {
                        Ok(got) => got
                            .bytes()
                            .await
                            .map(|b| Some(b.to_vec()))
                            .map_err(|e| store_err(format!("cannot read {key}"), e)),
                        Err(object_store::Error::NotFound { .. }) => Ok(None),
                        Err(e) => Err(store_err(format!("cannot read {key}"), e)),
                    }
                })
            }
        }
    }

    /// Names of the objects directly under `dir` (relative to the root).
    pub fn list(&self, dir: &str) -> Result<Vec<String>, SinkError> {
        match self {
            Store::Local { root } => match fs::read_dir(root.join(dir)) {
                Ok(entries) => Ok(entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(e) => Err(SinkError::io(format!("cannot list {}", root.join(dir).display()), e)),
            },
            Store::Remote(r) => {
                let key = r.key(dir);
                r.block_on(async {
                    let mut out = Vec::new();
                    let mut stream = r.store.list(Some(&key));
                    while let Some(meta) = stream.next().await {
                        let meta = meta.map_err(|e| store_err(format!("cannot list {key}"), e))?;
                        if let Some(name) = meta.location.filename() {
                            out.push(name.to_string());
                        }
                    }
                    Ok(out)
                })
            }
        }
    }

    /// Deletes every staged file (uncommitted after a crash) and spool file.
    pub fn clear_staging(&self) -> Result<usize, SinkError> {
        let names = self.list("_outflow/tmp")?;
        for name in &names {
            let rel = format!("_outflow/tmp/{name}");
            match self {
                Store::Local { root } => fs::remove_file(root.join(&rel))
                    .map_err(|e| SinkError::io(format!("cannot delete {}", root.join(&rel).display()), e))?,
                Store::Remote(r) => {
                    let key = r.key(&rel);
                    r.block_on(async {
                        r.store.delete(&key).await.map_err(|e| store_err(format!("cannot delete {key}"), e))
                    })?
                }
            }
        }
        if let Store::Remote(r) = self {
            if let Ok(entries) = fs::read_dir(&r.spool) {
                for e in entries.flatten() {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(names.len())
    }
}

impl Remote {
    fn key(&self, rel: &str) -> ObjectPath {
        let mut parts: Vec<String> = self.prefix.parts().map(|p| p.as_ref().to_string()).collect();
        parts.extend(rel.split('/').filter(|p| !p.is_empty()).map(str::to_string));
        ObjectPath::from_iter(parts)
    }

    fn block_on<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.runtime.block_on(f)
    }
}

fn sync_dir(dir: &Path) -> Result<(), SinkError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| SinkError::io(format!("cannot fsync directory {}", dir.display()), e))
}
