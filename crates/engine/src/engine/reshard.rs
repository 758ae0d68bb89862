//! Resharding: SplitShard, MergeShards, UpdateShardCount (and on-demand scaling, which uses the
//! same machinery).
//!
//! A reshard runs under the stream's gate held exclusively: no append is in flight, so each
//! closing shard's end position is exactly its log's next position, and every later write is
//! routed by the new shard map. The new metadata is one redb transaction: a crash leaves the
//! stream wholly before or wholly after the reshard.

use super::*;
use crate::api_ops::*;

const DAY_MS: i64 = 86_400_000;
/// UpdateShardCount calls per stream per rolling 24 hours.
const SHARD_COUNT_UPDATES_PER_DAY: usize = 10;

/// Shard-map edits on a copy of the stream's metadata.
pub(super) struct Planner {
    meta: StreamMeta,
    now_ms: i64,
    next_queue: u64,
    queue_limit: u64,
    /// Indexes of shards closed by this plan.
    closed: Vec<u32>,
    /// Indexes of shards created by this plan.
    created: Vec<u32>,
    /// The key new shards' records are sealed with (the stream is encrypted).
    encryption_key: Option<u32>,
}

impl Planner {
    fn shard(&self, index: u32) -> Option<&ShardMeta> {
        self.meta.shards.iter().find(|s| s.index == index)
    }

    /// Creation time for children: after every parent's creation second, so children's
    /// sequence numbers sort above their parents'.
    fn child_created_ms(&self, parents: &[u32]) -> i64 {
        let after = parents
            .iter()
            .filter_map(|p| self.shard(*p))
            .map(|p| (p.created_ms.div_euclid(1000) + 1) * 1000)
            .max()
            .unwrap_or(0);
        self.now_ms.max(after)
    }

    fn new_shard(
        &mut self,
        parent: u32,
        adjacent: Option<u32>,
        start: u128,
        end: u128,
    ) -> Result<u32> {
        if self.next_queue >= self.queue_limit {
            return Err(Error::InternalFailure(
                "queue id reservation exhausted".into(),
            ));
        }
        let mut parents = vec![parent];
        parents.extend(adjacent);
        let index = self.meta.next_shard_index;
        self.meta.next_shard_index += 1;
        let created_ms = self.child_created_ms(&parents);
        self.meta.shards.push(ShardMeta {
            index,
            queue: self.next_queue,
            parent: Some(parent),
            adjacent_parent: adjacent,
            start_hash: start.to_string(),
            end_hash: end.to_string(),
            created_ms,
            opened_ms: Some(self.now_ms),
            // Children of an encrypted stream are encrypted from their first record.
            encryption: match self.encryption_key {
                Some(k) => vec![(0, Some(k))],
                None => Vec::new(),
            },
            closed: None,
        });
        self.next_queue += 1;
        self.created.push(index);
        Ok(index)
    }

    fn close(&mut self, index: u32) {
        let now = self.now_ms;
        if let Some(s) = self.meta.shards.iter_mut().find(|s| s.index == index) {
            // The end position is filled in once the plan is applied (see `apply`).
            s.closed = Some(crate::meta::ClosedShard {
                closed_ms: now,
                end_position: 0,
            });
        }
        self.closed.push(index);
    }

    fn range(&self, index: u32) -> (u128, u128) {
        self.shard(index)
            .map(|s| (hash_of(&s.start_hash), hash_of(&s.end_hash)))
            .unwrap_or((0, 0))
    }

    /// Splits `index` so the upper child starts at `key` (start < key <= end).
    pub(super) fn split(&mut self, index: u32, key: u128) -> Result<(u32, u32)> {
        let (start, end) = self.range(index);
        self.close(index);
        let lo = self.new_shard(index, None, start, key - 1)?;
        let hi = self.new_shard(index, None, key, end)?;
        Ok((lo, hi))
    }

    /// Merges two hash-adjacent shards; the child's parent is `a`, its adjacent parent `b`.
    pub(super) fn merge(&mut self, a: u32, b: u32) -> Result<u32> {
        let (sa, ea) = self.range(a);
        let (sb, eb) = self.range(b);
        self.close(a);
        self.close(b);
        self.new_shard(a, Some(b), sa.min(sb), ea.max(eb))
    }

    fn open_sorted(&self) -> Vec<(u128, u128, u32)> {
        let mut v: Vec<(u128, u128, u32)> = self
            .meta
            .shards
            .iter()
            .filter(|s| s.closed.is_none())
            .map(|s| (hash_of(&s.start_hash), hash_of(&s.end_hash), s.index))
            .collect();
        v.sort();
        v
    }

    /// Reshapes the open shards into `target` uniform ranges: split every open shard at each
    /// target boundary inside it, then merge the pieces of each target range pairwise.
    fn uniform(&mut self, target: u32) -> Result<()> {
        let bounds: Vec<(u128, u128)> = (0..target).map(|i| even_range(i, target)).collect();
        for (start, end, index) in self.open_sorted() {
            let mut current = index;
            for &(b, _) in bounds.iter().skip(1) {
                if b > start && b <= end {
                    let (cs, _) = self.range(current);
                    if b > cs {
                        current = self.split(current, b)?.1;
                    }
                }
            }
        }
        for &(ts, te) in &bounds {
            let pieces: Vec<u32> = self
                .open_sorted()
                .into_iter()
                .filter(|(s, e, _)| *s >= ts && *e <= te)
                .map(|(_, _, i)| i)
                .collect();
            let mut acc = match pieces.first() {
                Some(&p) => p,
                None => continue,
            };
            for &p in &pieces[1..] {
                acc = self.merge(acc, p)?;
            }
        }
        Ok(())
    }
}

fn provisioned_only(op: &str, meta: &StreamMeta) -> Result<()> {
    if meta.mode == "ON_DEMAND" {
        return Err(Error::Validation(format!(
            "{op} is only supported for data streams with the provisioned capacity mode."
        )));
    }
    Ok(())
}

impl Engine {
    /// Runs `plan` on the stream's metadata under the gate and publishes the result.
    /// `reserve` bounds how many new shards the plan may create.
    pub(super) async fn reshard(
        &self,
        handle: &StreamHandle,
        reserve: u64,
        by_user: bool,
        plan: impl FnOnce(&mut Planner) -> Result<()>,
    ) -> Result<()> {
        let _writers_drained = handle.gate.write().await;
        let first_queue = self.inner.meta.allocate_queues(reserve)?;
        let meta = handle.read().meta.clone();
        let encryption_key = meta
            .shards
            .iter()
            .find(|s| s.closed.is_none())
            .and_then(|s| s.current_key());
        let mut planner = Planner {
            encryption_key,
            meta,
            now_ms: now(&self.inner),
            next_queue: first_queue,
            queue_limit: first_queue + reserve,
            closed: Vec::new(),
            created: Vec::new(),
        };
        plan(&mut planner)?;
        let retention = retention_ms(planner.meta.retention_hours);
        let new_queues: Vec<u64> = planner
            .created
            .iter()
            .filter_map(|i| planner.shard(*i).map(|s| s.queue))
            .collect();
        for &q in &new_queues {
            self.inner
                .log
                .create_queue(q, retention)
                .map_err(log_error)?;
        }
        let undo = |engine: &Engine| {
            for &q in &new_queues {
                let _ = engine.inner.log.drop_queue(q);
            }
        };
        for index in planner.closed.clone() {
            let queue = planner.shard(index).map(|s| s.queue).unwrap_or_default();
            let next = match self.inner.log.next_position(queue) {
                Ok(next) => next,
                Err(e) => {
                    undo(self);
                    return Err(log_error(e));
                }
            };
            if let Some(c) = planner
                .meta
                .shards
                .iter_mut()
                .find(|s| s.index == index)
                .and_then(|s| s.closed.as_mut())
            {
                c.end_position = next;
            }
        }
        // A user's reshard shows UPDATING for the configured delay; on-demand scaling does not.
        let until = if by_user {
            self.begin_update_delay(&mut planner.meta)
        } else {
            None
        };
        if let Err(e) = self.inner.meta.put_stream(&planner.meta) {
            undo(self);
            return Err(e);
        }
        {
            let mut st = handle.write();
            st.meta = planner.meta;
            st.rebuild_routes();
        }
        let mut buckets = handle.buckets.lock();
        for index in &planner.closed {
            buckets.remove(index);
        }
        drop(buckets);
        if let Some(until) = until {
            let key = handle.read().meta.key();
            self.schedule_transition(key, until);
        }
        Ok(())
    }

    fn begin_update_delay(&self, meta: &mut StreamMeta) -> Option<i64> {
        let delay = self.inner.cfg.update_stream_delay.as_millis() as i64;
        if delay == 0 {
            return None;
        }
        let until = now(&self.inner) + delay;
        meta.status = "UPDATING".into();
        meta.status_until_ms = until;
        Some(until)
    }

    fn check_reshardable(
        &self,
        op: &str,
        scope: &Scope,
        name: &str,
        handle: &StreamHandle,
        added: i64,
    ) -> Result<()> {
        let st = handle.read();
        provisioned_only(op, &st.meta)?;
        if st.meta.status != "ACTIVE" {
            return Err(Error::ResourceInUse(format!(
                "Stream {name} under account {} not ACTIVE, instead in state {}",
                scope.account, st.meta.status
            )));
        }
        drop(st);
        let (open, _) = self.open_shard_count(scope);
        if added > 0 && open + added > self.inner.cfg.shard_limit {
            return Err(Error::LimitExceeded(format!(
                "This request would exceed the shard limit for the account {} in {}. Current shard count for the account: {open}. Limit: {}. Number of additional shards that would have resulted from this request: {added}. Refer to the AWS Service Limits page (http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) for current limits and how to request higher limits.",
                scope.account, scope.region, self.inner.cfg.shard_limit
            )));
        }
        Ok(())
    }

    /// Finds an open shard by id for split/merge, with Kinesis's errors.
    fn open_shard_for_reshard(
        &self,
        scope: &Scope,
        name: &str,
        st: &StreamState,
        id: &str,
    ) -> Result<ShardMeta> {
        let missing = || {
            Error::ResourceNotFound(format!(
                "Could not find shard {id} in stream {name} under account {}.",
                scope.account
            ))
        };
        let index = parse_shard_id(id).ok_or_else(missing)?;
        let shard = st.shard(index).cloned().ok_or_else(missing)?;
        if shard.closed.is_some() {
            return Err(Error::InvalidArgument(format!(
                "Shard {} in stream {name} under account {} has already been merged or split, and thus is not eligible for merging or splitting.",
                shard_id(index),
                scope.account
            )));
        }
        Ok(shard)
    }

    pub async fn split_shard(&self, scope: &Scope, input: SplitShardInput) -> Result<()> {
        let _guard = self.inner.control.lock().await;
        let (name, handle) = self.resolve(scope, &input.stream)?;
        self.check_reshardable("SplitShard", scope, &name, &handle, 1)?;
        let shard =
            self.open_shard_for_reshard(scope, &name, &handle.read(), &input.shard_to_split)?;
        let (start, end) = (hash_of(&shard.start_hash), hash_of(&shard.end_hash));
        let key = parse_hash_key(&input.new_starting_hash_key);
        let key = match key {
            Some(k) if k > start.saturating_add(1) && k < end => k,
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "NewStartingHashKey {} used in SplitShard() on shard {} in stream {name} under account {} is not both greater than one plus the shard's StartingHashKey {start} and less than the shard's EndingHashKey {end}.",
                    input.new_starting_hash_key,
                    shard_id(shard.index),
                    scope.account
                )))
            }
        };
        self.reshard(&handle, 2, true, |p| p.split(shard.index, key).map(|_| ()))
            .await
    }

    pub async fn merge_shards(&self, scope: &Scope, input: MergeShardsInput) -> Result<()> {
        let _guard = self.inner.control.lock().await;
        let (name, handle) = self.resolve(scope, &input.stream)?;
        self.check_reshardable("MergeShards", scope, &name, &handle, 0)?;
        let (a, b) = {
            let st = handle.read();
            (
                self.open_shard_for_reshard(scope, &name, &st, &input.shard_to_merge)?,
                self.open_shard_for_reshard(scope, &name, &st, &input.adjacent_shard_to_merge)?,
            )
        };
        let (sa, ea) = (hash_of(&a.start_hash), hash_of(&a.end_hash));
        let (sb, eb) = (hash_of(&b.start_hash), hash_of(&b.end_hash));
        let adjacent =
            a.index != b.index && (ea.checked_add(1) == Some(sb) || eb.checked_add(1) == Some(sa));
        if !adjacent {
            return Err(Error::InvalidArgument(format!(
                "Shards {} and {} in stream {name} under account {} are not an adjacent pair of shards eligible for merging",
                shard_id(a.index),
                shard_id(b.index),
                scope.account
            )));
        }
        self.reshard(&handle, 1, true, |p| p.merge(a.index, b.index).map(|_| ()))
            .await
    }

    pub async fn update_shard_count(
        &self,
        scope: &Scope,
        input: UpdateShardCountInput,
    ) -> Result<UpdateShardCountOutput> {
        let _guard = self.inner.control.lock().await;
        let (name, handle) = self.resolve(scope, &input.stream)?;
        let (current, arn, updates) = {
            let st = handle.read();
            let t = now(&self.inner);
            let updates: Vec<i64> = st
                .meta
                .shard_count_updates
                .iter()
                .copied()
                .filter(|at| t - at < DAY_MS)
                .collect();
            (
                st.routes.len() as i64,
                stream_arn(&st.meta.region, &st.meta.account, &st.meta.name),
                updates,
            )
        };
        let target = input.target_shard_count;
        self.check_reshardable(
            "UpdateShardCount",
            scope,
            &name,
            &handle,
            (target - current).max(0),
        )?;
        if target > current * 2 {
            return Err(Error::LimitExceeded(format!(
                "UpdateShardCount cannot scale up over double your current open shard count. Current open shard count: {current} Target shard count: {target}"
            )));
        }
        if target * 2 < current {
            return Err(Error::LimitExceeded(format!(
                "UpdateShardCount cannot scale down below half your current open shard count. Current open shard count: {current} Target shard count: {target}"
            )));
        }
        if target > MAX_SHARDS_PER_STREAM {
            return Err(Error::LimitExceeded(format!(
                "UpdateShardCount cannot scale up over {MAX_SHARDS_PER_STREAM} shards per stream. Target shard count: {target}"
            )));
        }
        if updates.len() >= SHARD_COUNT_UPDATES_PER_DAY {
            return Err(Error::LimitExceeded(format!(
                "Stream {name} under account {} has exceeded the limit of {SHARD_COUNT_UPDATES_PER_DAY} UpdateShardCount calls in a rolling 24-hour period.",
                scope.account
            )));
        }
        let t = now(&self.inner);
        let reserve = 3 * (current as u64 + target as u64) + 2;
        self.reshard(&handle, reserve, true, |p| {
            p.meta.shard_count_updates = updates;
            p.meta.shard_count_updates.push(t);
            p.uniform(target as u32)
        })
        .await?;
        Ok(UpdateShardCountOutput {
            stream_name: name.into_owned(),
            current_shard_count: current,
            target_shard_count: target,
            stream_arn: arn,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planner(n: u32) -> Planner {
        let shards = (0..n)
            .map(|i| {
                let (s, e) = even_range(i, n);
                ShardMeta {
                    index: i,
                    queue: i as u64,
                    parent: None,
                    adjacent_parent: None,
                    start_hash: s.to_string(),
                    end_hash: e.to_string(),
                    created_ms: 1_000,
                    opened_ms: None,
                    encryption: Vec::new(),
                    closed: None,
                }
            })
            .collect();
        Planner {
            meta: StreamMeta {
                version: 1,
                account: "a".into(),
                region: "r".into(),
                name: "s".into(),
                created_ms: 1_000,
                status: "ACTIVE".into(),
                status_until_ms: 0,
                mode: "PROVISIONED".into(),
                retention_hours: 24,
                shards,
                next_shard_index: n,
                tags: BTreeMap::new(),
                shard_level_metrics: Vec::new(),
                encryption_key_id: None,
                max_record_size_kib: 1024,
                resource_policy: None,
                encryption_changes: Vec::new(),
                mode_switches: Vec::new(),
                shard_count_updates: Vec::new(),
                consumers: Vec::new(),
            },
            now_ms: 5_000,
            next_queue: 100,
            queue_limit: 100_000,
            closed: Vec::new(),
            created: Vec::new(),
            encryption_key: None,
        }
    }

    #[test]
    fn uniform_rescales_reach_even_ranges_with_valid_lineage() {
        for (from, to) in [
            (1, 2),
            (2, 1),
            (3, 5),
            (5, 3),
            (4, 8),
            (8, 4),
            (7, 13),
            (13, 7),
            (10, 10),
            (6, 11),
        ] {
            let mut p = planner(from);
            p.uniform(to).expect("plan");
            let open = p.open_sorted();
            let expected: Vec<(u128, u128)> = (0..to).map(|i| even_range(i, to)).collect();
            let got: Vec<(u128, u128)> = open.iter().map(|(s, e, _)| (*s, *e)).collect();
            assert_eq!(got, expected, "{from} -> {to}");
            for s in &p.meta.shards {
                // Every shard has at most two parents and starts after them.
                for parent in s.parent.iter().chain(s.adjacent_parent.iter()) {
                    let ps = p.shard(*parent).expect("parent exists");
                    assert!(ps.closed.is_some());
                    assert!(s.created_ms / 1000 > ps.created_ms / 1000);
                }
            }
        }
    }

    #[test]
    fn split_and_merge_ranges() {
        let mut p = planner(2);
        let (lo, hi) = p.split(0, 1000).expect("split");
        assert_eq!(p.range(lo), (0, 999));
        assert_eq!(p.range(hi).0, 1000);
        let m = p.merge(lo, hi).expect("merge");
        assert_eq!(p.range(m), (0, (1u128 << 127) - 1));
        assert_eq!(p.shard(m).and_then(|s| s.adjacent_parent), Some(hi));
    }
}
