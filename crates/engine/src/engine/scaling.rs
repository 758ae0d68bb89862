//! On-demand capacity: streams in ON_DEMAND mode scale their shard count from the write
//! throughput they observe, the way AWS describes it: capacity toward double the recent peak
//! (at 1 MiB/s per shard, never below 4 shards), and a shard that sustains more than half its
//! capacity is split. Scaling happens by ordinary splits and merges, so users see it in
//! ListShards with the usual lineage.

use super::*;

/// A shard's write capacity, which on-demand sizing is measured against.
const SHARD_CAPACITY_BYTES: f64 = 1024.0 * 1024.0;
/// A shard sustaining more than this fraction of its capacity is split.
const HOT_SHARD_FRACTION: f64 = 0.5;
/// Splits or merges per stream per scaling round, so a stream grows at most 2x per round.
const MAX_STEPS_PER_ROUND: usize = 64;

/// The write throughput a stream saw in recent scaling rounds.
#[derive(Default)]
pub(super) struct WriteMeter {
    /// Bytes written per shard index since the last round.
    pub(super) bytes: HashMap<u32, u64>,
    /// (round end ms, total bytes/s) of recent rounds, oldest first.
    pub(super) history: std::collections::VecDeque<(i64, f64)>,
    pub(super) last_round_ms: i64,
}

impl Engine {
    pub(super) fn meter_write(&self, handle: &StreamHandle, shard: u32, bytes: usize) {
        *handle.meter.lock().bytes.entry(shard).or_default() += bytes as u64;
    }

    pub(super) fn spawn_on_demand_scaling(&self) {
        let weak = Arc::downgrade(&self.inner);
        let every = self.inner.cfg.on_demand_scale_interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(inner) = weak.upgrade() else { return };
                let engine = Engine { inner };
                let streams: Vec<StreamHandle> = engine
                    .inner
                    .streams
                    .read()
                    .values()
                    .filter(|h| h.read().meta.mode == "ON_DEMAND")
                    .cloned()
                    .collect();
                for handle in streams {
                    if let Err(e) = engine.scale_round(&handle).await {
                        tracing::warn!(error = %e, "on-demand scaling failed");
                    }
                }
            }
        });
    }

    /// One scaling decision for one on-demand stream.
    async fn scale_round(&self, handle: &StreamHandle) -> Result<()> {
        let _guard = self.inner.control.lock().await;
        let t = now(&self.inner);
        let window = self.inner.cfg.on_demand_window.as_millis() as i64;
        let (per_shard, peak) = {
            let mut m = handle.meter.lock();
            let elapsed = ((t - m.last_round_ms).max(1) as f64 / 1000.0).max(0.001);
            let first_round = m.last_round_ms == 0;
            m.last_round_ms = t;
            let bytes = std::mem::take(&mut m.bytes);
            if first_round {
                return Ok(());
            }
            let per_shard: HashMap<u32, f64> = bytes
                .into_iter()
                .map(|(k, v)| (k, v as f64 / elapsed))
                .collect();
            let total: f64 = per_shard.values().sum();
            m.history.push_back((t, total));
            while m.history.front().is_some_and(|(at, _)| t - at > window) {
                m.history.pop_front();
            }
            let peak = m.history.iter().map(|(_, r)| *r).fold(0.0, f64::max);
            (per_shard, peak)
        };
        let (status, open) = {
            let st = handle.read();
            if st.meta.mode != "ON_DEMAND" {
                return Ok(());
            }
            let mut open: Vec<(u32, u128, u128)> = st
                .routes
                .iter()
                .map(|&(s, e, i)| (st.meta.shards[i].index, s, e))
                .collect();
            open.sort_by_key(|o| o.1);
            (st.meta.status.clone(), open)
        };
        if status != "ACTIVE" {
            return Ok(());
        }
        let target = ((2.0 * peak / SHARD_CAPACITY_BYTES).ceil() as usize)
            .max(ON_DEMAND_INITIAL_SHARDS as usize);
        let rate = |i: u32| per_shard.get(&i).copied().unwrap_or(0.0);
        // Hot shards first, then the widest ranges, until capacity reaches the target.
        let mut splits: Vec<(u32, u128, u128)> = open
            .iter()
            .filter(|(i, s, e)| rate(*i) > HOT_SHARD_FRACTION * SHARD_CAPACITY_BYTES && e - s > 2)
            .copied()
            .collect();
        if open.len() + splits.len() < target {
            let mut rest: Vec<(u32, u128, u128)> = open
                .iter()
                .filter(|o| !splits.contains(o) && o.2 - o.1 > 2)
                .copied()
                .collect();
            rest.sort_by(|a, b| {
                rate(b.0)
                    .total_cmp(&rate(a.0))
                    .then((b.2 - b.1).cmp(&(a.2 - a.1)))
            });
            splits.extend(rest.into_iter().take(target - open.len() - splits.len()));
        }
        splits.truncate(MAX_STEPS_PER_ROUND.min(open.len()));
        if !splits.is_empty() {
            tracing::info!(
                shards = open.len(),
                splits = splits.len(),
                peak_bytes_per_sec = peak,
                "on-demand scale-up"
            );
            return self
                .reshard(handle, 2 * splits.len() as u64, false, |p| {
                    for (index, start, end) in &splits {
                        p.split(*index, start + (end - start) / 2 + 1)?;
                    }
                    Ok(())
                })
                .await;
        }
        // Scale down only when the whole window's peak needs at most half the shards, by
        // merging the coldest adjacent pairs.
        let full_window = handle
            .meter
            .lock()
            .history
            .front()
            .is_some_and(|(at, _)| t - at >= window / 2);
        if full_window && target * 2 <= open.len() {
            let mut pairs: Vec<(f64, u32, u32)> = open
                .windows(2)
                .filter(|w| w[0].2.checked_add(1) == Some(w[1].1))
                .map(|w| (rate(w[0].0) + rate(w[1].0), w[0].0, w[1].0))
                .collect();
            pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut used = std::collections::HashSet::new();
            let mut merges = Vec::new();
            for (_, a, b) in pairs {
                if open.len() - merges.len() <= target {
                    break;
                }
                if used.contains(&a) || used.contains(&b) {
                    continue;
                }
                used.insert(a);
                used.insert(b);
                merges.push((a, b));
            }
            merges.truncate(MAX_STEPS_PER_ROUND);
            if !merges.is_empty() {
                tracing::info!(
                    shards = open.len(),
                    merges = merges.len(),
                    "on-demand scale-down"
                );
                return self
                    .reshard(handle, merges.len() as u64, false, |p| {
                        for (a, b) in &merges {
                            p.merge(*a, *b)?;
                        }
                        Ok(())
                    })
                    .await;
            }
        }
        Ok(())
    }
}
