//! Failover slots (PostgreSQL 17+; skipped on older servers): outflow's
//! `url` lists the primary and its standby with
//! `target_session_attrs=read-write` and creates its slot with `FAILOVER`;
//! the standby keeps the slot in step (`sync_replication_slots`), the
//! primary waits for the standby before sending changes
//! (`synchronized_standby_slots`). The primary crashes mid-run and the
//! standby is promoted: outflow reconnects to it on its own and goes on
//! from the synchronized slot, every committed row exactly once in the
//! JSONL and the Kafka sink.

use tokio_postgres::{Client, NoTls};

use crate::harness::{changes, wait_for, Outflow, SHORT};
use crate::kafka::{records, unique_name};
use crate::own_servers::OwnPg;

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.expect("connecting");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

async fn insert(client: &Client, ids: std::ops::RangeInclusive<i64>) {
    for id in ids {
        client.batch_execute(&format!("INSERT INTO t VALUES ({id}, 0)")).await.unwrap();
    }
}

fn created(outflow: &Outflow) -> Vec<i64> {
    changes(&crate::events::read_complete_lines(&outflow.out_path()), "t")
        .iter()
        .filter(|e| e["op"] == "c")
        .map(|e| e["after"]["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_failover_slot_follows_the_promoted_standby_with_every_row_once() {
    let primary = OwnPg::start();
    let p = connect(&primary.url()).await;
    let version: i32 = p.query_one("SELECT current_setting('server_version_num')::int", &[]).await.unwrap().get(0);
    if version < 170000 {
        eprintln!("skipped: failover slots need PostgreSQL 17+, this is {version}");
        return;
    }
    p.batch_execute("CREATE TABLE t (id bigint PRIMARY KEY, v int NOT NULL)").await.unwrap();
    let standby = OwnPg::standby_with(&primary, &["-C", "-S", "phys1"], "-c sync_replication_slots=on");
    p.batch_execute("ALTER SYSTEM SET synchronized_standby_slots = 'phys1'").await.unwrap();
    p.batch_execute("SELECT pg_reload_conf()").await.unwrap();
    let s = connect(&standby.url()).await;
    wait_for(SHORT, "the standby to replay the table", || async { s.query_opt("SELECT 1 FROM t", &[]).await.is_ok() })
        .await;

    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write",
        primary.port(),
        standby.port()
    );
    let name = unique_name("failover");
    let brokers = crate::kafka::brokers();
    let outflow = Outflow::raw(|dir| {
        format!(
            "name = \"{name}\"\n[source]\nkind = \"postgres\"\nurl = \"{url}\"\ntables = [\"public.t\"]\nslot = \"fo\"\n\
             failover = true\n[state]\ndir = \"{}/state\"\n\
             [[sink]]\nname = \"events\"\nkind = \"jsonl\"\npath = \"{}/out.jsonl\"\n\
             [[sink]]\nname = \"bus\"\nkind = \"kafka\"\nbrokers = \"{brokers}\"\n",
            dir.display(),
            dir.display()
        )
    });
    let config = outflow.config_path();
    let run = outflow.spawn_run();
    wait_for(SHORT, "the failover slot on the primary", || async {
        let row = p.query_opt("SELECT failover FROM pg_replication_slots WHERE slot_name = 'fo'", &[]).await;
        row.ok().flatten().is_some_and(|r| r.get::<_, bool>(0))
    })
    .await;
    insert(&p, 1..=100).await;
    wait_for(SHORT, "100 rows in the sink", || async { created(&outflow).len() == 100 }).await;
    wait_for(SHORT, "the standby to synchronize the slot", || async {
        let row = s
            .query_opt(
                "SELECT synced FROM pg_replication_slots WHERE slot_name = 'fo' AND confirmed_flush_lsn IS NOT NULL",
                &[],
            )
            .await;
        row.ok().flatten().is_some_and(|r| r.get::<_, bool>(0))
    })
    .await;
    insert(&p, 101..=150).await;
    wait_for(SHORT, "150 rows in the sink", || async { created(&outflow).len() == 150 }).await;
    // check looks at the standby the URL lists too.
    let before = outflow.exec(&["check", "-c", &config.to_string_lossy()]).await;
    for item in [
        "synchronizes failover slots (sync_replication_slots = on)",
        "which the primary's synchronized_standby_slots lists",
        "has a synchronized copy of slot \"fo\"",
    ] {
        assert!(before.stdout.lines().any(|l| l.starts_with('✓') && l.contains(item)), "{item}:\n{}", before.stdout);
    }

    // The primary dies; the standby takes over; writes go on there.
    primary.crash();
    standby.promote();
    insert(&s, 151..=200).await;
    wait_for(SHORT, "every row, after the failover", || async { created(&outflow).len() >= 200 }).await;
    let check = outflow.exec(&["check", "-c", &config.to_string_lossy()]).await;
    let out = run.sigterm_and_wait().await;
    out.assert_success();
    assert!(out.stderr.contains("reconnected"), "{}", out.stderr);
    let mut ids = created(&outflow);
    assert_eq!(ids.len(), 200, "no row twice");
    ids.sort_unstable();
    assert_eq!(ids, (1..=200).collect::<Vec<_>>(), "every row once");
    // The Kafka sink (exactly-once through its offsets topic) too, read back
    // by an independent consumer.
    let mut in_kafka: Vec<i64> = records(&format!("{name}.public.t"))
        .iter()
        .filter(|r| r["value"]["op"] == "c")
        .map(|r| r["value"]["after"]["id"].as_i64().unwrap())
        .collect();
    in_kafka.sort_unstable();
    assert_eq!(in_kafka, (1..=200).collect::<Vec<_>>(), "every row once in Kafka");
    // After the failover, check (against the new primary) still sees a failover slot.
    assert!(check.stdout.contains("failover = true: the server is a PostgreSQL 17+ primary"), "{}", check.stdout);
}
