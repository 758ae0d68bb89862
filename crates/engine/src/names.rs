//! Shard ids, ARNs and the Java-style dates that appear in Kinesis messages.

/// `shardId-` + 12-digit zero-padded index.
pub fn shard_id(index: u32) -> String {
    write_shard_id(index, &mut [0; SHARD_ID_LEN]).to_owned()
}

/// The length of every shard id we make.
pub const SHARD_ID_LEN: usize = 20;

/// [`shard_id`] written into `buf`, without allocating (every written record answers with one).
pub fn write_shard_id(index: u32, buf: &mut [u8; SHARD_ID_LEN]) -> &str {
    buf[..8].copy_from_slice(b"shardId-");
    let mut n = index;
    for slot in buf[8..].iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
    // Only ASCII was written.
    std::str::from_utf8(buf).unwrap_or_default()
}

/// Resolves a shard id as Kinesis does: by the number after the first `-` (or the whole string
/// if it has none), which must be 0..=2147483647.
pub fn parse_shard_id(s: &str) -> Option<u32> {
    let digits = match s.find('-') {
        Some(i) => &s[i + 1..],
        None => s,
    };
    if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: u64 = digits.parse().ok()?;
    if v > i32::MAX as u64 {
        return None;
    }
    Some(v as u32)
}

pub fn stream_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:kinesis:{region}:{account}:stream/{name}")
}

/// The parts of a stream ARN: (region, account, stream name). Consumer ARNs
/// (`.../stream/NAME/consumer/...`) are not stream ARNs.
pub fn parse_stream_arn(arn: &str) -> Option<(&str, &str, &str)> {
    let rest = arn.strip_prefix("arn:")?;
    let mut parts = rest.splitn(5, ':');
    let partition = parts.next()?;
    let service = parts.next()?;
    let region = parts.next()?;
    let account = parts.next()?;
    let resource = parts.next()?;
    if !partition.starts_with("aws") || service != "kinesis" {
        return None;
    }
    let name = resource.strip_prefix("stream/")?;
    if name.is_empty() || name.contains('/') {
        return None;
    }
    Some((region, account, name))
}

/// `Thu Jan 22 01:22:02 UTC 2015`, as Java's `Date.toString()` prints in UTC.
pub fn java_date(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let wd = DAYS[days.rem_euclid(7) as usize];
    format!(
        "{wd} {} {d:02} {:02}:{:02}:{:02} UTC {y}",
        MONTHS[(m - 1) as usize],
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_ids() {
        assert_eq!(shard_id(7), "shardId-000000000007");
        assert_eq!(parse_shard_id("shardId-000000000007"), Some(7));
        assert_eq!(parse_shard_id("shard-7"), Some(7));
        assert_eq!(parse_shard_id("7"), Some(7));
        assert_eq!(parse_shard_id("shardId-2147483648"), None);
        assert_eq!(parse_shard_id("shardId-x"), None);
        assert_eq!(parse_shard_id("shardId-"), None);
    }

    #[test]
    fn arns() {
        let arn = stream_arn("us-east-1", "000000000000", "s1");
        assert_eq!(
            parse_stream_arn(&arn),
            Some(("us-east-1", "000000000000", "s1"))
        );
        assert_eq!(
            parse_stream_arn("arn:aws:kinesis:us-east-1:000000000000:stream/s1/consumer/c:1"),
            None
        );
    }

    #[test]
    fn java_dates() {
        assert_eq!(java_date(1421889722000), "Thu Jan 22 01:22:02 UTC 2015");
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
    }
}
