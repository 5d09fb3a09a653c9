//! The commands: `run`, `snapshot` and `tail` here; `status`, `offsets`,
//! `check` and `init` in their own modules. Each returns `Result`; `main`
//! turns errors into one `error:` line, a `hint:` line and an exit code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use outflow_sinks::{Sink, SinkContext};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, SinkConfig, SnapshotMode};
use crate::error::{Error, Result};
use crate::pipeline::{spawn_sink, SinkHandle, SinkStart};
use crate::snapshot::{least_progress, SnapshotPlan};
use crate::source::{Purpose, StreamRun};
use crate::state::{SourceIdentity, StateDir, TableSnapshot};

/// `outflow --version`: the crate version and the git revision built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("OUTFLOW_GIT_REVISION"), ")");

#[derive(Debug, Parser)]
#[command(
    name = "outflow",
    version = VERSION,
    about = "Change-data-capture from PostgreSQL and MySQL/MariaDB to JSONL, Kafka, Redis Streams, Parquet, Iceberg and PostgreSQL"
)]
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
    /// Preflight: the source server (settings, privileges, slot or binlog), tables and every sink.
    Check {
        #[arg(short, long, default_value = "outflow.toml")]
        config: PathBuf,
    },
    /// Inspect a database (settings, privileges, tables with and without keys,
    /// sizes), write a commented outflow.toml for it, and check that config.
    Init {
        /// postgres://user:password@host:5432/dbname or mysql://user:password@host:3306/dbname
        /// (the password is written to the config as ${OUTFLOW_SOURCE_PASSWORD}).
        url: String,
        /// SCHEMA.TABLE to capture, one or more (default: every table with a primary key).
        #[arg(long, num_args = 1.., value_delimiter = ',')]
        tables: Vec<String>,
        /// The config file to write; an existing one is kept unless --force.
        #[arg(short, long, default_value = "outflow.toml")]
        output: PathBuf,
        /// The sink kind (a JSONL file next to the config by default; other kinds get a placeholder destination).
        #[arg(long, value_enum, default_value = "jsonl")]
        sink: crate::init::SinkKind,
        /// The pipeline's name (default: the database's); the slot and publication are named after it.
        #[arg(long)]
        name: Option<String>,
        /// Replace an existing config file.
        #[arg(long)]
        force: bool,
    },
    /// Ask a running `run` (or the next one) to snapshot tables again.
    Snapshot {
        #[arg(short, long, default_value = "outflow.toml")]
        config: PathBuf,
        /// SCHEMA.TABLE, one or more.
        #[arg(long = "table", required = true, num_args = 1..)]
        tables: Vec<String>,
        /// Only the rows matching this SQL condition (Debezium's
        /// additional-condition), e.g. --filter "region = 'eu'".
        #[arg(long)]
        filter: Option<String>,
    },
    /// Print a shell completion script to stdout, e.g.
    /// `outflow completions bash > /etc/bash_completion.d/outflow`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print changes to stdout; commits no offsets and leaves nothing on the server.
    Tail {
        #[arg(short, long, default_value = "outflow.toml")]
        config: PathBuf,
        #[arg(long)]
        until_caught_up: bool,
        /// Also apply this named [[transform]] (after the global ones), to
        /// try an expression; repeatable.
        #[arg(long = "transform", value_name = "NAME")]
        transforms: Vec<String>,
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
        Command::Status { config, json } => crate::status::status(&config, json).await,
        Command::Tail { config, until_caught_up, transforms } => tail(&config, until_caught_up, &transforms).await,
        Command::Snapshot { config, tables, filter } => request_snapshots(&config, &tables, filter.as_deref()),
        Command::Check { config } => crate::check::check(&config).await,
        Command::Init { url, tables, output, sink, name, force } => {
            crate::init::init(crate::init::InitArgs { url, tables, output, sink, name, force }).await
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "outflow", &mut std::io::stdout());
            Ok(())
        }
        Command::Offsets { config, action } => match action {
            OffsetsAction::Show => crate::offsets::show(&config),
            OffsetsAction::Set { sink, position, dry_run } => {
                crate::offsets::set(&config, &sink, &position, dry_run).await
            }
            OffsetsAction::Reset { sink, dry_run } => crate::offsets::reset(&config, &sink, dry_run),
        },
    }
}

fn request_snapshots(config_path: &Path, tables: &[String], condition: Option<&str>) -> Result<()> {
    let config = Config::load(config_path)?;
    let state = StateDir::open_read_only(&config.state.dir);
    for table in tables {
        if table.split('.').count() != 2 {
            return Err(Error::config(
                format!("{table:?} is not of the form schema.table"),
                "e.g. --table public.orders",
            ));
        }
        state.request_snapshot(table, condition)?;
        println!("snapshot of {table} requested");
    }
    match state.running() {
        Some(p) => println!("the running outflow (pid {}) starts it within a second", p.pid),
        None => println!("no outflow is running: the next `outflow run` starts it"),
    }
    Ok(())
}

async fn run(config_path: &Path, until_caught_up: bool) -> Result<()> {
    let mut config = Config::load(config_path)?;
    let state = Arc::new(StateDir::open_locked(&config.state.dir)?);
    state.check_all()?;
    // A previous process's detached sinks are attached again in this one.
    state.write_detached(&Default::default())?;
    crate::signal::signals().attach(state.path())?;
    // Tables added by signals in earlier runs, and the signal table, are captured too.
    let signal_table = config.source.factory().signal_table_id()?;
    let mut more = state.added_tables()?;
    more.extend(signal_table.as_ref().map(ToString::to_string));
    config.source.factory_mut().capture_more(&more);
    let _admin = match &config.admin {
        Some(admin) => Some(crate::admin::start(admin, &config).await?),
        None => None,
    };
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

    // A directory of another source is refused before anything is created
    // on this one (PostgreSQL: the publication and the slot).
    let factory = config.source.factory();
    if let Some(known) = &identity {
        if let Some(probed) = factory.probe_identity().await? {
            check_identity(&state, known, &probed)?;
        }
    }
    check_transforms(&config).await?;
    let transforms = config.global_transforms()?;
    let source = factory.connect(Purpose::Run { has_offsets }, &transforms).await?;
    let this = source.identity();
    match &identity {
        Some(known) => check_identity(&state, known, &this)?,
        None => state.write_source_identity(&this)?,
    }

    // Sinks recover before the snapshot is planned: a sink's own commit
    // record may hold snapshot chunks the state directory does not know yet.
    let ctx = source.sink_context(&config.name);
    let mut sinks = Vec::new();
    for (sink_cfg, (offset, _)) in config.sinks.iter().zip(&starts) {
        let sink = build_sink(sink_cfg, ctx.clone(), offset.as_ref().map(|o| &o.checkpoint)).await?;
        let mut progress = offset.as_ref().map(|o| o.snapshot.clone()).unwrap_or_default();
        if let Some(record) = sink.recovered_snapshot() {
            merge_recovered(&mut progress, record, sink_cfg.name())?;
        }
        sinks.push((sink, progress));
    }

    let mut plan = None;
    if config.snapshot.mode != SnapshotMode::Never {
        let progress: Vec<_> = sinks.iter().map(|(_, p)| p).collect();
        plan = Some(SnapshotPlan {
            tables: source
                .tables()
                .into_iter()
                .filter(|t| Some(t) != signal_table.as_ref())
                .map(|t| {
                    let p = least_progress(&progress, &t);
                    (t, p)
                })
                .collect(),
            chunk_size: config.snapshot.chunk_size,
            parallelism: config.snapshot.parallelism,
        });
    }

    let mut handles = Vec::new();
    for ((sink_cfg, (offset, position)), (sink, snapshot)) in config.sinks.iter().zip(starts).zip(sinks) {
        let start = SinkStart { position, events: offset.as_ref().map_or(0, |o| o.events), snapshot };
        let transforms = config.sink_transforms(sink_cfg)?;
        handles.push(spawn_sink(
            sink_cfg.name().to_string(),
            sink,
            Some(state.clone()),
            start,
            COMMIT_INTERVAL,
            transforms,
        ));
    }
    crate::pipeline::restore_paused(&mut handles, &state.paused()?);
    let run = StreamRun {
        sinks: &mut handles,
        state: Some(&state),
        snapshot: plan,
        snapshot_settings: (config.snapshot.parallelism, config.snapshot.chunk_size),
        exit_after_snapshot: config.snapshot.mode == SnapshotMode::InitialOnly,
        until_caught_up,
        stop: shutdown_on_signal(),
        transforms,
        signal_table,
    };
    source.stream(run).await?;
    report_done(&handles);
    Ok(())
}

/// Every transform checked against every captured table's current shape
/// (a key column excluded, a mask on a column that does not hold
/// characters) before anything is streamed.
pub async fn check_transforms(config: &Config) -> Result<usize> {
    if config.transforms.is_empty() {
        return Ok(0);
    }
    let mut global = config.global_transforms()?;
    let mut per_sink = config.sinks.iter().map(|s| config.sink_transforms(s)).collect::<Result<Vec<_>>>()?;
    let schemas = config.source.factory().table_schemas().await?;
    for schema in &schemas {
        let shown = global.check(schema)?;
        for transforms in &mut per_sink {
            transforms.check(&shown)?;
        }
    }
    Ok(schemas.len())
}

/// Refuses a state directory that belongs to another source.
fn check_identity(state: &StateDir, known: &SourceIdentity, this: &SourceIdentity) -> Result<()> {
    if known == this {
        return Ok(());
    }
    Err(Error::fatal(
        format!(
            "state directory {} belongs to another source ({} system {} database {:?} slot {:?}), not this one ({} system {} database {:?} slot {:?})",
            state.path().display(), known.kind, known.system_identifier, known.database, known.slot,
            this.kind, this.system_identifier, this.database, this.slot
        ),
        "point [state] dir at this source's own directory (nothing was changed in either)",
    ))
}

async fn tail(config_path: &Path, until_caught_up: bool, named: &[String]) -> Result<()> {
    let config = Config::load(config_path)?;
    let tried = config.named_transforms(named)?;
    check_transforms(&config).await?;
    let source = config.source.factory().connect(Purpose::Tail, &config.global_transforms()?).await?;
    let ctx = source.sink_context(&config.name);
    let stdout = outflow_sinks::jsonl::JsonlConfig {
        name: "tail".into(),
        path: PathBuf::from("-"),
        format: Default::default(),
        unavailable_value_placeholder: "__debezium_unavailable_value".into(),
        debezium: Default::default(),
        schemas: false,
    };
    let sink = stdout.build(ctx, None)?;
    let sink = spawn_sink("tail".into(), Box::new(sink), None, SinkStart::default(), COMMIT_INTERVAL, tried);
    let mut handles = vec![sink];
    let run = StreamRun {
        sinks: &mut handles,
        state: None,
        snapshot: None,
        snapshot_settings: (config.snapshot.parallelism, config.snapshot.chunk_size),
        exit_after_snapshot: false,
        until_caught_up,
        stop: shutdown_on_signal(),
        transforms: config.global_transforms_except(named)?,
        signal_table: None,
    };
    source.stream(run).await
}

async fn build_sink(
    cfg: &SinkConfig,
    ctx: SinkContext,
    checkpoint: Option<&serde_json::Value>,
) -> Result<Box<dyn Sink>> {
    Ok(cfg.factory().build(ctx, checkpoint).await?)
}

/// Adds the progress a sink's own commit record holds to what its offset
/// file says: per table, the further one wins (both only ever record chunks
/// the sink made durable; the record can be one commit ahead of the file).
fn merge_recovered(
    progress: &mut BTreeMap<String, TableSnapshot>,
    record: &outflow_sinks::snapshot_marks::SnapshotRecord,
    sink: &str,
) -> Result<()> {
    for (table, value) in record {
        let recovered: TableSnapshot = serde_json::from_value(value.clone()).map_err(|e| {
            Error::fatal(
                format!("sink {sink:?}: its commit record has unreadable snapshot progress for {table}: {e}"),
                "this is a bug; please report it (moving the sink to a fresh destination starts it over)",
            )
        })?;
        let known = progress.entry(table.clone()).or_default();
        if (recovered.done, recovered.rows) > (known.done, known.rows) {
            *known = recovered;
        }
    }
    Ok(())
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
