//! Slot safety while streaming: every 10 s, how much WAL the replication
//! slot makes the server keep (`pg_current_wal_lsn() - restart_lsn`). Above
//! `wal_warn_bytes` it logs a warning (at most once a minute) and sets the
//! `outflow_wal_retention_warning` metric; `outflow status` shows the same
//! from its own look at the slot. A slot pins WAL when a sink is stuck or
//! outflow was stopped for long: the disk fills, or with
//! `max_slot_wal_keep_size` the server invalidates the slot.

use std::time::{Duration, Instant};

use super::catalog::Catalog;
use outflow_pgconn::PgParams;
use crate::metrics::metrics;

const CHECK_EVERY: Duration = Duration::from_secs(10);
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Runs until aborted; a failed look is tried again on the next tick.
pub async fn watch(params: PgParams, slot: String, warn_bytes: u64) {
    let mut catalog: Option<Catalog> = None;
    let mut last_warning: Option<Instant> = None;
    // The first look after one period: short runs (`--until-caught-up`)
    // are not slowed by another connection at start.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + CHECK_EVERY, CHECK_EVERY);
    loop {
        tick.tick().await;
        if catalog.is_none() {
            catalog = Catalog::connect(&params).await.ok();
        }
        let Some(c) = &catalog else { continue };
        let retained = match c.slot(&slot).await {
            Ok(Some(info)) => info.retained_wal_bytes.unwrap_or(0).max(0) as u64,
            Ok(None) => continue,
            Err(e) => {
                tracing::debug!(error = %e.message, "cannot read the slot's retained WAL; trying again");
                catalog = None;
                continue;
            }
        };
        let m = metrics();
        m.wal_retained_bytes.set(retained.min(i64::MAX as u64) as i64);
        let over = retained > warn_bytes;
        m.wal_warning.set(i64::from(over));
        if over && last_warning.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            last_warning = Some(Instant::now());
            tracing::warn!(
                slot = %slot,
                retained_bytes = retained,
                wal_warn_bytes = warn_bytes,
                "the replication slot retains more WAL than wal_warn_bytes: a sink is behind or failing; see `outflow status`"
            );
        }
    }
}
