//! What the PostgreSQL server says about positions: the `source` block of
//! `outflow status` (the server's WAL position, the slot, retained WAL) with
//! each sink's lag in bytes, and `outflow offsets set`'s check that a
//! position can still be replayed.

use outflow_model::position::format_lsn;
use outflow_model::Position;
use serde_json::{json, Map, Value};

use super::catalog::Catalog;
use super::config::PgConfig;
use outflow_pgconn::PgParams;
use crate::error::{Error, Result};
use crate::report::text;
use crate::source::{Lag, SourceStatus};

pub async fn status(cfg: &PgConfig) -> Result<SourceStatus> {
    let params = PgParams::from_url(&cfg.url, "[source] url")?;
    let server = async {
        let catalog = Catalog::connect(&params).await?;
        let lsn = catalog.current_wal_lsn().await?;
        let slot = catalog.slot(&cfg.slot).await?;
        Ok::<_, crate::error::Error>((lsn, slot))
    }
    .await;
    let warn_bytes = cfg.wal_warn_bytes();
    let (server_lsn, slot, error) = match server {
        Ok((lsn, slot)) => (Some(lsn), slot, None),
        Err(e) => (None, None, Some(e.message)),
    };
    let retained = slot.as_ref().and_then(|s| s.retained_wal_bytes);
    let slot = slot.map(|s| serde_json::to_value(s).unwrap_or_default());
    let source = json!({
        "kind": "postgres",
        "server": params.display(),
        "server_lsn": server_lsn.map(|l| Position::pg(l).to_string()),
        "slot_name": cfg.slot,
        "slot": slot,
        "wal_warn_bytes": warn_bytes,
        "wal_warning": retained.map(|r| r.max(0) as u64 > warn_bytes),
        "error": error,
    });
    let lag: Lag = Box::new(move |p| {
        let mut lag = Map::new();
        lag.insert("lag_bytes".into(), json!(server_lsn.map(|lsn| lsn.saturating_sub(p.pg_ack_lsn()))));
        lag
    });
    Ok(SourceStatus { block: source, lag })
}

pub fn print(s: &Value) {
    println!("source    postgres {}  server position {}", text(&s["server"]), text(&s["server_lsn"]));
    if let Some(err) = s["error"].as_str() {
        println!("          error: {err}");
    }
    match &s["slot"] {
        Value::Null => println!("slot      {} (missing)", text(&s["slot_name"])),
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
    if s["wal_warning"] == json!(true) {
        println!(
            "warning   the slot retains more WAL than wal_warn_bytes ({} bytes): a sink is behind or stopped",
            text(&s["wal_warn_bytes"])
        );
    }
}

/// `outflow offsets set`: refuses positions that are not PostgreSQL ones, that
/// the slot can no longer give back, or that the server has not reached.
pub async fn check_position(cfg: &PgConfig, target: &Position) -> Result<()> {
    let Position::Pg { .. } = target else {
        return Err(Error::config(format!("{target} is not a PostgreSQL position"), "e.g. --position lsn:0/16B3748"));
    };
    let params = PgParams::from_url(&cfg.url, "[source] url")?;
    let catalog = Catalog::connect(&params).await?;
    let lsn = target.pg_ack_lsn();
    if let Some(slot) = catalog.slot(&cfg.slot).await? {
        let confirmed = slot.confirmed_flush_lsn.as_deref().map(outflow_model::position::parse_lsn);
        if let Some(Ok(confirmed)) = confirmed {
            if lsn < confirmed {
                return Err(Error::fatal(
                    format!(
                        "slot {:?} has already confirmed {}; the server no longer has the changes before it, so {target} cannot be replayed",
                        cfg.slot,
                        format_lsn(confirmed)
                    ),
                    format!("choose a position at or after lsn:{}, or reset the sink to snapshot again", format_lsn(confirmed)),
                ));
            }
        }
    }
    let end = catalog.current_wal_lsn().await?;
    if lsn > end {
        return Err(Error::fatal(
            format!("{target} is beyond the server's current position lsn:{}", format_lsn(end)),
            "choose a position the server has reached",
        ));
    }
    Ok(())
}
