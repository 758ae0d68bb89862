//! Per-shard throughput limits as token buckets.
//!
//! Kinesis's provisioned shard limits: writes 1 MiB/s and 1,000 records/s; reads 2 MiB/s and 5
//! GetRecords calls/s. Each bucket holds at most one second of its rate (the burst) and refills
//! continuously. Writes need tokens for the whole record; reads are admitted while the byte
//! bucket is positive and then charged what they returned, so a 10 MiB response leaves a debt
//! that throttles the shard's next ~5 seconds of reads, as AWS documents.

/// The per-shard limits in force.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShardLimits {
    pub write_bytes_per_sec: f64,
    pub write_records_per_sec: f64,
    pub read_bytes_per_sec: f64,
    pub read_calls_per_sec: f64,
}

impl Default for ShardLimits {
    fn default() -> Self {
        ShardLimits {
            write_bytes_per_sec: 1024.0 * 1024.0,
            write_records_per_sec: 1000.0,
            read_bytes_per_sec: 2.0 * 1024.0 * 1024.0,
            read_calls_per_sec: 5.0,
        }
    }
}

#[derive(Debug, Clone)]
struct Bucket {
    rate: f64,
    tokens: f64,
    last_ms: i64,
}

impl Bucket {
    fn new(rate: f64, now_ms: i64) -> Self {
        Bucket {
            rate,
            tokens: rate,
            last_ms: now_ms,
        }
    }

    fn refill(&mut self, now_ms: i64) {
        let dt = (now_ms - self.last_ms).max(0) as f64 / 1000.0;
        self.tokens = (self.tokens + dt * self.rate).min(self.rate);
        self.last_ms = now_ms.max(self.last_ms);
    }
}

/// One shard's buckets.
#[derive(Debug, Clone)]
pub struct ShardBuckets {
    write_bytes: Bucket,
    write_records: Bucket,
    read_bytes: Bucket,
    read_calls: Bucket,
}

impl ShardBuckets {
    pub fn new(limits: &ShardLimits, now_ms: i64) -> Self {
        ShardBuckets {
            write_bytes: Bucket::new(limits.write_bytes_per_sec, now_ms),
            write_records: Bucket::new(limits.write_records_per_sec, now_ms),
            read_bytes: Bucket::new(limits.read_bytes_per_sec, now_ms),
            read_calls: Bucket::new(limits.read_calls_per_sec, now_ms),
        }
    }

    /// Takes tokens for one record of `bytes`, or refuses without taking any.
    pub fn try_write(&mut self, bytes: usize, now_ms: i64) -> bool {
        self.write_bytes.refill(now_ms);
        self.write_records.refill(now_ms);
        let b = bytes as f64;
        if self.write_records.tokens >= 1.0 && self.write_bytes.tokens >= b {
            self.write_records.tokens -= 1.0;
            self.write_bytes.tokens -= b;
            true
        } else {
            false
        }
    }

    /// Admits one GetRecords call, or refuses it.
    pub fn try_read_call(&mut self, now_ms: i64) -> bool {
        self.read_calls.refill(now_ms);
        self.read_bytes.refill(now_ms);
        if self.read_calls.tokens >= 1.0 && self.read_bytes.tokens > 0.0 {
            self.read_calls.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Charges what an admitted GetRecords returned (may leave the bucket in debt).
    pub fn charge_read(&mut self, bytes: usize) {
        self.read_bytes.tokens -= bytes as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_limited_per_second_in_records_and_bytes() {
        let l = ShardLimits::default();
        let mut b = ShardBuckets::new(&l, 0);
        let ok = (0..2000).filter(|_| b.try_write(10, 0)).count();
        assert_eq!(ok, 1000, "1000 records in the first second");
        // Half a second later, half a second of records.
        let ok = (0..2000).filter(|_| b.try_write(10, 500)).count();
        assert_eq!(ok, 500);
        let mut b = ShardBuckets::new(&l, 0);
        let ok = (0..10).filter(|_| b.try_write(300 * 1024, 0)).count();
        assert_eq!(ok, 3, "1 MiB / 300 KiB");
    }

    #[test]
    fn reads_allow_five_calls_and_go_into_debt() {
        let l = ShardLimits::default();
        let mut b = ShardBuckets::new(&l, 0);
        let ok = (0..10).filter(|_| b.try_read_call(0)).count();
        assert_eq!(ok, 5, "the 6th call in a second is throttled");
        let mut b = ShardBuckets::new(&l, 0);
        assert!(b.try_read_call(0));
        b.charge_read(10 << 20);
        // 10 MiB against 2 MiB/s: about 4 more seconds before the balance is positive again.
        assert!(!b.try_read_call(3_000));
        assert!(b.try_read_call(4_100));
    }
}
