//! The Iceberg sink's factory: `validate` (the settings alone), `build`
//! (opening the catalog and reading back every table's last commit, on a
//! blocking thread) and `preflight` (`outflow check`: an existing catalog
//! opens and lists its namespaces, or its directory is writable; the
//! warehouse takes a probe file or object).

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use iceberg::io::LocalFsStorageFactory;
use iceberg::Catalog;

use super::{absolute, one_line, IcebergConfig};
use crate::preflight::{object_store_writable, writable_dir, Probe};
use crate::sink::open_blocking;
use crate::{Checkpoint, Sink, SinkContext, SinkError, SinkFactory};

#[async_trait]
impl SinkFactory for IcebergConfig {
    fn name(&self) -> &str {
        &self.name
    }

    fn validate(&self) -> Result<(), SinkError> {
        IcebergConfig::validate(self)
    }

    async fn build(&self, _ctx: SinkContext, _checkpoint: Option<&Checkpoint>) -> Result<Box<dyn Sink>, SinkError> {
        let config = self.clone();
        open_blocking("iceberg", move |runtime| config.open(runtime)).await
    }

    async fn preflight(&self) -> Vec<Probe> {
        let name = &self.name;
        let catalog_path = absolute(&self.catalog);
        let what = format!("sink {name:?}: the iceberg catalog {} can be opened", catalog_path.display());
        let catalog = if catalog_path.exists() {
            match self.open_catalog(&catalog_path, "file:///".into(), Arc::new(LocalFsStorageFactory)).await {
                Ok(c) => match c.list_namespaces(None).await {
                    Ok(_) => Probe::pass(what),
                    Err(e) => Probe::fail(
                        format!("{what}: {}", one_line(&e)),
                        "catalog must be an SQLite file outflow (or pyiceberg's SqlCatalog) created; move it aside or fix its permissions",
                    ),
                },
                Err(e) => Probe::fail(format!("{what}: {e}"), "make the catalog file readable and writable for this user"),
            }
        } else {
            let dir = catalog_path.parent().unwrap_or(Path::new("."));
            match writable_dir(dir) {
                Ok(()) => Probe::pass(format!("{what} (created on the first run)")),
                Err(why) => Probe::fail(
                    format!("{what} ({why})"),
                    format!("create {} and make it writable for this user", dir.display()),
                ),
            }
        };
        let what = format!("sink {name:?}: the warehouse {} is writable", self.warehouse);
        let warehouse = match self.warehouse.split_once("://") {
            Some(("file", rest)) => writable_dir(Path::new(rest)),
            None => writable_dir(&absolute(Path::new(&self.warehouse))),
            Some(_) => {
                let options: Vec<(String, String)> =
                    self.storage_options.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                object_store_writable(&self.warehouse, &options).await
            }
        };
        let warehouse = match warehouse {
            Ok(()) => Probe::pass(what),
            Err(why) if self.warehouse.contains("://") && !self.warehouse.starts_with("file://") => Probe::fail(
                format!("{what} ({why})"),
                "check the bucket, the credentials and storage_options (endpoint, region) of the sink",
            ),
            Err(why) => Probe::fail(
                format!("{what} ({why})"),
                format!("create {} and make it writable for this user", self.warehouse),
            ),
        };
        vec![catalog, warehouse]
    }
}
