//! The last hour of the pipeline for the console's charts, kept in memory
//! by `outflow run`: a sample every [`INTERVAL`], at most [`CAPACITY`] (one
//! hour), taken by a task the admin server starts ([`History::start`]).
//!
//! A sample holds, per sink, the events durable in it over its lifetime
//! (its offset file's count, so a restart does not show a burst), the rate
//! since the previous sample, and the lag the process itself measures
//! (`src/health.rs`: seconds since the oldest change not yet durable, and
//! WAL bytes behind the server on PostgreSQL), the same figures as
//! `/metrics`. `/api/history?since=T` gives the samples taken after `T`,
//! so the page loads the hour once and then appends.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::config::Config;
use crate::health::health;
use crate::state::StateDir;

/// Time between samples.
pub const INTERVAL: Duration = Duration::from_secs(5);
/// Samples kept: one hour.
pub const CAPACITY: usize = 720;

/// One sink in one sample.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkSample {
    pub events: Option<u64>,
    pub events_per_sec: Option<f64>,
    pub lag_seconds: Option<f64>,
    pub lag_bytes: Option<u64>,
}

#[derive(Debug, Clone)]
struct Sample {
    /// Seconds since the epoch.
    t: f64,
    sinks: BTreeMap<String, SinkSample>,
}

pub struct History {
    samples: Mutex<VecDeque<Sample>>,
}

impl History {
    pub fn new() -> Arc<History> {
        Arc::new(History { samples: Mutex::new(VecDeque::with_capacity(CAPACITY)) })
    }

    /// Samples the pipeline now and every [`INTERVAL`] until the task is aborted.
    pub fn start(self: &Arc<Self>, config: &Config) -> tokio::task::JoinHandle<()> {
        let history = self.clone();
        let dir: PathBuf = config.state.dir.clone();
        let names: Vec<String> = config.sinks.iter().map(|s| s.name().to_string()).collect();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let state = StateDir::open_read_only(&dir);
                let events: BTreeMap<String, Option<u64>> =
                    names.iter().map(|n| (n.clone(), state.sink_offset(n).ok().flatten().map(|o| o.events))).collect();
                let lags: BTreeMap<String, (f64, Option<u64>)> =
                    health().lags().into_iter().map(|l| (l.name, (l.lag_seconds, l.lag_bytes))).collect();
                let now = crate::health::now_us() as f64 / 1e6;
                history.record(now, &names, &events, &lags);
            }
        })
    }

    /// Adds the sample of time `t` (seconds since the epoch).
    fn record(
        &self,
        t: f64,
        names: &[String],
        events: &BTreeMap<String, Option<u64>>,
        lags: &BTreeMap<String, (f64, Option<u64>)>,
    ) {
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let previous = samples.back().cloned();
        let sinks = names
            .iter()
            .map(|name| {
                let events = events.get(name).copied().flatten();
                let rate = previous.as_ref().and_then(|p| {
                    let before = p.sinks.get(name)?.events?;
                    let dt = t - p.t;
                    (dt > 0.0).then(|| events.unwrap_or(before).saturating_sub(before) as f64 / dt)
                });
                let (lag_seconds, lag_bytes) = lags.get(name).map_or((None, None), |(s, b)| (Some(*s), *b));
                (name.clone(), SinkSample { events, events_per_sec: rate, lag_seconds, lag_bytes })
            })
            .collect();
        if samples.len() == CAPACITY {
            samples.pop_front();
        }
        samples.push_back(Sample { t, sinks });
    }

    /// `/api/history`: the samples taken after `since` (all without it).
    pub fn json(&self, since: Option<f64>) -> Value {
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let list: Vec<Value> = samples
            .iter()
            .filter(|s| since.is_none_or(|since| s.t > since))
            .map(|s| {
                let sinks: serde_json::Map<String, Value> = s
                    .sinks
                    .iter()
                    .map(|(name, v)| {
                        let rate = v.events_per_sec.map(|r| (r * 10.0).round() / 10.0);
                        let entry = json!({
                            "events": v.events,
                            "events_per_sec": rate,
                            "lag_seconds": v.lag_seconds,
                            "lag_bytes": v.lag_bytes,
                        });
                        (name.clone(), entry)
                    })
                    .collect();
                json!({"t": (s.t * 1000.0).round() / 1000.0, "sinks": sinks})
            })
            .collect();
        json!({"interval_seconds": INTERVAL.as_secs(), "capacity": CAPACITY, "samples": list})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(n: Option<u64>) -> BTreeMap<String, Option<u64>> {
        [("events".to_string(), n)].into()
    }

    #[test]
    fn rates_come_from_successive_samples_and_the_hour_is_bounded() {
        let h = History { samples: Mutex::new(VecDeque::new()) };
        let names = vec!["events".to_string()];
        let lags: BTreeMap<String, (f64, Option<u64>)> = [("events".to_string(), (2.5, Some(4096)))].into();
        h.record(1000.0, &names, &events(Some(100)), &lags);
        h.record(1005.0, &names, &events(Some(600)), &lags);
        // The offset file unreadable for one sample: no events, no rate.
        h.record(1010.0, &names, &events(None), &BTreeMap::new());
        let all = h.json(None);
        let samples = all["samples"].as_array().unwrap();
        assert_eq!(samples.len(), 3);
        assert_eq!(samples[0]["sinks"]["events"]["events_per_sec"], Value::Null);
        assert_eq!(samples[1]["sinks"]["events"]["events_per_sec"], json!(100.0));
        assert_eq!(samples[1]["sinks"]["events"]["lag_seconds"], json!(2.5));
        assert_eq!(samples[1]["sinks"]["events"]["lag_bytes"], json!(4096));
        assert_eq!(samples[2]["sinks"]["events"]["lag_seconds"], Value::Null);
        assert_eq!(h.json(Some(1005.0))["samples"].as_array().unwrap().len(), 1);

        for i in 0..CAPACITY as u64 + 10 {
            h.record(2000.0 + i as f64 * 5.0, &names, &events(Some(i * 10)), &lags);
        }
        let all = h.json(None);
        let samples = all["samples"].as_array().unwrap();
        assert_eq!(samples.len(), CAPACITY);
        assert_eq!(samples[0]["t"], json!(2050.0));
        assert_eq!(samples[CAPACITY - 1]["sinks"]["events"]["events_per_sec"], json!(2.0));
    }
}
