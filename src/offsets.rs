//! `outflow offsets`: see, move and reset each sink's stored position, with a
//! dry run first. Moving refuses while a `run` holds the state directory, and
//! refuses a position the server can no longer replay (the slot has already
//! confirmed past it, or the binlogs from there on were purged) or has not
//! reached yet.

use std::path::Path;

use outflow_model::Position;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::state::{now_rfc3339, SinkOffset, StateDir};

pub fn show(config_path: &Path) -> Result<()> {
    let config = Config::load(config_path)?;
    let state = StateDir::open_read_only(&config.state.dir);
    println!("{:<20} {:<8} {:<28} {:>12}  COMMITTED", "SINK", "KIND", "POSITION", "EVENTS");
    for sink in &config.sinks {
        let (position, events, committed) = match state.sink_offset(sink.name())? {
            Some(o) => (o.position, o.events.to_string(), o.committed_at),
            None => ("(none: starts at the slot, with a snapshot)".into(), "0".into(), "-".into()),
        };
        println!("{:<20} {:<8} {:<28} {:>12}  {}", sink.name(), sink.kind(), position, events, committed);
    }
    Ok(())
}

/// `offsets set --sink NAME --position POS [--dry-run]`.
pub async fn set(config_path: &Path, sink: &str, position: &str, dry_run: bool) -> Result<()> {
    let config = Config::load(config_path)?;
    let target: Position = position.parse().map_err(|e| {
        Error::config(format!("--position {position:?} is not a position: {e}"), "e.g. --position lsn:0/16B3748")
    })?;
    let (state, current) = open_for_change(&config, sink, dry_run)?;
    config.source.factory().check_position(&target).await?;
    let from = current.as_ref().map(|o| o.position.clone());
    let direction = match current.as_ref().map(|o| o.position.parse::<Position>()) {
        Some(Ok(now)) if target < now => format!(
            "changes committed between {target} and {now} ({} bytes of WAL) will be delivered again",
            now.pg_ack_lsn().saturating_sub(target.pg_ack_lsn())
        ),
        Some(Ok(now)) if target > now => format!(
            "changes committed between {now} and {target} ({} bytes of WAL) will be skipped",
            target.pg_ack_lsn().saturating_sub(now.pg_ack_lsn())
        ),
        Some(Ok(_)) => "nothing changes".to_string(),
        _ => format!("the sink starts at {target}"),
    };
    println!("sink {sink}: {} -> {target}; {direction}", from.as_deref().unwrap_or("(none)"));
    if dry_run {
        println!("dry run: nothing written");
        return Ok(());
    }
    let mut offset = current.unwrap_or(SinkOffset {
        position: String::new(),
        events: 0,
        checkpoint: serde_json::Value::Null,
        committed_at: String::new(),
        snapshot: Default::default(),
        last_commit_ts_us: None,
    });
    offset.position = target.to_string();
    // The commit time at the new position is not known until the next commit.
    offset.last_commit_ts_us = None;
    offset.committed_at = now_rfc3339();
    state.write_sink_offset(sink, &offset)?;
    println!("written {}", state.sink_offset_path(sink).display());
    Ok(())
}

/// `offsets reset --sink NAME [--dry-run]`: the sink starts over from the
/// slot's position, with a new snapshot of every table.
pub fn reset(config_path: &Path, sink: &str, dry_run: bool) -> Result<()> {
    let config = Config::load(config_path)?;
    let (state, current) = open_for_change(&config, sink, dry_run)?;
    let Some(current) = current else {
        println!("sink {sink} has no stored offset: nothing to reset");
        return Ok(());
    };
    println!(
        "sink {sink}: {} -> (none); the next run snapshots every table again and streams from the slot's position",
        current.position
    );
    if dry_run {
        println!("dry run: nothing written");
        return Ok(());
    }
    let path = state.sink_offset_path(sink);
    std::fs::remove_file(&path).map_err(|e| {
        Error::fatal(format!("cannot remove {}: {e}", path.display()), "check the state directory's permissions")
    })?;
    println!("removed {}", path.display());
    Ok(())
}

/// The state directory and the sink's current offset, refusing unknown sinks
/// and (unless only looking) a directory a `run` is using.
fn open_for_change(config: &Config, sink: &str, dry_run: bool) -> Result<(StateDir, Option<SinkOffset>)> {
    if !config.sinks.iter().any(|s| s.name() == sink) {
        let names: Vec<&str> = config.sinks.iter().map(|s| s.name()).collect();
        return Err(Error::config(
            format!("no sink named {sink:?} in the config"),
            format!("sinks: {}", names.join(", ")),
        ));
    }
    let state = if dry_run {
        StateDir::open_read_only(&config.state.dir)
    } else {
        StateDir::open_locked(&config.state.dir).map_err(|e| {
            e.with_hint("offsets can only be moved while no `outflow run` uses the state directory: stop it first")
        })?
    };
    let current = state.sink_offset(sink)?;
    Ok((state, current))
}
