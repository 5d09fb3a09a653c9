//! Chaos: a writer commits a known history ([`history`]) into a database of
//! the test's own — PostgreSQL or MariaDB ([`source`]) — while one outflow
//! fans out into all four exactly-once sinks (JSONL, Parquet, Kafka and the
//! PostgreSQL apply sink), and faults are injected at random moments:
//! kill -9 of outflow, the replication connection killed by the server, every
//! outflow connection cut at a TCP proxy, the broker frozen (SIGSTOP) and
//! resumed, and the database restarted (alternately clean and after a crash
//! of its process). At the end every sink is read by its independent reader
//! and compared with the writer's history ([`check`]): missing, duplicated,
//! reordered and wrong-valued events per change-log sink, and rows missing,
//! extra and wrong-valued in the apply sink's target; all must be zero.
//!
//! Faults come in shuffled cycles of all five kinds: each cycle of five rounds
//! injects each kind once. CI runs the reduced form (`OUTFLOW_CHAOS_ROUNDS`,
//! default 5 per source); `scripts/chaos.sh` runs more rounds and collects
//! the markdown reports each test writes to `OUTFLOW_CHAOS_REPORT_DIR`.
//!
//! Randomness comes from one seed per test, printed at the start and in the
//! report: `OUTFLOW_CHAOS_SEED` (or `scripts/chaos.sh --seed N`) replays the
//! same fault order, pauses and writer transactions. The moments the faults
//! land relative to outflow's work still depend on the machine's timing.

mod check;
mod history;
mod source;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use self::check::{check, check_state, jsonl_events, kafka_events, parquet_events, Errors, StateErrors};
use self::history::{Dialect, Writer};
use self::source::ChaosSource;
use crate::harness::{Outflow, TestDb};
use crate::kafka::{brokers, signal_broker, unique_name, ContinueBroker};

#[derive(Clone, Copy, Debug)]
enum Fault {
    Kill9,
    ServerKill,
    ProxyCut,
    BrokerFrozen,
    Restart,
}

const FAULTS: [Fault; 5] = [Fault::Kill9, Fault::ServerKill, Fault::ProxyCut, Fault::BrokerFrozen, Fault::Restart];

#[derive(Default)]
struct Faults {
    kill9: u64,
    server_kill: u64,
    proxy_cut: u64,
    broker_frozen: u64,
    restart_clean: u64,
    restart_crash: u64,
}

/// The config: the source through the proxy, and the four sinks.
fn config(source: &ChaosSource, target: &TestDb, name: &str, dir: &Path) -> String {
    format!(
        "name = {name:?}\n{}\n[state]\ndir = {:?}\n\
         [[sink]]\nname = \"events\"\nkind = \"jsonl\"\npath = {:?}\nformat = \"debezium\"\n\
         [[sink]]\nname = \"lake\"\nkind = \"parquet\"\npath = {:?}\nroll_rows = 2000\n\
         [[sink]]\nname = \"bus\"\nkind = \"kafka\"\nbrokers = {:?}\npartitions = 3\n\
         [[sink]]\nname = \"replica\"\nkind = \"postgres\"\nurl = {:?}\nbatch_rows = 700\n",
        source.source_toml(),
        dir.join("state"),
        dir.join("out.jsonl"),
        dir.join("lake"),
        brokers(),
        target.url(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_postgres_no_event_lost_duplicated_reordered_or_wrong_in_any_sink() {
    chaos(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_mariadb_no_event_lost_duplicated_reordered_or_wrong_in_any_sink() {
    chaos(Dialect::MariaDb).await;
}

async fn chaos(dialect: Dialect) {
    let rounds: u64 = std::env::var("OUTFLOW_CHAOS_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(5);
    let mut source = ChaosSource::start(dialect).await;
    let target = TestDb::create("chaos_dst").await;
    let name = unique_name("chaos");
    let outflow = Outflow::raw(|dir| config(&source, &target, &name, dir));
    let lake = outflow.state_dir().with_file_name("lake").to_string_lossy().into_owned();
    outflow.run_until_caught_up().await.assert_success();
    source.wait_released().await;

    let seed = seed();
    eprintln!("chaos {}: seed {seed} (replay with OUTFLOW_CHAOS_SEED={seed})", source.label());
    let writer = Writer::new();
    let writing = tokio::spawn(writer.clone().run(dialect, source.writer_url(), seed.wrapping_add(1)));
    let mut faults = Faults::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut cycle: Vec<Fault> = Vec::new();
    let mut run = outflow.spawn_run();
    for _ in 0..rounds {
        if cycle.is_empty() {
            cycle = FAULTS.to_vec();
            cycle.shuffle(&mut rng);
        }
        let fault = cycle.pop().expect("a fault");
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..2500))).await;
        match fault {
            Fault::Kill9 => {
                run.kill9().await;
                faults.kill9 += 1;
                source.wait_released().await;
                run = outflow.spawn_run();
            }
            Fault::ServerKill => {
                if source.kill_replication_connection().await {
                    faults.server_kill += 1;
                }
            }
            Fault::ProxyCut => {
                source.cut_connections();
                faults.proxy_cut += 1;
            }
            Fault::BrokerFrozen => {
                signal_broker(libc::SIGSTOP);
                let resume = ContinueBroker;
                tokio::time::sleep(Duration::from_millis(rng.random_range(500..3000))).await;
                drop(resume);
                faults.broker_frozen += 1;
            }
            Fault::Restart => {
                // Between two of the writer's transactions: no commit in doubt.
                let gate = writer.gate.lock().await;
                let crash = faults.restart_crash < faults.restart_clean;
                source.restart(crash).await;
                writer.generation.fetch_add(1, Ordering::SeqCst);
                drop(gate);
                if crash {
                    faults.restart_crash += 1;
                } else {
                    faults.restart_clean += 1;
                }
            }
        }
        assert!(run.is_running(), "outflow stopped after {fault:?}:\n{}", run.stderr());
    }
    writer.stop.store(true, Ordering::Relaxed);
    writing.await.expect("the writer ran");
    assert!(run.is_running(), "outflow stopped:\n{}", run.stderr());
    run.kill9().await;
    faults.kill9 += 1;
    source.wait_released().await;
    outflow.run_until_caught_up().await.assert_success();

    let history = std::mem::take(&mut *writer.history.lock().unwrap());
    let schema = source.schema();
    let logs = [
        ("JSONL", check(&history, &jsonl_events(&outflow.out_path()))),
        ("Parquet", check(&history, &parquet_events(&lake, schema))),
        ("Kafka", check(&history, &kafka_events(&name, schema))),
    ];
    let mut states = Vec::new();
    for table in ["acct", "ledger"] {
        let want = source.rows(table).await;
        let from_history = history.final_rows(table);
        let source_versions =
            want.iter().map(|(id, (ver, _))| (*id, *ver)).collect::<std::collections::BTreeMap<_, _>>();
        assert!(source_versions == from_history, "{table}: the source's rows differ from the writer's history");
        let got = check::pg_rows(target.client(), &format!("{schema}.{table}")).await;
        states.push(check_state(&want, &got));
    }
    let state = states.iter().fold(StateErrors::default(), |a, e| StateErrors {
        checked: a.checked + e.checked,
        missing: a.missing + e.missing,
        extra: a.extra + e.extra,
        wrong: a.wrong + e.wrong,
    });
    let row = target.query("SELECT position FROM outflow.offsets WHERE sink = 'replica'").await;
    let row_position: String = row.first().map(|r| r.get(0)).unwrap_or_else(|| "(no row)".into());
    let stored = std::fs::read_to_string(outflow.state_dir().join("sinks/replica.json")).expect("the sink's offset");
    let stored: serde_json::Value = serde_json::from_str(&stored).expect("the offset file is JSON");
    let stored_position = stored["position"].as_str().unwrap_or("(none)").to_string();

    let report = report(&source, seed, &faults, &history, &logs, &state, &row_position, &stored_position);
    eprintln!("{report}");
    if let Ok(dir) = std::env::var("OUTFLOW_CHAOS_REPORT_DIR") {
        let path = Path::new(&dir).join(format!("chaos-{}.md", source.label().to_lowercase()));
        std::fs::write(&path, &report).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
    let written = history.events();
    for (sink, e) in &logs {
        assert_eq!(
            (e.missing, e.duplicated, e.reordered, e.wrong_value),
            (0, 0, 0, 0),
            "{sink}: errors found\n{report}"
        );
        assert_eq!(e.checked, written, "{sink}: every written event is checked\n{report}");
    }
    assert_eq!((state.missing, state.extra, state.wrong), (0, 0, 0), "PostgreSQL apply: errors found\n{report}");
    assert_eq!(row_position, stored_position, "the apply sink's offsets row differs from its stored offset\n{report}");
    target.cleanup().await;
}

/// The run's seed: `OUTFLOW_CHAOS_SEED`, else one from the OS.
fn seed() -> u64 {
    match std::env::var("OUTFLOW_CHAOS_SEED") {
        Ok(s) => s.trim().parse().unwrap_or_else(|_| panic!("OUTFLOW_CHAOS_SEED={s:?} is not an unsigned integer")),
        Err(_) => rand::random(),
    }
}

#[allow(clippy::too_many_arguments)]
fn report(
    source: &ChaosSource,
    seed: u64,
    f: &Faults,
    history: &history::History,
    logs: &[(&str, Errors)],
    state: &StateErrors,
    row_position: &str,
    stored_position: &str,
) -> String {
    let label = source.label();
    let mut out = format!(
        "Seed {seed} (`OUTFLOW_CHAOS_SEED={seed}` or `scripts/chaos.sh --seed {seed}` replays it).\n\n\
         | source | kill -9 | replication connection killed by the server | connections cut at the proxy | \
         broker frozen | database restarts (clean / crash) | transactions | events written |\n\
         |---|---|---|---|---|---|---|---|\n\
         | {label} | {} | {} | {} | {} | {} / {} | {} | {} |\n\n\
         | source | sink | events checked | missing | duplicated | reordered per key | wrong value |\n\
         |---|---|---|---|---|---|---|\n",
        f.kill9,
        f.server_kill,
        f.proxy_cut,
        f.broker_frozen,
        f.restart_clean,
        f.restart_crash,
        history.transactions,
        history.events(),
    );
    for (sink, e) in logs {
        out.push_str(&format!(
            "| {label} | {sink} | {} | {} | {} | {} | {} |\n",
            e.checked, e.missing, e.duplicated, e.reordered, e.wrong_value
        ));
    }
    let offsets = if row_position == stored_position {
        "matches the state directory".to_string()
    } else {
        format!("{row_position} ≠ stored {stored_position}")
    };
    out.push_str(&format!(
        "\n| source | state sink | rows checked | rows missing | rows extra | rows wrong-valued | offsets row |\n\
         |---|---|---|---|---|---|---|\n\
         | {label} | PostgreSQL apply | {} | {} | {} | {} | {offsets} |\n",
        state.checked, state.missing, state.extra, state.wrong
    ));
    out
}
