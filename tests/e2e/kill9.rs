//! kill -9 rounds under a busy writer, for the exactly-once tests of every
//! sink: start `outflow run`, write, kill the process at a random moment,
//! wait for the slot to be released, again.

use std::time::Duration;

use crate::harness::{write_rows, Outflow, TestDb};

/// `rounds` times: start `outflow run`, write `per_round` rows, and kill -9
/// the process after a random delay (milliseconds in `delay_ms`) while the
/// writer is still busy. Returns how many rows were written.
pub async fn kill_9_while_writing(
    db: &TestDb,
    outflow: &Outflow,
    rounds: i64,
    per_round: i64,
    delay_ms: std::ops::Range<u64>,
) -> i64 {
    kill_9_during(db, outflow, rounds, delay_ms, |round| write_rows(db, round * per_round + 1, per_round)).await;
    rounds * per_round
}

/// `rounds` times: start `outflow run`, run `write(round)`, and kill -9 the
/// process after a random delay (milliseconds in `delay_ms`) while the
/// writer is still busy.
pub async fn kill_9_during<F: std::future::Future<Output = ()>>(
    db: &TestDb,
    outflow: &Outflow,
    rounds: i64,
    delay_ms: std::ops::Range<u64>,
    mut write: impl FnMut(i64) -> F,
) {
    use rand::Rng;
    for round in 0..rounds {
        let mut run = outflow.spawn_run();
        db.wait_for_slot_streaming().await;
        let writer = write(round);
        let delay = Duration::from_millis(rand::rng().random_range(delay_ms.clone()));
        let killer = async {
            tokio::time::sleep(delay).await;
            assert!(run.is_running(), "outflow exited early: {}", run.stderr());
            run.kill9().await;
        };
        tokio::join!(writer, killer);
        db.wait_for_slot_idle().await;
    }
}
