//! The Parquet sink's factory: `validate` (the settings alone), `build`
//! (recovery from the manifests, on a blocking thread) and `preflight`
//! (`outflow check`: a probe file written and deleted in the directory, or
//! a probe object under the store prefix).

use async_trait::async_trait;

use super::ParquetConfig;
use crate::preflight::{object_store_writable, writable_dir, Probe};
use crate::sink::open_blocking;
use crate::{Checkpoint, Sink, SinkContext, SinkError, SinkFactory};

#[async_trait]
impl SinkFactory for ParquetConfig {
    fn name(&self) -> &str {
        &self.name
    }

    fn validate(&self) -> Result<(), SinkError> {
        ParquetConfig::validate(self)
    }

    async fn build(&self, _ctx: SinkContext, checkpoint: Option<&Checkpoint>) -> Result<Box<dyn Sink>, SinkError> {
        let (config, checkpoint) = (self.clone(), checkpoint.cloned());
        open_blocking("parquet", move |runtime| config.open(checkpoint.as_ref(), runtime)).await
    }

    async fn preflight(&self) -> Vec<Probe> {
        let what = format!("sink {:?}: {} is writable", self.name, self.path);
        let result = if self.path.contains("://") {
            let options: Vec<(String, String)> =
                self.storage_options.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            object_store_writable(&self.path, &options).await
        } else {
            writable_dir(std::path::Path::new(&self.path))
        };
        vec![match result {
            Ok(()) => Probe::pass(what),
            Err(why) if self.path.contains("://") => Probe::fail(
                format!("{what} ({why})"),
                "check the bucket, the credentials and storage_options (endpoint, region) of the sink",
            ),
            Err(why) => Probe::fail(
                format!("{what} ({why})"),
                format!("create {} and make it writable for this user", self.path),
            ),
        }]
    }
}
