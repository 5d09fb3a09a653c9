//! The `[[sink]] kind = "kinesis"` settings and their checks.

use serde::Deserialize;

use crate::format::routing::NameTemplate;
use crate::format::Format;
use crate::SinkError;

/// Kinesis's own limits on one `PutRecords` call.
pub const MAX_BATCH_RECORDS: usize = 500;
pub const MAX_BATCH_BYTES: usize = 5 * 1024 * 1024;
/// One record's data plus partition key.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KinesisConfig {
    pub name: String,
    /// The data stream every change goes to; `{name}` (the pipeline's name)
    /// and `{db}` are replaced. One stream per sink: the table is in each
    /// record's data.
    pub stream: String,
    /// AWS region; unset: the SDK's chain (`AWS_REGION`, the profile).
    #[serde(default)]
    pub region: Option<String>,
    /// Endpoint override (a local Kinesis API, a VPC endpoint).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Record data format: `debezium` (envelope) or `json` (the row flat).
    #[serde(default)]
    pub format: Format,
    /// Create the stream when it is missing (with `shards` shards);
    /// false: a missing stream stops the run.
    #[serde(default = "default_true")]
    pub create_stream: bool,
    /// Shard count of a stream this sink creates.
    #[serde(default = "default_shards")]
    pub shards: u32,
    /// Records per `PutRecords` call (Kinesis allows at most 500).
    #[serde(default = "default_batch_records")]
    pub batch_records: usize,
    /// Shown in place of a TOASTed value the source did not send.
    #[serde(default = "default_placeholder")]
    pub unavailable_value_placeholder: String,
}

fn default_true() -> bool {
    true
}

fn default_shards() -> u32 {
    1
}

fn default_batch_records() -> usize {
    MAX_BATCH_RECORDS
}

fn default_placeholder() -> String {
    "__debezium_unavailable_value".into()
}

impl KinesisConfig {
    /// The settings checks `build()` makes, without connecting.
    pub fn validate(&self) -> Result<(), SinkError> {
        self.check().map(|_| ())
    }

    pub(crate) fn check(&self) -> Result<NameTemplate, SinkError> {
        let bad = |what: String| SinkError::Data(format!("sink {:?}: {what}", self.name));
        if self.batch_records == 0 || self.batch_records > MAX_BATCH_RECORDS {
            return Err(bad(format!(
                "`batch_records = {}`: Kinesis takes 1 to {MAX_BATCH_RECORDS} records per PutRecords call",
                self.batch_records
            )));
        }
        if self.shards == 0 {
            return Err(bad("`shards` must be at least 1".into()));
        }
        if let Some(e) = &self.endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(bad(format!("`endpoint = {e:?}` is not a URL; use http(s)://host:port")));
            }
        }
        if self.region.as_deref().is_some_and(str::is_empty) {
            return Err(bad("`region` is empty; set it (e.g. \"us-east-1\") or remove it to use AWS_REGION".into()));
        }
        if self.stream.contains("{schema}") || self.stream.contains("{table}") {
            return Err(bad(format!(
                "`stream = {:?}`: one sink writes one stream (each record's data names its table); \
                 use only {{name}} or {{db}} in it",
                self.stream
            )));
        }
        let template = NameTemplate::parse(&self.stream, "stream name")
            .map_err(|e| bad(format!("`stream = {:?}`: {e}", self.stream)))?;
        Ok(template)
    }

    /// The stream's name for this pipeline, checked against Kinesis's rules.
    pub(crate) fn stream_name(&self, template: &NameTemplate, pipeline: &str, db: &str) -> Result<String, SinkError> {
        let name = template.render(pipeline, db, "", "", String::push_str);
        let ok = !name.is_empty()
            && name.len() <= 128
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !ok {
            return Err(SinkError::Data(format!(
                "sink {:?}: stream name {name:?} is not a valid Kinesis stream name \
                 (1 to 128 of a-z A-Z 0-9 _ . -); change `stream`",
                self.name
            )));
        }
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: serde_json::Value) -> Result<KinesisConfig, serde_json::Error> {
        let mut v = serde_json::json!({"name": "k", "stream": "outflow"});
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(v)
    }

    #[test]
    fn defaults_validate_and_render() {
        let c = config(serde_json::json!({})).unwrap();
        let t = c.check().unwrap();
        assert_eq!(c.stream_name(&t, "app", "db").unwrap(), "outflow");
        assert!(c.create_stream);
        assert_eq!(c.batch_records, 500);
        let c = config(serde_json::json!({"stream": "{name}-cdc"})).unwrap();
        let t = c.check().unwrap();
        assert_eq!(c.stream_name(&t, "app", "db").unwrap(), "app-cdc");
    }

    #[test]
    fn bad_settings_are_refused_with_the_setting_named() {
        let err = |extra| config(extra).unwrap().validate().unwrap_err().to_string();
        assert!(err(serde_json::json!({"batch_records": 501})).contains("`batch_records = 501`"));
        assert!(err(serde_json::json!({"shards": 0})).contains("`shards`"));
        assert!(err(serde_json::json!({"endpoint": "127.0.0.1:4566"})).contains("`endpoint"));
        assert!(err(serde_json::json!({"stream": "{schema}.{table}"})).contains("one sink writes one stream"));
        assert!(err(serde_json::json!({"stream": "{nope}"})).contains("unknown placeholder"));
        let c = config(serde_json::json!({"stream": "a b"})).unwrap();
        let t = c.check().unwrap();
        assert!(c.stream_name(&t, "x", "y").unwrap_err().to_string().contains("not a valid Kinesis stream name"));
        assert!(config(serde_json::json!({"topic": "x"})).is_err());
    }
}
