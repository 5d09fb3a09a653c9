//! Signals: actions asked of a running `outflow run` — an ad-hoc snapshot
//! (optionally of the rows matching a condition), stopping one, pausing or
//! resuming a sink, adding tables to the capture, a log line.
//!
//! They arrive three ways and are handled the same, by the stream driver
//! (`src/stream.rs`), between two reads of the source:
//! - the admin API (`POST /api/...`, `api.rs`), behind `[admin] token`;
//! - the **signal table** (`[source] signal_table`, Debezium's
//!   `debezium_signal` columns `id, type, data`): rows inserted there are read
//!   from the log like any captured change — so they work from any SQL client
//!   and are ordered with the data — and never reach a sink (`table.rs`);
//! - `outflow snapshot --table` (a request file in the state directory).
//!
//! Types and data use Debezium's names where it has them (`execute-snapshot`
//! with `data-collections` and `additional-conditions`, `stop-snapshot`,
//! `log`); `pause-sink`, `resume-sink` and `add-tables` are outflow's.
//!
//! Every signal gets an id (the API makes one; a signal table row brings its
//! own) and a record — status `pending`, `running`, `done`, `stopped` or
//! `failed`, with a detail — kept in the state directory (`signals.json`,
//! the last [`KEEP`]), which `status`, `/status`, `/api/signals` and the
//! console show. A record is written before the API answers, so an accepted
//! signal survives a crash: pending ones are taken again by the next run. An
//! id already recorded is not run twice (a signal table row replayed after a
//! restart).

pub mod api;
pub mod run;
pub mod table;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use outflow_model::TableId;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use crate::state::{now_rfc3339, read_json, write_json_atomic};

/// Records kept (newest first).
pub const KEEP: usize = 100;

/// What a signal asks for, parsed from its type and data.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Snapshot these tables (patterns, as `[source] tables`), each with an
    /// optional SQL condition on its rows (Debezium's additional condition).
    ExecuteSnapshot {
        tables: Vec<String>,
        conditions: Vec<(String, String)>,
        condition: Option<String>,
    },
    /// Stop the ad-hoc snapshots of these tables (none: all of them).
    StopSnapshot {
        tables: Vec<String>,
    },
    PauseSink(String),
    ResumeSink(String),
    /// Add tables (names or patterns) to the capture and snapshot them.
    AddTables(Vec<String>),
    Log(String),
}

impl Action {
    /// Parses a signal's `type` and `data` (a JSON object; Debezium's names).
    pub fn parse(kind: &str, data: &Json) -> Result<Action, String> {
        let strings = |key: &str| -> Result<Vec<String>, String> {
            match data.get(key) {
                None | Some(Json::Null) => Ok(Vec::new()),
                Some(Json::Array(items)) => items
                    .iter()
                    .map(|v| {
                        v.as_str().map(str::to_string).ok_or_else(|| format!("\"{key}\" must be a list of strings"))
                    })
                    .collect(),
                Some(_) => Err(format!("\"{key}\" must be a list of strings")),
            }
        };
        let text = |key: &str| -> Result<String, String> {
            data.get(key)
                .and_then(Json::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("\"{key}\" (a string) is missing"))
        };
        if !data.is_object() {
            return Err("the signal's data must be a JSON object".into());
        }
        let snapshot_type = data.get("type").and_then(Json::as_str).unwrap_or("incremental");
        match kind {
            "execute-snapshot" => {
                if !snapshot_type.eq_ignore_ascii_case("incremental") {
                    return Err(format!(
                        "snapshot type {snapshot_type:?} is not supported: outflow's ad-hoc snapshots are incremental (they run while streaming goes on)"
                    ));
                }
                let tables = strings("data-collections")?;
                if tables.is_empty() {
                    return Err("\"data-collections\" lists no table".into());
                }
                let mut conditions = Vec::new();
                if let Some(list) = data.get("additional-conditions").filter(|v| !v.is_null()) {
                    let list = list.as_array().ok_or("\"additional-conditions\" must be a list")?;
                    for c in list {
                        let table = c.get("data-collection").and_then(Json::as_str);
                        let filter = c.get("filter").and_then(Json::as_str);
                        match (table, filter) {
                            (Some(t), Some(f)) => conditions.push((t.to_string(), f.to_string())),
                            _ => return Err("each additional condition needs \"data-collection\" and \"filter\"".into()),
                        }
                    }
                }
                let condition = data.get("additional-condition").and_then(Json::as_str).map(str::to_string);
                Ok(Action::ExecuteSnapshot { tables, conditions, condition: condition.filter(|c| !c.trim().is_empty()) })
            }
            "stop-snapshot" => Ok(Action::StopSnapshot { tables: strings("data-collections")? }),
            "pause-sink" => Ok(Action::PauseSink(text("sink")?)),
            "resume-sink" => Ok(Action::ResumeSink(text("sink")?)),
            "add-tables" => {
                let tables = strings("data-collections")?;
                if tables.is_empty() {
                    return Err("\"data-collections\" lists no table".into());
                }
                Ok(Action::AddTables(tables))
            }
            "log" => Ok(Action::Log(text("message")?)),
            other => Err(format!(
                "unknown signal type {other:?}: use execute-snapshot, stop-snapshot, pause-sink, resume-sink, add-tables or log"
            )),
        }
    }

    /// The SQL condition for `table` (`schema.table`), if any: its own
    /// additional condition, else the one for every table.
    pub fn condition_for(&self, table: &str) -> Option<String> {
        let Action::ExecuteSnapshot { conditions, condition, .. } = self else { return None };
        let own = conditions.iter().find(|(t, _)| t == table || unquoted(t) == table).map(|(_, c)| c.clone());
        own.or_else(|| condition.clone()).filter(|c| !c.trim().is_empty())
    }
}

/// `"public"."orders"` → `public.orders` (Debezium lets names be quoted).
fn unquoted(name: &str) -> String {
    name.replace('"', "").replace('`', "")
}

/// Where a signal came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Api,
    Table,
    Cli,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Running,
    Done,
    Stopped,
    Failed,
}

/// One signal as `status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SignalRecord {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub origin: Origin,
    pub data: Json,
    pub status: Status,
    pub detail: Option<String>,
    /// The captured tables a snapshot signal resolved to (its patterns
    /// expanded when it started): a restart resumes them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
    pub received_at: String,
    pub updated_at: String,
}

/// The signals of this process: records, and the queue the driver takes.
pub struct Hub {
    inner: Mutex<Inner>,
    arrived: tokio::sync::Notify,
}

#[derive(Default)]
struct Inner {
    records: VecDeque<SignalRecord>,
    queue: VecDeque<(String, Action)>,
    /// `signals.json` in the state directory (None: `tail`, tests).
    file: Option<PathBuf>,
    /// The tables the running source captures (for the API's checks).
    captured: Vec<TableId>,
}

/// The process's hub.
pub fn signals() -> &'static Hub {
    static HUB: OnceLock<Hub> = OnceLock::new();
    HUB.get_or_init(|| Hub { inner: Mutex::new(Inner::default()), arrived: tokio::sync::Notify::new() })
}

/// Reads the records a state directory holds (for `status`).
pub fn stored(state_dir: &std::path::Path) -> Vec<SignalRecord> {
    read_json::<Vec<SignalRecord>>(&state_dir.join("signals.json")).ok().flatten().unwrap_or_default()
}

impl Hub {
    /// Keeps records in `state_dir` from now on, starting with those there;
    /// signals accepted but never taken (pending) are queued again.
    pub fn attach(&self, state_dir: &std::path::Path) -> crate::error::Result<()> {
        let file = state_dir.join("signals.json");
        let records: Vec<SignalRecord> = read_json(&file)?.unwrap_or_default();
        let mut inner = self.lock();
        // Newest first on disk: queued oldest first.
        for r in records.iter().rev().filter(|r| r.status == Status::Pending) {
            if let Ok(action) = Action::parse(&r.kind, &r.data) {
                inner.queue.push_back((r.id.clone(), action));
            }
        }
        inner.records = records.into();
        inner.file = Some(file);
        Ok(())
    }

    /// Accepts a signal: records it as pending and queues it for the driver.
    /// A malformed one is recorded as failed. `id` None: a new one is made.
    /// Returns the id, or None when that id was seen before (a replay).
    pub fn submit(&self, id: Option<String>, kind: &str, data: Json, origin: Origin) -> Option<String> {
        let id = id.unwrap_or_else(new_id);
        let action = match Action::parse(kind, &data) {
            Ok(action) => action,
            Err(why) => return self.reject(id.clone(), kind, data, origin, why).then_some(id),
        };
        if !self.record(&id, kind, data, origin, Status::Pending, None) {
            return None;
        }
        self.lock().queue.push_back((id.clone(), action));
        self.arrived.notify_one();
        Some(id)
    }

    /// Records a signal that cannot be parsed at all (e.g. a signal table row
    /// whose data is not JSON) as failed; false if its id was seen before.
    pub fn reject(&self, id: String, kind: &str, data: Json, origin: Origin, why: String) -> bool {
        tracing::warn!(signal = %id, r#type = kind, error = %why, "malformed signal ignored");
        self.record(&id, kind, data, origin, Status::Failed, Some(why))
    }

    /// Adds a record, newest first; false if the id was seen before.
    fn record(&self, id: &str, kind: &str, data: Json, origin: Origin, status: Status, detail: Option<String>) -> bool {
        let mut inner = self.lock();
        if inner.records.iter().any(|r| r.id == id) {
            return false;
        }
        let now = now_rfc3339();
        inner.records.push_front(SignalRecord {
            id: id.to_string(),
            kind: kind.to_string(),
            origin,
            data,
            status,
            detail,
            tables: Vec::new(),
            received_at: now.clone(),
            updated_at: now,
        });
        inner.records.truncate(KEEP);
        inner.save();
        true
    }

    /// The queued signals, oldest first (for the driver).
    pub fn take(&self) -> Vec<(String, Action)> {
        self.lock().queue.drain(..).collect()
    }

    /// Waits until a signal is queued (cancel-safe).
    pub async fn arrived(&self) {
        self.arrived.notified().await
    }

    /// Sets a signal's status and detail.
    pub fn update(&self, id: &str, status: Status, detail: impl Into<Option<String>>) {
        let detail = detail.into();
        let mut inner = self.lock();
        let Some(r) = inner.records.iter_mut().find(|r| r.id == id) else { return };
        if r.status == status && r.detail == detail {
            return;
        }
        match status {
            Status::Failed => {
                tracing::warn!(signal = %id, r#type = %r.kind, detail = detail.as_deref().unwrap_or(""), "signal failed")
            }
            _ => {
                tracing::info!(signal = %id, r#type = %r.kind, status = ?status, detail = detail.as_deref().unwrap_or(""), "signal")
            }
        }
        r.status = status;
        r.detail = detail;
        r.updated_at = now_rfc3339();
        inner.save();
    }

    /// The records, newest first.
    pub fn list(&self) -> Vec<SignalRecord> {
        self.lock().records.iter().cloned().collect()
    }

    /// A running ad-hoc snapshot's record for `table`: a restart resumes it
    /// with the same condition. (id, the action.)
    pub fn running_snapshot(&self, table: &str) -> Option<(String, Action)> {
        let inner = self.lock();
        inner.records.iter().filter(|r| r.status == Status::Running && r.kind == "execute-snapshot").find_map(|r| {
            let action = Action::parse(&r.kind, &r.data).ok()?;
            r.tables.iter().any(|t| t == table).then(|| (r.id.clone(), action))
        })
    }

    /// Records the tables a snapshot signal resolved to.
    pub fn set_tables(&self, id: &str, tables: Vec<String>) {
        let mut inner = self.lock();
        if let Some(r) = inner.records.iter_mut().find(|r| r.id == id) {
            r.tables = tables;
            inner.save();
        }
    }

    /// Tells the API which tables are captured now.
    pub fn set_captured(&self, tables: Vec<TableId>) {
        self.lock().captured = tables;
    }

    pub fn captured(&self) -> Vec<TableId> {
        self.lock().captured.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    fn save(&self) {
        let Some(file) = &self.file else { return };
        if let Err(e) = write_json_atomic(file, &self.records) {
            tracing::warn!(error = %e.message, "cannot store the signals' records");
        }
    }
}

/// A new signal id: 16 hex digits, from the process's random hasher keys,
/// the clock and a counter.
fn new_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    format!("{:016x}", h.finish())
}

/// The data of an `execute-snapshot` signal for tables and one condition
/// (the API's and the CLI's form), in Debezium's shape.
pub fn snapshot_data(tables: &[String], condition: Option<&str>) -> Json {
    let mut data = json!({ "data-collections": tables, "type": "incremental" });
    if let Some(c) = condition.filter(|c| !c.trim().is_empty()) {
        data["additional-conditions"] =
            Json::Array(tables.iter().map(|t| json!({ "data-collection": t, "filter": c })).collect());
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debezium_signals_parse() {
        let data = json!({"data-collections": ["public.a", "public.b"], "type": "incremental",
            "additional-conditions": [{"data-collection": "public.a", "filter": "id > 5"}]});
        let action = Action::parse("execute-snapshot", &data).unwrap();
        assert_eq!(action.condition_for("public.a").as_deref(), Some("id > 5"));
        assert_eq!(action.condition_for("public.b"), None);
        let legacy = json!({"data-collections": ["public.a"], "additional-condition": "x = 1"});
        assert_eq!(
            Action::parse("execute-snapshot", &legacy).unwrap().condition_for("public.a").as_deref(),
            Some("x = 1")
        );
        assert!(Action::parse("execute-snapshot", &json!({"data-collections": []})).is_err());
        assert!(Action::parse("execute-snapshot", &json!({"data-collections": ["a.b"], "type": "blocking"}))
            .unwrap_err()
            .contains("incremental"));
        assert_eq!(Action::parse("stop-snapshot", &json!({})).unwrap(), Action::StopSnapshot { tables: vec![] });
        assert_eq!(Action::parse("pause-sink", &json!({"sink": "k"})).unwrap(), Action::PauseSink("k".into()));
        assert!(Action::parse("pause-sink", &json!({})).unwrap_err().contains("sink"));
        assert!(Action::parse("explode", &json!({})).unwrap_err().starts_with("unknown signal type"));
        assert!(Action::parse("log", &json!("text")).is_err());
        assert_eq!(
            snapshot_data(&["public.a".into()], Some("id > 1")),
            json!({"data-collections": ["public.a"],
            "type": "incremental", "additional-conditions": [{"data-collection": "public.a", "filter": "id > 1"}]})
        );
    }

    #[test]
    fn the_hub_records_queues_and_refuses_replays() {
        let dir = tempfile::tempdir().unwrap();
        let hub = Hub { inner: Mutex::new(Inner::default()), arrived: tokio::sync::Notify::new() };
        hub.attach(dir.path()).unwrap();
        let id = hub.submit(Some("s1".into()), "log", json!({"message": "hi"}), Origin::Table).unwrap();
        assert_eq!(id, "s1");
        assert!(hub.submit(Some("s1".into()), "log", json!({"message": "hi"}), Origin::Table).is_none());
        let bad = hub.submit(None, "log", json!({}), Origin::Api).unwrap();
        assert_eq!(hub.take(), vec![("s1".to_string(), Action::Log("hi".into()))]);
        let stored = stored(dir.path());
        assert_eq!(stored.len(), 2);
        assert_eq!((stored[0].id.as_str(), stored[0].status), (bad.as_str(), Status::Failed));
        // Pending signals (taken but not handled before a crash, or never
        // taken) are queued again by the next run.
        hub.submit(Some("s2".into()), "log", json!({"message": "later"}), Origin::Api);
        let again = Hub { inner: Mutex::new(Inner::default()), arrived: tokio::sync::Notify::new() };
        again.attach(dir.path()).unwrap();
        let queued: Vec<String> = again.take().into_iter().map(|(id, _)| id).collect();
        assert_eq!(queued, vec!["s1".to_string(), "s2".to_string()]);
    }
}
