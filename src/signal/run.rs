//! How the stream driver carries out signals, between two reads of the
//! source:
//!
//! - `execute-snapshot`: the patterns are matched against the captured
//!   tables; a table already being read, or a condition the server refuses
//!   (checked by preparing it), fails the signal and starts nothing; one
//!   whose table is being read waits (pending) until that snapshot ends. Else a
//!   reader starts per table (the DBLog windows make it safe while changes
//!   stream) and the signal is `running` until every table's reader ended:
//!   `done`, or `stopped` if a `stop-snapshot` cut it short. A restart
//!   resumes its tables, with their condition, from the sinks' progress.
//! - `stop-snapshot`: the tables' chunks are dropped from then on and their
//!   progress stored as done (see `Windows::stop`).
//! - `pause-sink` / `resume-sink`: see `pipeline::pause`.
//! - `add-tables`: the source captures the tables (PostgreSQL: added to
//!   outflow's publication) and they are snapshotted like a new table; the
//!   patterns are kept in the state directory for later runs.
//! - `log`: one info line.

use std::collections::BTreeSet;

use outflow_model::{TableFilter, TableId};

use super::{signals, snapshot_data, Action, Origin, Status};
use crate::pipeline::{pause, resume};
use crate::source::Source;
use crate::state::TableSnapshot;
use crate::stream::Driver;

/// A running `execute-snapshot` (or `add-tables`) signal and the tables it
/// still waits for.
pub struct SnapshotSignal {
    id: String,
    left: BTreeSet<TableId>,
    stopped: bool,
}

type Outcome = Result<(Status, Option<String>), String>;

impl Driver<'_> {
    /// Takes `outflow snapshot --table` requests as signals, then runs every
    /// queued signal.
    pub(crate) async fn handle_signals<S: Source>(&mut self, source: &mut S) {
        if let Some(state) = self.state {
            for table in state.snapshot_requests() {
                let condition = state.snapshot_request_condition(&table);
                signals().submit(
                    None,
                    "execute-snapshot",
                    snapshot_data(&[table.clone()], condition.as_deref()),
                    Origin::Cli,
                );
                state.take_snapshot_request(&table);
            }
        }
        // Snapshots that waited for a table's running snapshot come first.
        let mut todo = std::mem::take(&mut self.deferred_signals);
        todo.extend(signals().take());
        for (id, action) in todo {
            let (status, detail) = match self.run_signal(source, &id, action).await {
                Ok(outcome) => outcome,
                Err(why) => (Status::Failed, Some(why)),
            };
            signals().update(&id, status, detail);
        }
    }

    async fn run_signal<S: Source>(&mut self, source: &mut S, id: &str, action: Action) -> Outcome {
        match &action {
            Action::ExecuteSnapshot { tables, .. } => {
                self.all_attached()?;
                let captured: Vec<TableId> =
                    source.tables().iter().filter(|t| Some(*t) != self.signal_table.as_ref()).cloned().collect();
                let tables = expand(tables, &captured).map_err(|p| format!("{p} matches no captured table"))?;
                let running = self.snapshots.as_ref().map(|s| s.windows.running_tables()).unwrap_or_default();
                if let Some(busy) = tables.iter().find(|t| running.contains(t)) {
                    let detail = format!("waits for the running snapshot of {busy} to end");
                    self.deferred_signals.push((id.to_string(), action.clone()));
                    return Ok((Status::Pending, Some(detail)));
                }
                let mut conditions = Vec::new();
                for table in &tables {
                    let condition = action.condition_for(&table.to_string());
                    if let Some(c) = &condition {
                        source.check_condition(table, c).await.map_err(|e| e.message)?;
                    }
                    conditions.push(condition);
                }
                for (table, condition) in tables.iter().zip(conditions) {
                    tracing::info!(signal = %id, table = %table, condition = condition.is_some(), "ad-hoc snapshot started");
                    source.spawn_reader(self.snapshots_mut(), table.clone(), TableSnapshot::default(), condition);
                }
                Ok(self.track(id, tables))
            }
            Action::StopSnapshot { tables } => {
                let running = self.snapshots.as_ref().map(|s| s.windows.running_tables()).unwrap_or_default();
                let chosen = match tables.is_empty() {
                    true => running,
                    false => expand(tables, &running).map_err(|p| format!("no snapshot of {p} is running"))?,
                };
                if chosen.is_empty() {
                    return Err("no snapshot is running".into());
                }
                if let Some(snapshots) = self.snapshots.as_mut() {
                    for table in &chosen {
                        snapshots.windows.stop(table);
                    }
                }
                for s in self.snapshot_signals.iter_mut().filter(|s| s.left.iter().any(|t| chosen.contains(t))) {
                    s.stopped = true;
                }
                Ok((Status::Done, Some(format!("stopped the snapshot of {}", names(&chosen)))))
            }
            Action::PauseSink(name) => {
                let running = self.snapshots.as_ref().map(|s| s.windows.running_tables()).unwrap_or_default();
                if !running.is_empty() {
                    return Err(format!(
                        "a snapshot is running ({}): its rows would not reach a paused sink; pause after it completes, or stop it first",
                        names(&running)
                    ));
                }
                pause(self.sinks, name)?;
                Ok((Status::Done, Some(format!("sink {name:?} paused"))))
            }
            Action::ResumeSink(name) => {
                resume(self.sinks, name)?;
                Ok((Status::Done, Some(format!("sink {name:?} resumed"))))
            }
            Action::AddTables(patterns) => {
                if self.snapshot_new_tables {
                    self.all_attached()?;
                }
                let new = source.add_tables(patterns).await.map_err(|e| match e.hint {
                    Some(hint) => format!("{} ({hint})", e.message),
                    None => e.message,
                })?;
                if new.is_empty() {
                    return Err(format!(
                        "{patterns:?} match no table that is not captured already (or exclude_tables excludes them)"
                    ));
                }
                signals().set_captured(source.tables().to_vec());
                if let Some(state) = self.state {
                    let mut added = state.added_tables().unwrap_or_default();
                    added.extend(patterns.iter().filter(|p| !added.contains(p)).cloned().collect::<Vec<_>>());
                    state.write_added_tables(&added).map_err(|e| e.message)?;
                }
                if !self.snapshot_new_tables {
                    return Ok((
                        Status::Done,
                        Some(format!("capturing {} (no snapshot: [snapshot] mode)", names(&new))),
                    ));
                }
                for table in &new {
                    source.spawn_reader(self.snapshots_mut(), table.clone(), TableSnapshot::default(), None);
                }
                let (status, _) = self.track(id, new.clone());
                Ok((status, Some(format!("capturing {}; snapshotting them", names(&new)))))
            }
            Action::Log(message) => {
                tracing::info!(signal = %id, "{message}");
                Ok((Status::Done, None))
            }
        }
    }

    /// Snapshot rows reach only the sinks being fed: none may be paused or
    /// detached when a snapshot starts.
    fn all_attached(&self) -> Result<(), String> {
        match self.sinks.iter().find(|s| s.is_detached()) {
            Some(s) => Err(format!(
                "sink {:?} is paused or detached: snapshot rows would not reach it; resume it (or wait until it re-attaches) first",
                s.name
            )),
            None => Ok(()),
        }
    }

    /// Follows a snapshot signal's tables until their readers end.
    fn track(&mut self, id: &str, tables: Vec<TableId>) -> (Status, Option<String>) {
        signals().set_tables(id, tables.iter().map(ToString::to_string).collect());
        let detail = format!("snapshotting {}", names(&tables));
        self.snapshot_signals.push(SnapshotSignal {
            id: id.to_string(),
            left: tables.into_iter().collect(),
            stopped: false,
        });
        (Status::Running, Some(detail))
    }

    /// The condition of the ad-hoc snapshot a restart resumes for `table`
    /// (its signal is followed again).
    pub(crate) fn resumed_signal(&mut self, table: &TableId) -> Option<String> {
        let (id, action) = signals().running_snapshot(&table.to_string())?;
        match self.snapshot_signals.iter_mut().find(|s| s.id == id) {
            Some(s) => {
                s.left.insert(table.clone());
            }
            None => self.snapshot_signals.push(SnapshotSignal {
                id: id.clone(),
                left: BTreeSet::from([table.clone()]),
                stopped: false,
            }),
        }
        action.condition_for(&table.to_string())
    }

    /// Signals recorded as running whose tables were all complete before
    /// this run started (it stopped before saying so) are done.
    pub(crate) fn settle_resumed_signals(&mut self) {
        for record in signals().list() {
            let resumed = self.snapshot_signals.iter().any(|s| s.id == record.id);
            if record.status == Status::Running && !resumed && !record.tables.is_empty() {
                signals().update(&record.id, Status::Done, Some("complete before the restart".to_string()));
            }
        }
    }

    /// Ends the snapshot signals whose tables' readers all ended.
    pub(crate) fn snapshots_ended(&mut self) {
        let Some(snapshots) = self.snapshots.as_mut() else { return };
        let ended = snapshots.windows.take_ended();
        if ended.is_empty() {
            return;
        }
        for s in &mut self.snapshot_signals {
            for table in &ended {
                s.left.remove(table);
            }
        }
        for s in self.snapshot_signals.iter().filter(|s| s.left.is_empty()) {
            let (status, detail) = match s.stopped {
                true => (Status::Stopped, "stopped before it completed"),
                false => (Status::Done, "every table read"),
            };
            signals().update(&s.id, status, Some(detail.to_string()));
        }
        self.snapshot_signals.retain(|s| !s.left.is_empty());
    }
}

/// The tables of `among` each pattern matches; the error is the first
/// pattern that matches none (or is not a pattern).
fn expand(patterns: &[String], among: &[TableId]) -> Result<Vec<TableId>, String> {
    let mut tables = Vec::new();
    for pattern in patterns {
        let filter = TableFilter::new(std::slice::from_ref(&pattern.replace(['"', '`'], "")), &[])
            .map_err(|e| format!("{pattern:?} ({e})"))?;
        let matched: Vec<&TableId> = among.iter().filter(|t| filter.matches(&t.schema, &t.name)).collect();
        if matched.is_empty() {
            return Err(format!("{pattern:?}"));
        }
        for t in matched {
            if !tables.contains(t) {
                tables.push(t.clone());
            }
        }
    }
    Ok(tables)
}

fn names(tables: &[TableId]) -> String {
    tables.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}
