//! Enhanced fan-out: registered stream consumers and SubscribeToShard subscriptions.
//!
//! A subscription is a pull loop owned by the server's response task: it reads the shard's log
//! from its position, waits on the log's watch channel for new records, and yields
//! `SubscribeToShardEvent`s (records, keep-alives, and the final ChildShards event at shard end)
//! until five minutes have passed, another subscription takes over, or the consumer or stream
//! goes away. Per consumer and shard, reads are paced to 2 MiB/s when throttling is on.

use std::time::Instant;

use kinesin_log::Position;

use super::*;
use crate::api_ops::*;
use crate::meta::ConsumerMeta;

/// Consumers per stream.
const MAX_CONSUMERS: usize = 20;
/// Consumers in CREATING or DELETING at once, per stream.
const MAX_CONSUMERS_IN_TRANSITION: usize = 5;
/// How long one SubscribeToShard call pushes events.
pub const SUBSCRIPTION_MS: i64 = 300_000;
/// A new subscription for the same consumer and shard within this time of a successful one
/// is refused.
const RESUBSCRIBE_MS: i64 = 5_000;
/// SubscribeToShard calls per consumer and shard: one per second.
const SUBSCRIBE_INTERVAL_MS: i64 = 1_000;
/// How long an idle subscription waits before sending an empty event.
const KEEPALIVE: Duration = Duration::from_secs(5);
/// How often an idle subscription re-checks its shard (closure) and its consumer.
const RECHECK: Duration = Duration::from_millis(250);
/// Most records and bytes in one event.
const EVENT_MAX_RECORDS: usize = 10_000;
const EVENT_MAX_BYTES: usize = 2 << 20;
/// Enhanced fan-out read throughput per consumer and shard.
const FAN_OUT_BYTES_PER_SEC: f64 = 2.0 * 1024.0 * 1024.0;

/// The registry of live subscriptions: (consumer ARN, shard index) -> state.
#[derive(Default)]
pub(super) struct Subscriptions {
    map: HashMap<(String, u32), SubscriptionSlot>,
}

struct SubscriptionSlot {
    /// When the last SubscribeToShard call for this pair was made (accepted or not).
    last_call_ms: i64,
    /// When the current subscription started.
    started_ms: i64,
    /// Bumped by every accepted call; an older subscription seeing a newer one stops.
    generation: u64,
}

fn consumer_arn(stream_arn: &str, name: &str, created_ms: i64) -> String {
    format!(
        "{stream_arn}/consumer/{name}:{}",
        created_ms.div_euclid(1000)
    )
}

/// `arn:aws:kinesis:REGION:ACCOUNT:stream/STREAM/consumer/NAME:SECS` -> parts.
fn parse_consumer_arn(arn: &str) -> Option<(String, String, String, String, i64)> {
    let (stream_part, rest) = arn.split_once("/consumer/")?;
    let (region, account, stream) = parse_stream_arn(stream_part)?;
    let (name, secs) = rest.rsplit_once(':')?;
    if name.is_empty() || name.contains('/') {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    Some((
        region.to_string(),
        account.to_string(),
        stream.to_string(),
        name.to_string(),
        secs,
    ))
}

fn consumer_status(s: &str) -> ConsumerStatus {
    match s {
        "CREATING" => ConsumerStatus::Creating,
        "DELETING" => ConsumerStatus::Deleting,
        _ => ConsumerStatus::Active,
    }
}

impl Engine {
    /// Resolves a consumer named by ARN, or stream ARN + name, or all three.
    pub(super) fn resolve_consumer(
        &self,
        scope: &Scope,
        r: &ConsumerRef,
    ) -> Result<(StreamHandle, ConsumerMeta)> {
        let (stream_name, consumer_name, secs) =
            match (&r.consumer_arn, &r.stream_arn, &r.consumer_name) {
                (Some(arn), stream_arn, name) => {
                    let (region, account, stream, consumer, secs) = parse_consumer_arn(arn)
                        .ok_or_else(|| {
                            Error::InvalidArgument(format!("Invalid ConsumerARN: {arn}"))
                        })?;
                    if *region != *scope.region || *account != *scope.account {
                        return Err(Error::AccessDenied(format!(
                            "User is not authorized to access consumer {arn}"
                        )));
                    }
                    if let Some(sa) = stream_arn {
                        if parse_stream_arn(sa).map(|p| p.2) != Some(stream.as_str()) {
                            return Err(Error::InvalidArgument(format!(
                                "ConsumerARN {arn} does not belong to stream {sa}."
                            )));
                        }
                    }
                    if let Some(n) = name {
                        if *n != consumer {
                            return Err(Error::InvalidArgument(format!(
                                "ConsumerARN {arn} and ConsumerName {n} do not match."
                            )));
                        }
                    }
                    (stream, consumer, Some(secs))
                }
                (None, Some(sa), Some(name)) => {
                    let name_of = self
                        .resolve_name(
                            scope,
                            &StreamRef {
                                name: None,
                                arn: Some(sa.clone()),
                            },
                        )?
                        .into_owned();
                    (name_of, name.clone(), None)
                }
                _ => {
                    return Err(Error::InvalidArgument(
                        "Either ConsumerARN or both StreamARN and ConsumerName must be provided."
                            .into(),
                    ))
                }
            };
        let (_, handle) = self.resolve(scope, &StreamRef::by_name(&stream_name))?;
        let consumer = handle
            .read()
            .meta
            .consumers
            .iter()
            .find(|c| c.name == consumer_name && secs.is_none_or(|s| s == c.created_ms.div_euclid(1000)))
            .cloned()
            .ok_or_else(|| {
                Error::ResourceNotFound(format!(
                    "Consumer {consumer_name} under stream {stream_name} under account {} not found.",
                    scope.account
                ))
            })?;
        Ok((handle, consumer))
    }

    pub async fn register_stream_consumer(
        &self,
        scope: &Scope,
        input: RegisterStreamConsumerInput,
    ) -> Result<Consumer> {
        let _guard = self.inner.control.lock().await;
        let stream = StreamRef {
            name: None,
            arn: Some(input.stream_arn.clone()),
        };
        let (name, handle) = self.resolve(scope, &stream)?;
        if let Some(tags) = &input.tags {
            validate_tags(tags)?;
        }
        let t = now(&self.inner);
        let delay = self.inner.cfg.create_stream_delay.as_millis() as i64;
        let account = scope.account.clone();
        let consumer = ConsumerMeta {
            name: input.consumer_name.clone(),
            created_ms: t,
            status: if delay > 0 { "CREATING" } else { "ACTIVE" }.into(),
            status_until_ms: t + delay,
            tags: input.tags.clone().unwrap_or_default(),
            resource_policy: None,
        };
        let arn = self.update_meta(&handle, |m| {
            if m.status == "DELETING" || m.status == "CREATING" {
                return Err(Error::ResourceInUse(format!(
                    "Stream {name} under account {account} not ACTIVE, instead in state {}",
                    m.status
                )));
            }
            if m.consumers.iter().any(|c| c.name == consumer.name) {
                return Err(Error::ResourceInUse(format!(
                    "Consumer {} under stream {name} under account {account} already exists.",
                    consumer.name
                )));
            }
            if m.consumers.len() >= MAX_CONSUMERS {
                return Err(Error::LimitExceeded(format!(
                    "Consumer limit of {MAX_CONSUMERS} reached for stream {name} under account {account}."
                )));
            }
            if m.consumers.iter().filter(|c| c.status != "ACTIVE").count() >= MAX_CONSUMERS_IN_TRANSITION {
                return Err(Error::LimitExceeded(format!(
                    "Only {MAX_CONSUMERS_IN_TRANSITION} consumers can be created or deleted at a time for stream {name} under account {account}."
                )));
            }
            m.consumers.push(consumer.clone());
            Ok(stream_arn(&m.region, &m.account, &m.name))
        })?;
        if delay > 0 {
            self.schedule_consumer_transition(
                handle.read().meta.key(),
                consumer.name.clone(),
                t + delay,
            );
        }
        Ok(Consumer {
            consumer_arn: consumer_arn(&arn, &consumer.name, consumer.created_ms),
            consumer_name: consumer.name,
            consumer_status: consumer_status(&consumer.status),
            consumer_creation_timestamp: consumer.created_ms,
        })
    }

    pub fn describe_stream_consumer(
        &self,
        scope: &Scope,
        input: ConsumerRef,
    ) -> Result<ConsumerDescription> {
        let (handle, c) = self.resolve_consumer(scope, &input)?;
        let st = handle.read();
        let sarn = stream_arn(&st.meta.region, &st.meta.account, &st.meta.name);
        Ok(ConsumerDescription {
            consumer_arn: consumer_arn(&sarn, &c.name, c.created_ms),
            consumer_name: c.name,
            consumer_status: consumer_status(&c.status),
            consumer_creation_timestamp: c.created_ms,
            stream_arn: sarn,
        })
    }

    pub fn list_stream_consumers(
        &self,
        scope: &Scope,
        input: ListStreamConsumersInput,
    ) -> Result<ListStreamConsumersOutput> {
        let t = now(&self.inner);
        let after = match &input.next_token {
            Some(tok) => {
                let p = self.open_page(TokenKind::ListConsumers, tok, t)?;
                Some(p.name)
            }
            None => None,
        };
        let stream = StreamRef {
            name: None,
            arn: Some(input.stream_arn.clone()),
        };
        let (name, handle) = self.resolve(scope, &stream)?;
        let st = handle.read();
        if let Some(ts) = input.stream_creation_timestamp {
            if ts / 1000 != st.meta.created_ms / 1000 {
                return Err(not_found(&name, &scope.account));
            }
        }
        let limit = input.max_results.unwrap_or(100).clamp(1, 100) as usize;
        let sarn = stream_arn(&st.meta.region, &st.meta.account, &st.meta.name);
        let mut all: Vec<&ConsumerMeta> = st
            .meta
            .consumers
            .iter()
            .filter(|c| after.as_ref().is_none_or(|a| c.name.as_str() > a.as_str()))
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        let has_more = all.len() > limit;
        all.truncate(limit);
        let next_token = match (has_more, all.last()) {
            (true, Some(last)) => Some(self.inner.tokens.encode_page(
                TokenKind::ListConsumers,
                &PageToken {
                    issued_ms: t,
                    stream_created_ms: st.meta.created_ms,
                    max_results: limit as u32,
                    name: last.name.clone(),
                    after_index: 0,
                    filter: Vec::new(),
                },
            )),
            _ => None,
        };
        Ok(ListStreamConsumersOutput {
            consumers: all
                .into_iter()
                .map(|c| Consumer {
                    consumer_arn: consumer_arn(&sarn, &c.name, c.created_ms),
                    consumer_name: c.name.clone(),
                    consumer_status: consumer_status(&c.status),
                    consumer_creation_timestamp: c.created_ms,
                })
                .collect(),
            next_token,
        })
    }

    pub async fn deregister_stream_consumer(
        &self,
        scope: &Scope,
        input: ConsumerRef,
    ) -> Result<()> {
        let _guard = self.inner.control.lock().await;
        let (handle, consumer) = self.resolve_consumer(scope, &input)?;
        let delay = self.inner.cfg.delete_stream_delay.as_millis() as i64;
        let t = now(&self.inner);
        self.update_meta(&handle, |m| {
            if delay == 0 {
                m.consumers.retain(|c| c.name != consumer.name);
            } else if let Some(c) = m.consumers.iter_mut().find(|c| c.name == consumer.name) {
                c.status = "DELETING".into();
                c.status_until_ms = t + delay;
            }
            Ok(())
        })?;
        if delay > 0 {
            self.schedule_consumer_transition(handle.read().meta.key(), consumer.name, t + delay);
        }
        Ok(())
    }

    pub(super) fn schedule_consumer_transition(
        &self,
        stream_key: String,
        consumer: String,
        until_ms: i64,
    ) {
        let engine = self.clone();
        let delay = (until_ms - now(&self.inner)).max(0) as u64;
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let _guard = engine.inner.control.lock().await;
            let Some(handle) = engine.inner.streams.read().get(&stream_key).cloned() else {
                return;
            };
            let r = engine.update_meta(&handle, |m| {
                if let Some(i) = m.consumers.iter().position(|c| c.name == consumer) {
                    match m.consumers[i].status.as_str() {
                        "CREATING" => m.consumers[i].status = "ACTIVE".into(),
                        "DELETING" => {
                            m.consumers.remove(i);
                        }
                        _ => {}
                    }
                }
                Ok(())
            });
            if let Err(e) = r {
                tracing::warn!(error = %e, "consumer status transition failed");
            }
        });
    }

    /// Re-arms consumer transitions pending when the process stopped.
    pub(super) fn resume_consumer_transitions(&self) {
        let pending: Vec<(String, String, i64)> = self
            .inner
            .streams
            .read()
            .iter()
            .flat_map(|(k, h)| {
                h.read()
                    .meta
                    .consumers
                    .iter()
                    .filter(|c| c.status != "ACTIVE")
                    .map(|c| (k.clone(), c.name.clone(), c.status_until_ms))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (k, c, until) in pending {
            self.schedule_consumer_transition(k, c, until);
        }
    }

    pub(super) fn consumer_count(st: &StreamState) -> i64 {
        st.meta.consumers.len() as i64
    }

    /// Validates a SubscribeToShard call and starts the subscription.
    pub async fn subscribe_to_shard(
        &self,
        scope: &Scope,
        input: SubscribeToShardInput,
    ) -> Result<Subscription> {
        let r = ConsumerRef {
            consumer_arn: Some(input.consumer_arn.clone()),
            ..ConsumerRef::default()
        };
        let (handle, consumer) = self.resolve_consumer(scope, &r)?;
        let (stream_name, shard, position) = {
            let st = handle.read();
            let name = st.meta.name.clone();
            if consumer.status != "ACTIVE" {
                return Err(Error::ResourceInUse(format!(
                    "Consumer {} is not in ACTIVE state.",
                    input.consumer_arn
                )));
            }
            let missing = || {
                Error::ResourceNotFound(format!(
                    "Shard {} in stream {name} under account {} does not exist",
                    input.shard_id, scope.account
                ))
            };
            let index = parse_shard_id(&input.shard_id).ok_or_else(missing)?;
            let shard = st.shard(index).cloned().ok_or_else(missing)?;
            let p = &input.starting_position;
            let position = self.start_position(
                scope,
                &name,
                &shard,
                p.kind,
                p.sequence_number.as_deref(),
                p.timestamp,
                "SubscribeToShard",
            )?;
            (name, shard, position)
        };
        let t = now(&self.inner);
        let key = (input.consumer_arn.clone(), shard.index);
        let generation = {
            let mut subs = self.inner.subscriptions.lock();
            let slot = subs.map.entry(key.clone()).or_insert(SubscriptionSlot {
                last_call_ms: i64::MIN / 2,
                started_ms: i64::MIN / 2,
                generation: 0,
            });
            if t - slot.last_call_ms < SUBSCRIBE_INTERVAL_MS {
                slot.last_call_ms = t;
                return Err(Error::LimitExceeded(format!(
                    "Rate exceeded for consumer {} and shard {} in stream {stream_name} under account {}.",
                    input.consumer_arn,
                    shard_id(shard.index),
                    scope.account
                )));
            }
            slot.last_call_ms = t;
            if t - slot.started_ms < RESUBSCRIBE_MS {
                return Err(Error::ResourceInUse(format!(
                    "Another active subscription exists for this consumer: {} on shard {}.",
                    input.consumer_arn,
                    shard_id(shard.index)
                )));
            }
            slot.started_ms = t;
            slot.generation += 1;
            slot.generation
        };
        let watch = self.inner.log.watch(shard.queue).map_err(log_error)?;
        let pace = self
            .limits_for(&handle.read().meta)
            .map(|_| Pace::new(FAN_OUT_BYTES_PER_SEC));
        Ok(Subscription {
            engine: self.clone(),
            handle,
            key,
            generation,
            consumer_name: consumer.name,
            consumer_created_ms: consumer.created_ms,
            stream_name,
            account: scope.account.to_string(),
            shard,
            position,
            deadline_ms: t + SUBSCRIPTION_MS,
            watch,
            closing: self.inner.closing.subscribe(),
            last_event: Instant::now(),
            done: false,
            pace,
            catching_up: true,
        })
    }
}

/// Paces bytes to a rate: a bucket holding one second of it.
struct Pace {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Pace {
    fn new(rate: f64) -> Pace {
        Pace {
            rate,
            tokens: rate,
            last: Instant::now(),
        }
    }

    /// How long to wait before sending more.
    fn wait(&mut self) -> Duration {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.rate);
        self.last = now;
        if self.tokens > 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }

    fn charge(&mut self, bytes: usize) {
        self.tokens -= bytes as f64;
    }
}

/// A live SubscribeToShard push. Call [`Subscription::next_event`] until it returns `None`.
pub struct Subscription {
    engine: Engine,
    handle: StreamHandle,
    key: (String, u32),
    generation: u64,
    consumer_name: String,
    consumer_created_ms: i64,
    stream_name: String,
    account: String,
    shard: ShardMeta,
    position: Position,
    deadline_ms: i64,
    watch: tokio::sync::watch::Receiver<Position>,
    closing: tokio::sync::watch::Receiver<bool>,
    last_event: Instant,
    done: bool,
    pace: Option<Pace>,
    /// Whether the last read left records behind it: then the next is a full batch that may
    /// come from the disk (see `read_batch`).
    catching_up: bool,
}

impl Subscription {
    /// The next batch from the shard's position. A subscriber behind the tip reads full
    /// batches (2 MiB), from the disk once they are older than the page cache holds: those
    /// reads run on the blocking pool, so that an async worker (the server runs one per CPU
    /// less) never waits on the disk. At the tip a read is small and from memory, and stays
    /// here rather than pay a hand-off per pushed event.
    async fn read_batch(&mut self) -> Result<kinesin_log::ReadBatch> {
        let log = self.engine.inner.log.clone();
        let (queue, from) = (self.shard.queue, self.position);
        let read = move || log.read(queue, from, EVENT_MAX_RECORDS, EVENT_MAX_BYTES);
        if !self.catching_up {
            return read().map_err(log_error);
        }
        self.engine
            .blocking_read(move || read().map_err(log_error))
            .await
    }

    /// Why this subscription must stop now, if it must.
    fn superseded(&self) -> Option<Error> {
        let current = self
            .engine
            .inner
            .subscriptions
            .lock()
            .map
            .get(&self.key)
            .map(|s| s.generation);
        if current != Some(self.generation) {
            return Some(Error::ResourceInUse(format!(
                "Another active subscription exists for this consumer: {} on shard {}.",
                self.key.0,
                shard_id(self.shard.index)
            )));
        }
        let st = self.handle.read();
        let alive = st.meta.consumers.iter().any(|c| {
            c.name == self.consumer_name
                && c.created_ms == self.consumer_created_ms
                && c.status == "ACTIVE"
        });
        let stream_there = self
            .engine
            .inner
            .streams
            .read()
            .get(&st.meta.key())
            .is_some_and(|h| Arc::ptr_eq(h, &self.handle));
        if !alive || !stream_there {
            return Some(Error::ResourceNotFound(format!(
                "Consumer {} under stream {} under account {} not found.",
                self.consumer_name, self.stream_name, self.account
            )));
        }
        None
    }

    /// The next event to push, `Some(Err)` for the exception that ends the stream, or `None`
    /// when the subscription is over.
    pub async fn next_event(&mut self) -> Option<Result<SubscribeToShardEvent>> {
        loop {
            if self.done {
                return None;
            }
            let t = now(&self.engine.inner);
            if t >= self.deadline_ms || *self.closing.borrow() {
                self.done = true;
                return None;
            }
            if let Some(e) = self.superseded() {
                self.done = true;
                return Some(Err(e));
            }
            if let Some(pace) = self.pace.as_mut() {
                let wait = pace.wait();
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
            self.watch.borrow_and_update();
            let (shard, aad, children) = {
                let st = self.handle.read();
                let shard = st
                    .shard(self.shard.index)
                    .cloned()
                    .unwrap_or_else(|| self.shard.clone());
                let children = children_of(&st.meta, shard.index);
                let aad = record_aad(&st.meta, shard.index);
                (shard, aad, children)
            };
            self.shard = shard;
            let batch = match self.read_batch().await {
                Ok(b) => b,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            let log = &self.engine.inner.log;
            self.position = batch.next;
            // At the tip unless this batch shows otherwise (below).
            self.catching_up = false;
            if !batch.records.is_empty() {
                let bytes: usize = batch
                    .records
                    .iter()
                    .map(|r| r.data.len() + r.partition_key.len())
                    .sum();
                if let Some(p) = self.pace.as_mut() {
                    p.charge(bytes);
                }
                let tip = log.next_position(self.shard.queue).unwrap_or(batch.next);
                self.catching_up = batch.next < tip;
                let behind = if batch.next >= tip {
                    0
                } else {
                    batch
                        .records
                        .last()
                        .map(|r| (t - r.arrival_ms).max(0))
                        .unwrap_or(0)
                };
                let last = batch.records.last().map(|r| (r.position, r.arrival_ms));
                let records = match self.engine.to_records(&self.shard, &aad, batch.records) {
                    Ok(r) => r,
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                };
                self.last_event = Instant::now();
                return Some(Ok(SubscribeToShardEvent {
                    records,
                    continuation_sequence_number: last
                        .map(|(p, a)| record_seq(self.shard.index, self.shard.created_ms, p, a)),
                    millis_behind_latest: behind,
                    child_shards: None,
                }));
            }
            if let Some(c) = &self.shard.closed {
                if self.position >= c.end_position {
                    self.done = true;
                    return Some(Ok(SubscribeToShardEvent {
                        records: Vec::new(),
                        continuation_sequence_number: None,
                        millis_behind_latest: 0,
                        child_shards: Some(children),
                    }));
                }
            }
            if self.last_event.elapsed() >= KEEPALIVE {
                self.last_event = Instant::now();
                // A resume point for AFTER_SEQUENCE_NUMBER that names the current position.
                let resume = SeqNum {
                    shard_created_secs: (self.shard.created_ms / 1000) as u64,
                    counter: self.position,
                    arrival_secs: (t / 1000) as u64,
                    shard_index: self.shard.index,
                }
                .to_string();
                return Some(Ok(SubscribeToShardEvent {
                    records: Vec::new(),
                    continuation_sequence_number: Some(resume),
                    millis_behind_latest: 0,
                    child_shards: None,
                }));
            }
            let until_deadline = Duration::from_millis((self.deadline_ms - t).max(0) as u64);
            let nap = RECHECK.min(until_deadline);
            tokio::select! {
                changed = self.watch.changed() => {
                    if changed.is_err() {
                        // The queue was dropped (stream deleted): the next round reports it.
                        tokio::time::sleep(RECHECK).await;
                    }
                }
                _ = tokio::time::sleep(nap) => {}
                _ = self.closing.changed() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_arns_round_trip() {
        let sarn = stream_arn("us-east-1", "123456789012", "s1");
        let arn = consumer_arn(&sarn, "c1", 1_700_000_000_123);
        assert_eq!(
            arn,
            "arn:aws:kinesis:us-east-1:123456789012:stream/s1/consumer/c1:1700000000"
        );
        assert_eq!(
            parse_consumer_arn(&arn),
            Some((
                "us-east-1".into(),
                "123456789012".into(),
                "s1".into(),
                "c1".into(),
                1_700_000_000
            ))
        );
        assert_eq!(parse_consumer_arn(&sarn), None);
    }
}
