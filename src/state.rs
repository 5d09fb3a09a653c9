//! The state directory: per-sink offsets, the source's identity and the
//! schema history, as small JSON files written atomically (write a temporary
//! file, fsync, rename over the old one, fsync the directory).
//!
//! Layout:
//! - `LOCK` — held with flock(2) by the one `outflow run` using the directory;
//!   holds its pid and start time so `status` can show who is running.
//! - `source.json` — the source database this directory belongs to.
//! - `sinks/<name>.json` — one sink's offset, event count and checkpoint.
//! - `schemas/<schema>.<table>.json` — every version of a table's schema.
//! - `dropped.json` — how many changes transforms dropped, per table.
//! - `detached.json` — the sinks the running process has detached (stopped
//!   feeding because they did not keep up), with the time; only while some
//!   are, and only meaningful while that process holds the lock.
//!
//! A file that cannot be read or parsed is an error naming the file; nothing
//! is ever overwritten to "repair" it.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use outflow_model::{KeyRange, Position};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One sink's durable progress.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SinkOffset {
    /// Everything at or before this position is durable in the sink.
    pub position: String,
    /// Events delivered over the sink's lifetime.
    pub events: u64,
    /// The sink's own recovery data (e.g. a file's committed length).
    #[serde(default)]
    pub checkpoint: serde_json::Value,
    /// When this offset was committed (RFC 3339, UTC).
    pub committed_at: String,
    /// Snapshot progress per table (`schema.table`), as durable as `position`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub snapshot: BTreeMap<String, TableSnapshot>,
    /// Commit time of the last transaction durable in the sink
    /// (microseconds since the epoch); absent in files of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_commit_ts_us: Option<i64>,
}

/// One table's snapshot progress in one sink.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TableSnapshot {
    /// Key of the last row delivered (text values), None before the first chunk.
    pub last_key: Option<Vec<Option<String>>>,
    /// Keyless tables: where the next chunk starts (PostgreSQL page number).
    #[serde(default)]
    pub resume: Option<u64>,
    /// Tables read as several key ranges at once (see [`KeyRange`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<KeyRange>,
    pub rows: u64,
    pub done: bool,
}

impl SinkOffset {
    pub fn position(&self, path: &Path) -> Result<Position> {
        self.position.parse().map_err(|e| corrupt(path, &format!("{e}")))
    }
}

/// What source a state directory belongs to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceIdentity {
    pub kind: String,
    pub system_identifier: String,
    pub database: String,
    pub slot: String,
}

/// Who holds the lock.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockInfo {
    pub pid: u32,
    pub started_at: String,
}

pub struct StateDir {
    dir: PathBuf,
    /// Kept open while we hold the lock; closing it releases the lock.
    _lock: Option<File>,
}

impl StateDir {
    /// Opens the directory for a run: creates it if needed and takes the
    /// lock, refusing when another process holds it.
    pub fn open_locked(dir: &Path) -> Result<StateDir> {
        fs::create_dir_all(dir.join("sinks")).and_then(|_| fs::create_dir_all(dir.join("schemas"))).map_err(|e| {
            Error::fatal(
                format!("cannot create state directory {}: {e}", dir.display()),
                "set [state] dir to a writable directory",
            )
        })?;
        let lock_path = dir.join("LOCK");
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::fatal(format!("cannot open {}: {e}", lock_path.display()), "check permissions"))?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let holder = read_lock_info(&lock_path).map(|i| format!(" (pid {})", i.pid)).unwrap_or_default();
            return Err(Error::fatal(
                format!("another outflow run{holder} is using state directory {}", dir.display()),
                "stop the other run first, or give this one its own [state] dir",
            ));
        }
        let info = LockInfo { pid: std::process::id(), started_at: now_rfc3339() };
        file.set_len(0).ok();
        let _ = file.write_all(serde_json::to_string(&info).unwrap_or_default().as_bytes());
        let _ = file.sync_all();
        Ok(StateDir { dir: dir.to_path_buf(), _lock: Some(file) })
    }

    /// Opens the directory read-only (for `status`), without the lock.
    pub fn open_read_only(dir: &Path) -> StateDir {
        StateDir { dir: dir.to_path_buf(), _lock: None }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The running process holding the lock, if any.
    pub fn running(&self) -> Option<LockInfo> {
        let path = self.dir.join("LOCK");
        let file = File::open(&path).ok()?;
        // SAFETY: flock on a file descriptor we own.
        let free = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0;
        if free {
            // SAFETY: as above; releases the probe lock.
            unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
            return None;
        }
        read_lock_info(&path)
    }

    pub fn sink_offset_path(&self, sink: &str) -> PathBuf {
        self.dir.join("sinks").join(format!("{sink}.json"))
    }

    pub fn sink_offset(&self, sink: &str) -> Result<Option<SinkOffset>> {
        read_json(&self.sink_offset_path(sink))
    }

    pub fn write_sink_offset(&self, sink: &str, offset: &SinkOffset) -> Result<()> {
        write_json_atomic(&self.sink_offset_path(sink), offset)
    }

    /// Names of all sinks with a stored offset.
    pub fn sink_names(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.dir.join("sinks"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json").map(str::to_string))
            .collect();
        names.sort();
        names
    }

    pub fn source_identity(&self) -> Result<Option<SourceIdentity>> {
        read_json(&self.dir.join("source.json"))
    }

    pub fn write_source_identity(&self, id: &SourceIdentity) -> Result<()> {
        write_json_atomic(&self.dir.join("source.json"), id)
    }

    /// Reads every state file once, so a corrupt one stops a run before it
    /// connects anywhere (and not in the middle of streaming).
    pub fn check_all(&self) -> Result<()> {
        for sub in ["sinks", "schemas"] {
            let Ok(entries) = fs::read_dir(self.dir.join(sub)) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "json") {
                    read_json::<serde_json::Value>(&path)?;
                }
            }
        }
        self.paused()?;
        self.added_tables()?;
        read_json::<serde_json::Value>(&self.dir.join("signals.json"))?;
        self.source_identity().map(|_| ())
    }

    /// Asks a running (or the next) `run` to snapshot `table` again, only
    /// the rows matching `condition` when given.
    pub fn request_snapshot(&self, table: &str, condition: Option<&str>) -> Result<()> {
        let dir = self.dir.join("snapshot-requests");
        fs::create_dir_all(&dir).map_err(|e| {
            Error::fatal(format!("cannot create {}: {e}", dir.display()), "check the state directory's permissions")
        })?;
        let request = serde_json::json!({ "requested_at": now_rfc3339(), "filter": condition });
        write_json_atomic(&dir.join(format!("{table}.json")), &request)
    }

    /// The condition a pending snapshot request carries, if any.
    pub fn snapshot_request_condition(&self, table: &str) -> Option<String> {
        let path = self.dir.join("snapshot-requests").join(format!("{table}.json"));
        let request: serde_json::Value = read_json(&path).ok().flatten()?;
        request.get("filter")?.as_str().map(str::to_string)
    }

    /// Tables with a pending snapshot request.
    pub fn snapshot_requests(&self) -> Vec<String> {
        let mut tables: Vec<String> = fs::read_dir(self.dir.join("snapshot-requests"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json").map(str::to_string))
            .collect();
        tables.sort();
        tables
    }

    /// Marks a request as taken (the snapshot it asked for has started).
    pub fn take_snapshot_request(&self, table: &str) {
        let _ = fs::remove_file(self.dir.join("snapshot-requests").join(format!("{table}.json")));
    }

    /// Records which sinks the running process has detached, and since when
    /// (none: the file is removed).
    pub fn write_detached(&self, detached: &BTreeMap<String, String>) -> Result<()> {
        let path = self.dir.join("detached.json");
        if detached.is_empty() {
            return match fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::fatal(
                    format!("cannot remove {}: {e}", path.display()),
                    "check the state directory's permissions",
                )),
                _ => Ok(()),
            };
        }
        write_json_atomic(&path, detached)
    }

    /// The sinks a running process has detached (name → since when).
    pub fn detached(&self) -> BTreeMap<String, String> {
        if self.running().is_none() {
            return BTreeMap::new();
        }
        read_json(&self.dir.join("detached.json")).ok().flatten().unwrap_or_default()
    }

    /// Records the sinks paused by a signal (`paused.json`): they stay
    /// paused across restarts until resumed.
    pub fn write_paused(&self, paused: &[String]) -> Result<()> {
        write_json_atomic(&self.dir.join("paused.json"), &paused)
    }

    /// See [`write_paused`](Self::write_paused).
    pub fn paused(&self) -> Result<Vec<String>> {
        Ok(read_json(&self.dir.join("paused.json"))?.unwrap_or_default())
    }

    /// Records the table patterns `add-tables` signals added to the capture
    /// (`added-tables.json`): later runs capture them too.
    pub fn write_added_tables(&self, patterns: &[String]) -> Result<()> {
        write_json_atomic(&self.dir.join("added-tables.json"), &patterns)
    }

    /// See [`write_added_tables`](Self::write_added_tables).
    pub fn added_tables(&self) -> Result<Vec<String>> {
        Ok(read_json(&self.dir.join("added-tables.json"))?.unwrap_or_default())
    }

    /// Stores how many changes transforms dropped, per table (`dropped.json`,
    /// for `status`; counts over every run).
    pub fn write_dropped(&self, dropped: &BTreeMap<String, u64>) -> Result<()> {
        write_json_atomic(&self.dir.join("dropped.json"), dropped)
    }

    /// See [`write_dropped`](Self::write_dropped); empty when none were.
    pub fn dropped(&self) -> BTreeMap<String, u64> {
        read_json(&self.dir.join("dropped.json")).ok().flatten().unwrap_or_default()
    }

    /// Appends a schema version to the table's history file.
    pub fn record_schema(&self, table: &str, version: serde_json::Value) -> Result<()> {
        let path = self.dir.join("schemas").join(format!("{table}.json"));
        let mut history: Vec<serde_json::Value> = read_json(&path)?.unwrap_or_default();
        if history.last() == Some(&version) {
            return Ok(());
        }
        history.push(version);
        write_json_atomic(&path, &history)
    }
}

fn read_lock_info(path: &Path) -> Option<LockInfo> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

fn corrupt(path: &Path, why: &str) -> Error {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let in_dir = |dir: &str| path.parent().and_then(|p| p.file_name()).is_some_and(|d| d == dir);
    // What removing the file costs differs per file.
    let hint = if in_dir("sinks") {
        "restore it from a backup, or remove it to start that sink over (it takes a new snapshot, then streams from the slot or binlog)"
    } else if in_dir("schemas") {
        "restore it from a backup, or remove it (it only holds the table's schema history; it starts again)"
    } else if name == "source.json" {
        "restore it from a backup, or remove it if this directory belongs to the configured source (it is written again)"
    } else {
        "restore it from a backup, or remove it"
    };
    Error::fatal(format!("state file {} is corrupt: {why}", path.display()), hint)
}

/// Parses the bytes of the state file at `path` (named in errors). An
/// empty or cut-off file is corrupt, never "no state". Pure: the fuzz
/// target `state` runs every state file type through it.
pub fn parse_state<T: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(corrupt(path, &format!("it is empty ({} bytes)", bytes.len())));
    }
    serde_json::from_slice(bytes).map_err(|e| corrupt(path, &e.to_string()))
}

/// A sink offset file as `run` reads it: the JSON, then its position.
pub fn parse_sink_offset(path: &Path, bytes: &[u8]) -> Result<(SinkOffset, Position)> {
    let offset: SinkOffset = parse_state(path, bytes)?;
    let position = offset.position(path)?;
    Ok((offset, position))
}

/// Reads a JSON state file; a missing file is `None`, an unreadable or
/// unparsable one is an error (never silently replaced).
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::fatal(
                format!("cannot read state file {}: {e}", path.display()),
                "check the state directory's permissions",
            ))
        }
    };
    parse_state(path, &bytes).map(Some)
}

/// Writes `value` to `path` atomically: temp file, fsync, rename, fsync dir.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let io = |e: std::io::Error| {
        Error::fatal(
            format!("cannot write state file {}: {e}", path.display()),
            "check free space and permissions of the state directory; the previous state is intact",
        )
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("state")));
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| io(std::io::Error::other(e)))?;
    bytes.push(b'\n');
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io)
}

pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format_rfc3339(now.as_secs() as i64)
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // civil-from-days (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip_and_corruption_is_reported_not_repaired() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open_locked(tmp.path()).unwrap();
        assert_eq!(state.sink_offset("a").unwrap(), None);
        let off = SinkOffset {
            position: "lsn:0/10".into(),
            events: 3,
            checkpoint: serde_json::json!({"len": 7}),
            committed_at: now_rfc3339(),
            snapshot: BTreeMap::new(),
            last_commit_ts_us: Some(1_700_000_000_000_000),
        };
        state.write_sink_offset("a", &off).unwrap();
        assert_eq!(state.sink_offset("a").unwrap(), Some(off));
        assert_eq!(state.sink_names(), vec!["a".to_string()]);

        let path = state.sink_offset_path("a");
        fs::write(&path, b"{\"position\": garbage").unwrap();
        let err = state.sink_offset("a").unwrap_err();
        assert!(err.message.contains(&path.display().to_string()), "{}", err.message);
        assert_eq!(fs::read(&path).unwrap(), b"{\"position\": garbage");
    }

    #[test]
    fn empty_and_cut_off_files_are_corrupt_and_named() {
        let path = Path::new("state/sinks/events.json");
        for bytes in [&b""[..], b"\n", b"{\"position\": \"lsn:0/10\", \"ev"] {
            let err = parse_state::<SinkOffset>(path, bytes).unwrap_err();
            assert!(err.message.contains("state/sinks/events.json is corrupt"), "{}", err.message);
            assert!(err.hint().unwrap().contains("start that sink over"), "{:?}", err.hint());
        }
        let err = parse_state::<SourceIdentity>(Path::new("state/source.json"), b"").unwrap_err();
        assert!(err.message.contains("empty"), "{}", err.message);
        assert!(err.hint().unwrap().contains("written again"), "{:?}", err.hint());
        let bad_position = br#"{"position": "lsn:zz", "events": 0, "committed_at": "x"}"#;
        assert!(parse_sink_offset(path, bad_position).is_err());
    }

    #[test]
    fn offset_files_of_older_versions_still_read() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open_locked(tmp.path()).unwrap();
        let old =
            r#"{"position": "lsn:0/10", "events": 3, "checkpoint": null, "committed_at": "2026-01-01T00:00:00Z"}"#;
        fs::write(state.sink_offset_path("old"), old).unwrap();
        let offset = state.sink_offset("old").unwrap().unwrap();
        assert_eq!(offset.last_commit_ts_us, None);
        assert_eq!(offset.events, 3);
    }

    #[test]
    fn second_lock_on_one_directory_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let first = StateDir::open_locked(tmp.path()).unwrap();
        let err = StateDir::open_locked(tmp.path()).err().expect("second lock must fail");
        assert!(err.message.contains("another outflow run"), "{}", err.message);
        assert_eq!(first.running().map(|i| i.pid), Some(std::process::id()));
        drop(first);
        assert!(StateDir::open_locked(tmp.path()).is_ok());
    }

    #[test]
    fn rfc3339_formatting() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
