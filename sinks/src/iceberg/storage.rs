//! Iceberg file I/O on object storage (S3 and S3-compatible servers, GCS,
//! Azure) through `object_store`, the crate the Parquet sink already uses.
//!
//! iceberg 0.10.1 ships only local and in-memory storage; its `Storage`
//! trait lets a catalog take any backend through a `StorageFactory`. This
//! one maps every path (`s3://bucket/key`) to the bucket's `ObjectStore`,
//! built once per bucket from the URL and the sink's `storage_options`
//! (object_store keys such as `endpoint`, `region`, `access_key_id`,
//! `allow_http`; the usual AWS_*/GOOGLE_*/AZURE_* variables apply too).
//! Files are written through object_store's `BufWriter` (multipart uploads
//! for large data files), reads are ranged GETs.
//!
//! `Storage` must be serialisable (typetag) for iceberg's own use across
//! processes; only the options are serialised, the clients are rebuilt.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use iceberg::io::{FileMetadata, FileRead, FileWrite, InputFile, OutputFile, Storage, StorageConfig, StorageFactory};
use iceberg::{Error, ErrorKind, Result};
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

/// Builds [`ObjectStorage`] for a catalog.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ObjectStorageFactory {
    pub options: Vec<(String, String)>,
}

#[typetag::serde(name = "OutflowObjectStorageFactory")]
impl StorageFactory for ObjectStorageFactory {
    fn build(&self, _config: &StorageConfig) -> Result<Arc<dyn Storage>> {
        Ok(Arc::new(ObjectStorage { options: self.options.clone(), stores: Default::default() }))
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ObjectStorage {
    options: Vec<(String, String)>,
    /// One client per `scheme://bucket`.
    #[serde(skip)]
    stores: Arc<Mutex<HashMap<String, Arc<dyn ObjectStore>>>>,
}

impl ObjectStorage {
    fn shared(&self) -> Arc<dyn Storage> {
        Arc::new(ObjectStorage { options: self.options.clone(), stores: self.stores.clone() })
    }

    /// The store holding `path` and the object key inside it.
    fn locate(&self, path: &str) -> Result<(Arc<dyn ObjectStore>, ObjectPath)> {
        let url = url::Url::parse(path)
            .map_err(|e| Error::new(ErrorKind::DataInvalid, format!("{path:?} is not a storage URL: {e}")))?;
        let bucket = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
        let mut stores = self.stores.lock().expect("store cache lock");
        if let Some(store) = stores.get(&bucket) {
            let key = ObjectPath::from_url_path(url.path()).map_err(|e| io_err(path, e))?;
            return Ok((store.clone(), key));
        }
        let (store, key) = object_store::parse_url_opts(&url, self.options.iter().map(|(k, v)| (k, v.clone())))
            .map_err(|e| io_err(path, e))?;
        let store: Arc<dyn ObjectStore> = Arc::from(store);
        stores.insert(bucket, store.clone());
        Ok((store, key))
    }
}

fn io_err(path: &str, e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Unexpected, format!("{path}: {e}"))
}

#[async_trait]
#[typetag::serde(name = "OutflowObjectStorage")]
impl Storage for ObjectStorage {
    async fn exists(&self, path: &str) -> Result<bool> {
        let (store, key) = self.locate(path)?;
        match store.head(&key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(io_err(path, e)),
        }
    }

    async fn metadata(&self, path: &str) -> Result<FileMetadata> {
        let (store, key) = self.locate(path)?;
        let meta = store.head(&key).await.map_err(|e| io_err(path, e))?;
        Ok(FileMetadata { size: meta.size })
    }

    async fn read(&self, path: &str) -> Result<Bytes> {
        let (store, key) = self.locate(path)?;
        let got = store.get(&key).await.map_err(|e| io_err(path, e))?;
        got.bytes().await.map_err(|e| io_err(path, e))
    }

    async fn reader(&self, path: &str) -> Result<Box<dyn FileRead>> {
        let (store, key) = self.locate(path)?;
        Ok(Box::new(ObjectRead { store, key, path: path.to_string() }))
    }

    async fn write(&self, path: &str, bs: Bytes) -> Result<()> {
        let (store, key) = self.locate(path)?;
        store.put(&key, PutPayload::from(bs)).await.map_err(|e| io_err(path, e))?;
        Ok(())
    }

    async fn writer(&self, path: &str) -> Result<Box<dyn FileWrite>> {
        let (store, key) = self.locate(path)?;
        Ok(Box::new(ObjectWrite { writer: Some(BufWriter::new(store, key)), path: path.to_string() }))
    }

    async fn delete(&self, path: &str) -> Result<()> {
        let (store, key) = self.locate(path)?;
        match store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(io_err(path, e)),
        }
    }

    async fn delete_prefix(&self, path: &str) -> Result<()> {
        let (store, key) = self.locate(path)?;
        let mut listed = store.list(Some(&key));
        while let Some(meta) = listed.next().await {
            let meta = meta.map_err(|e| io_err(path, e))?;
            store.delete(&meta.location).await.map_err(|e| io_err(path, e))?;
        }
        Ok(())
    }

    async fn delete_stream(&self, mut paths: BoxStream<'static, String>) -> Result<()> {
        while let Some(path) = paths.next().await {
            self.delete(&path).await?;
        }
        Ok(())
    }

    fn new_input(&self, path: &str) -> Result<InputFile> {
        Ok(InputFile::new(self.shared(), path.to_string()))
    }

    fn new_output(&self, path: &str) -> Result<OutputFile> {
        Ok(OutputFile::new(self.shared(), path.to_string()))
    }
}

struct ObjectRead {
    store: Arc<dyn ObjectStore>,
    key: ObjectPath,
    path: String,
}

#[async_trait]
impl FileRead for ObjectRead {
    async fn read(&self, range: Range<u64>) -> Result<Bytes> {
        self.store.get_range(&self.key, range).await.map_err(|e| io_err(&self.path, e))
    }
}

struct ObjectWrite {
    writer: Option<BufWriter>,
    path: String,
}

#[async_trait]
impl FileWrite for ObjectWrite {
    async fn write(&mut self, bs: Bytes) -> Result<()> {
        let w = self.writer.as_mut().ok_or_else(|| io_err(&self.path, "write after close"))?;
        w.put(bs).await.map_err(|e| io_err(&self.path, e))
    }

    async fn close(&mut self) -> Result<()> {
        let mut w = self.writer.take().ok_or_else(|| io_err(&self.path, "closed twice"))?;
        tokio::io::AsyncWriteExt::shutdown(&mut w).await.map_err(|e| io_err(&self.path, e))
    }
}
