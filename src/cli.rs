//! The commands: `run`, `status`, `tail`. Each returns `Result`; `main`
//! turns errors into one `error:` line, a `hint:` line and an exit code.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use outflow_decoders::{Position, TableId};
use outflow_sinks::{Sink, SinkContext};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, SinkConfig, SnapshotMode};
use crate::error::{Error, Result};
use crate::pg::catalog::Catalog;
use crate::pg::params::PgParams;
use crate::pipeline::{spawn_sink, SinkHandle, SinkStart};
use crate::source::{Purpose, Source};
use crate::snapshot::SnapshotPlan;
use crate::state::{SinkOffset, StateDir, TableSnapshot};

#[derive(Debug, Parser)]
#[command(name = "outflow", version, about = "Change-data-capture from PostgreSQL to JSONL, Kafka and Parquet")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Replicate until stopped (SIGINT/SIGTERM), or until caught up.
    Run {
        #[arg(short, long, default_value = "outflow.toml")]
        config: PathBuf,
        /// Deliver everything committed before the start, commit offsets, exit 0.
        #[arg(long)]
        until_caught_up: bool,
    },
    /// Show where the source and every sink stand.
    Status {
        #[arg(short, long, default_value = "outflow.toml")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Show, move or reset sinks' stored positions.
    Offsets {
        #[arg(short, long, default_value = "outflow.toml", global = true)]
        config: PathBuf,
        #[command(subcommand)]
        action: OffsetsAction,
    },
    /// Preflight: server settings, privileges, slot, publication, tables, sinks.
    Check {
        #[arg(short, long, default_value = "outflow.toml")]
        config: PathBuf,
    },
    /// Ask a running `run` (or the next one) to snapshot tables again.
    Snapshot {
        #[arg(short, long, default_value = "outflow.toml")]
        config: PathBuf,
        /// SCHEMA.TABLE, one or more.
        #[arg(long = "table", required = true, num_args = 1..)]
        tables: Vec<String>,
    },
    /// Print changes to stdout through a temporary slot; commits no offsets.
    Tail {
        #[arg(short, long, default_value = "outflow.toml")]
        config: PathBuf,
        #[arg(long)]
        until_caught_up: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum OffsetsAction {
    /// Every sink's stored position.
    Show,
    /// Move a sink to a position (rewind to replay, or skip ahead).
    Set {
        #[arg(long)]
        sink: String,
        #[arg(long)]
        position: String,
        /// Print what would change and what would be replayed or skipped.
        #[arg(long)]
        dry_run: bool,
    },
    /// Forget a sink's position: it starts over with a snapshot.
    Reset {
        #[arg(long)]
        sink: String,
        #[arg(long)]
        dry_run: bool,
    },
}

/// How often sinks make their writes durable and store their offsets.
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

pub async fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run { config, until_caught_up } => run(&config, until_caught_up).await,
        Command::Status { config, json } => status(&config, json).await,
        Command::Tail { config, until_caught_up } => tail(&config, until_caught_up).await,
        Command::Snapshot { config, tables } => request_snapshots(&config, &tables),
        Command::Check { config } => crate::check::check(&config).await,
        Command::Offsets { config, action } => match action {
            OffsetsAction::Show => crate::offsets::show(&config),
            OffsetsAction::Set { sink, position, dry_run } => crate::offsets::set(&config, &sink, &position, dry_run).await,
            OffsetsAction::Reset { sink, dry_run } => crate::offsets::reset(&config, &sink, dry_run),
        },
    }
}

fn request_snapshots(config_path: &Path, tables: &[String]) -> Result<()> {
    let config = Config::load(config_path)?;
    let state = StateDir::open_read_only(&config.state.dir);
    for table in tables {
        if table.split('.').count() != 2 {
            return Err(Error::config(format!("{table:?} is not of the form schema.table"), "e.g. --table public.orders"));
        }
        state.request_snapshot(table)?;
        println!("snapshot of {table} requested");
    }
    match state.running() {
        Some(p) => println!("the running outflow (pid {}) starts it within a second", p.pid),
        None => println!("no outflow is running: the next `outflow run` starts it"),
    }
    Ok(())
}

/// Snapshot progress per table over all sinks: the least advanced sink's.
pub fn snapshot_status(config: &Config, state: &StateDir) -> serde_json::Value {
    let offsets: Vec<Option<SinkOffset>> =
        config.sinks.iter().map(|s| state.sink_offset(s.name()).ok().flatten()).collect();
    let refs: Vec<Option<&SinkOffset>> = offsets.iter().map(Option::as_ref).collect();
    let mut tables: std::collections::BTreeSet<String> =
        offsets.iter().flatten().flat_map(|o| o.snapshot.keys().cloned()).collect();
    let requested = state.snapshot_requests();
    tables.extend(requested.iter().cloned());
    let running = state.running().is_some();
    let list: Vec<_> = tables
        .into_iter()
        .map(|name| {
            let (schema, table) = name.split_once('.').unwrap_or(("", &name));
            let p = least_progress(&refs, &TableId::new(schema, table));
            let status = if requested.contains(&name) {
                "requested"
            } else if p.done {
                "done"
            } else if running {
                "running"
            } else {
                "pending"
            };
            json!({"table": name, "status": status, "rows": p.rows})
        })
        .collect();
    serde_json::Value::Array(list)
}

async fn run(config_path: &Path, until_caught_up: bool) -> Result<()> {
    let config = Config::load(config_path)?;
    let state = Arc::new(StateDir::open_locked(&config.state.dir)?);
    state.check_all()?;
    // Read every offset before touching the server: a corrupt file stops us here.
    let mut starts = Vec::new();
    for sink in &config.sinks {
        let path = state.sink_offset_path(sink.name());
        let offset = state.sink_offset(sink.name())?;
        let position = offset.as_ref().map(|o| o.position(&path)).transpose()?;
        starts.push((offset, position));
    }
    let identity = state.source_identity()?;
    let has_offsets = starts.iter().any(|(o, _)| o.is_some());

    let mut source = Source::prepare(&config.source, Purpose::Run { has_offsets }).await?;
    let this = source.identity();
    match identity {
        Some(known) if known != this => {
            return Err(Error::fatal(
                format!(
                    "state directory {} belongs to another source (system {} database {:?} slot {:?}), not this one (system {} database {:?} slot {:?})",
                    state.path().display(), known.system_identifier, known.database, known.slot,
                    this.system_identifier, this.database, this.slot
                ),
                "point [state] dir at this source's own directory",
            ))
        }
        Some(_) => {}
        None => state.write_source_identity(&this)?,
    }

    if config.snapshot.mode != SnapshotMode::Never {
        let offsets: Vec<_> = starts.iter().map(|(o, _)| o.as_ref()).collect();
        let plan = SnapshotPlan {
            tables: source.tables().into_iter().map(|t| { let p = least_progress(&offsets, &t); (t, p) }).collect(),
            chunk_size: config.snapshot.chunk_size,
            parallelism: config.snapshot.parallelism,
        };
        source.set_snapshot(plan, config.snapshot.mode == SnapshotMode::InitialOnly);
    }

    let ctx = source.sink_context(&config.name);
    let mut handles = Vec::new();
    for (sink_cfg, (offset, position)) in config.sinks.iter().zip(starts) {
        let checkpoint = offset.as_ref().map(|o| &o.checkpoint);
        let sink = build_sink(sink_cfg, ctx.clone(), checkpoint)?;
        let start = SinkStart {
            position,
            events: offset.as_ref().map_or(0, |o| o.events),
            snapshot: offset.map(|o| o.snapshot).unwrap_or_default(),
        };
        handles.push(spawn_sink(sink_cfg.name().to_string(), sink, Some(state.clone()), start, COMMIT_INTERVAL));
    }
    let stop = shutdown_on_signal();
    source.stream(&mut handles, Some(&state), until_caught_up, stop).await?;
    report_done(&handles);
    Ok(())
}

async fn tail(config_path: &Path, until_caught_up: bool) -> Result<()> {
    let config = Config::load(config_path)?;
    let source = Source::prepare(&config.source, Purpose::Tail).await?;
    let ctx = source.sink_context(&config.name);
    let stdout = outflow_sinks::jsonl::JsonlConfig {
        name: "tail".into(),
        path: PathBuf::from("-"),
        format: Default::default(),
        unavailable_value_placeholder: "__debezium_unavailable_value".into(),
    };
    let sink = stdout.build(ctx, None)?;
    let mut handles =
        vec![spawn_sink("tail".into(), Box::new(sink), None, SinkStart::default(), COMMIT_INTERVAL)];
    source.stream(&mut handles, None, until_caught_up, shutdown_on_signal()).await
}

fn build_sink(cfg: &SinkConfig, ctx: SinkContext, checkpoint: Option<&serde_json::Value>) -> Result<Box<dyn Sink>> {
    Ok(match cfg {
        SinkConfig::Jsonl(c) => Box::new(c.build(ctx, checkpoint)?),
        SinkConfig::Kafka(c) => Box::new(c.build(ctx, checkpoint)?),
        SinkConfig::Parquet(c) => Box::new(c.build(ctx, checkpoint)?),
    })
}

/// Where `table`'s snapshot resumes: the least advanced sink's progress (a
/// sink without any is at the start).
fn least_progress(offsets: &[Option<&SinkOffset>], table: &TableId) -> TableSnapshot {
    let name = table.to_string();
    offsets
        .iter()
        .map(|o| o.and_then(|o| o.snapshot.get(&name)).cloned().unwrap_or_default())
        .min_by_key(|p| (p.done, p.rows))
        .unwrap_or_default()
}

fn report_done(handles: &[SinkHandle]) {
    for h in handles {
        match h.durable() {
            Some(p) => tracing::info!(sink = %h.name, position = %p, "offsets committed"),
            None => tracing::info!(sink = %h.name, "nothing to deliver"),
        }
    }
}

/// A token cancelled on SIGINT or SIGTERM: the pipeline then drains, commits
/// and exits 0.
fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
            return;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down: draining sinks and committing offsets");
        t.cancel();
    });
    token
}

async fn status(config_path: &Path, as_json: bool) -> Result<()> {
    let config = Config::load(config_path)?;
    if config.source.kind == crate::config::SourceKind::Mysql {
        return crate::mysql::status::status(&config, as_json).await;
    }
    let state = StateDir::open_read_only(&config.state.dir);
    let params = PgParams::from_url(&config.source.url)?;

    let (server, source_error) = match source_status(&params, &config.source.slot).await {
        Ok(s) => (Some(s), None),
        Err(e) => (None, Some(e.message)),
    };
    let server_lsn = server.as_ref().map(|s| s.0);
    let mut sinks = Vec::new();
    for sink in &config.sinks {
        let name = sink.name();
        let path = state.sink_offset_path(name);
        let entry = match state.sink_offset(name) {
            Ok(Some(o)) => {
                let lag = match (o.position(&path), server_lsn) {
                    (Ok(p), Some(lsn)) => Some(lsn.saturating_sub(p.pg_ack_lsn())),
                    _ => None,
                };
                json!({"name": name, "kind": sink.kind(), "position": o.position, "events": o.events,
                       "committed_at": o.committed_at, "lag_bytes": lag})
            }
            Ok(None) => json!({"name": name, "kind": sink.kind(), "position": null, "events": 0,
                               "committed_at": null, "lag_bytes": null}),
            Err(e) => json!({"name": name, "kind": sink.kind(), "position": null, "events": null,
                             "error": e.message}),
        };
        sinks.push(entry);
    }
    let slot = server.as_ref().and_then(|s| s.1.clone());
    let process = state.running().map(|i| json!({"pid": i.pid, "started_at": i.started_at}));
    let report = json!({
        "source": {
            "kind": "postgres",
            "server": params.display(),
            "server_lsn": server_lsn.map(|l| Position::pg(l).to_string()),
            "slot_name": config.source.slot,
            "slot": slot,
            "error": source_error,
        },
        "sinks": sinks,
        "snapshot": snapshot_status(&config, &state),
        "process": process,
    });
    if as_json {
        println!("{report}");
    } else {
        print_status_table(&report);
    }
    Ok(())
}

async fn source_status(params: &PgParams, slot: &str) -> Result<(u64, Option<serde_json::Value>)> {
    let catalog = Catalog::connect(params).await?;
    let lsn = catalog.current_wal_lsn().await?;
    let slot = catalog.slot(slot).await?.map(|s| serde_json::to_value(s).unwrap_or_default());
    Ok((lsn, slot))
}

fn print_status_table(r: &serde_json::Value) {
    let s = &r["source"];
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    println!("source    postgres {}  server position {}", text(&s["server"]), text(&s["server_lsn"]));
    if let Some(err) = s["error"].as_str() {
        println!("          error: {err}");
    }
    match &s["slot"] {
        serde_json::Value::Null => println!("slot      {} (missing)", text(&s["slot_name"])),
        slot => println!(
            "slot      {}  active {}  confirmed_flush {}  restart {}  retained WAL {} bytes  wal_status {}",
            text(&s["slot_name"]),
            text(&slot["active"]),
            text(&slot["confirmed_flush_lsn"]),
            text(&slot["restart_lsn"]),
            text(&slot["retained_wal_bytes"]),
            text(&slot["wal_status"]),
        ),
    }
    match &r["process"] {
        serde_json::Value::Null => println!("process   not running"),
        p => println!("process   running, pid {} since {}", text(&p["pid"]), text(&p["started_at"])),
    }
    println!();
    println!("{:<20} {:<8} {:<26} {:>12} {:>14}  {}", "SINK", "KIND", "POSITION", "EVENTS", "LAG BYTES", "COMMITTED");
    for sink in r["sinks"].as_array().into_iter().flatten() {
        println!(
            "{:<20} {:<8} {:<26} {:>12} {:>14}  {}",
            text(&sink["name"]),
            text(&sink["kind"]),
            text(&sink["position"]),
            text(&sink["events"]),
            text(&sink["lag_bytes"]),
            sink["error"].as_str().map(|e| format!("error: {e}")).unwrap_or_else(|| text(&sink["committed_at"])),
        );
    }
    let snapshot = r["snapshot"].as_array().cloned().unwrap_or_default();
    if !snapshot.is_empty() {
        println!();
        println!("{:<40} {:<10} {:>12}", "SNAPSHOT TABLE", "STATUS", "ROWS");
        for t in &snapshot {
            println!("{:<40} {:<10} {:>12}", text(&t["table"]), text(&t["status"]), text(&t["rows"]));
        }
    }
}
