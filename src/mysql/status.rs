//! `outflow status` for a MySQL/MariaDB source: the server's current binlog
//! file, offset and GTID state, the oldest binlog it still has, and how far
//! behind each sink's saved position is — in bytes for file positions (summed
//! over the binlog files between), in transactions for GTID positions (summed
//! over domains); and `outflow offsets set`'s check that a position can
//! still be replayed.

use outflow_model::position::{GtidSet, MysqlAnchor, MysqlPos};
use outflow_model::Position;
use serde_json::json;

use super::catalog::{display, parse_url, Catalog};
use super::config::MysqlConfig;
use crate::error::{Error, Result};
use crate::report::text;
use crate::source::{Lag, SourceStatus};

/// What the server says about its binlog.
pub struct ServerBinlog {
    pub file: String,
    pub pos: u64,
    pub gtid: Option<GtidSet>,
    pub logs: Vec<(String, u64)>,
    pub end: MysqlAnchor,
}

pub async fn server_binlog(url: &str) -> Result<ServerBinlog> {
    let mut c = Catalog::connect(url).await?;
    let (file, pos) = c.master_status().await?;
    let logs = c.binary_logs().await?;
    let end = c.current_end().await?;
    let gtid = match &end {
        MysqlAnchor::Gtid(g) => Some(g.clone()),
        MysqlAnchor::File { .. } => None,
    };
    let _ = c.conn.disconnect().await;
    Ok(ServerBinlog { file, pos, gtid, logs, end })
}

/// How far `saved` is behind the server: `(bytes, transactions)`.
pub fn lag(server: &ServerBinlog, saved: &Position) -> (Option<u64>, Option<u64>) {
    let Position::Mysql(MysqlPos { anchor, .. }) = saved else { return (None, None) };
    match (anchor, &server.gtid) {
        (MysqlAnchor::File { name, pos }, _) => {
            let Some(i) = server.logs.iter().position(|(f, _)| f.as_str() == &**name) else { return (None, None) };
            let mut bytes = 0u64;
            for (f, size) in &server.logs[i..] {
                let from = if f.as_str() == &**name { *pos } else { 4 };
                let to = if *f == server.file { server.pos } else { *size };
                bytes += to.saturating_sub(from);
                if *f == server.file {
                    break;
                }
            }
            (Some(bytes), None)
        }
        (MysqlAnchor::Gtid(set), Some(now)) => {
            let behind = now
                .gtids()
                .iter()
                .map(|g| g.seq.saturating_sub(set.gtids().iter().find(|s| s.domain == g.domain).map_or(0, |s| s.seq)))
                .sum();
            (None, Some(behind))
        }
        (MysqlAnchor::Gtid(_), None) => (None, None),
    }
}

/// The `source` object of `status --json`.
pub fn source_json(url: &str, server_id: u32, server: &std::result::Result<ServerBinlog, String>) -> serde_json::Value {
    let shown = parse_url(url).map(|o| display(&o)).unwrap_or_default();
    match server {
        Ok(s) => json!({
            "kind": "mysql",
            "server": shown,
            "server_position": Position::mysql(s.end.clone()).to_string(),
            "binlog_file": s.file,
            "binlog_pos": s.pos,
            "gtid": s.gtid.as_ref().map(|g| g.to_string()),
            "oldest_binlog": s.logs.first().map(|l| l.0.clone()),
            "binlog_files": s.logs.len(),
            "binlog_bytes": s.logs.iter().map(|l| l.1).sum::<u64>(),
            "server_id": server_id,
            "error": null,
        }),
        Err(e) => json!({"kind": "mysql", "server": shown, "server_id": server_id, "error": e}),
    }
}

pub fn print_source(s: &serde_json::Value) {
    println!("source    mysql {}  server position {}", text(&s["server"]), text(&s["server_position"]));
    if let Some(err) = s["error"].as_str() {
        println!("          error: {err}");
        return;
    }
    println!(
        "binlog    {}:{}  gtid {}  oldest {}  ({} files, {} bytes)  replica server_id {}",
        text(&s["binlog_file"]),
        text(&s["binlog_pos"]),
        text(&s["gtid"]),
        text(&s["oldest_binlog"]),
        text(&s["binlog_files"]),
        text(&s["binlog_bytes"]),
        text(&s["server_id"]),
    );
}

/// The `status` block for a mysql source, and each sink's lag.
pub async fn status(cfg: &MysqlConfig) -> Result<SourceStatus> {
    let server = server_binlog(&cfg.url).await.map_err(|e| e.message);
    let block = source_json(&cfg.url, cfg.server_id(), &server);
    let lag: Lag = Box::new(move |p| {
        let (bytes, txs) = match &server {
            Ok(s) => lag(s, p),
            Err(_) => (None, None),
        };
        let mut fields = serde_json::Map::new();
        fields.insert("lag_bytes".into(), json!(bytes));
        fields.insert("lag_transactions".into(), json!(txs));
        fields
    });
    Ok(SourceStatus { block, lag })
}

/// `outflow offsets set`: refuses positions that are not MySQL/MariaDB
/// ones, or whose binlogs the server no longer has.
pub async fn check_position(cfg: &MysqlConfig, target: &Position) -> Result<()> {
    let Position::Mysql(pos) = target else {
        return Err(Error::config(
            format!("{target} is not a MySQL/MariaDB position"),
            "e.g. --position gtid:0-1-42 (MariaDB) or file:mysql-bin.000003:4",
        ));
    };
    // The server must still have its binlogs from there on.
    let mut catalog = Catalog::connect(&cfg.url).await?;
    catalog.check_not_purged(&pos.anchor).await
}
