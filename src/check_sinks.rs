//! `outflow check` for the sinks: every configured sink's own preflight
//! (its factory's `preflight`: destination reachable, writable, privileges),
//! run one sink after the other so the lines print in config order.

use outflow_sinks::Probe;

use crate::config::SinkEntry;

/// The checks of every sink, in config order.
pub async fn preflight(sinks: &[SinkEntry]) -> Vec<Probe> {
    let mut probes = Vec::new();
    for sink in sinks {
        probes.extend(sink.factory().preflight().await);
    }
    probes
}
