//! On-demand streams scale their shard count from observed write throughput.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, StreamMode, StreamModeDetails};
use common::Server;

#[test]
fn on_demand_stream_scales_up_under_sustained_load_and_keeps_lineage() {
    let server = Server::start(&[
        "--on-demand-scale-interval-ms",
        "300",
        "--on-demand-window-ms",
        "60000",
    ]);
    let client = server.client();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        client
            .create_stream()
            .stream_name("od")
            .stream_mode_details(
                StreamModeDetails::builder()
                    .stream_mode(StreamMode::OnDemand)
                    .build()
                    .expect("mode"),
            )
            .send()
            .await
            .expect("create");
        let open_shards = |client: aws_sdk_kinesis::Client| async move {
            let mut n = 0;
            let mut closed = 0;
            let mut token: Option<String> = None;
            loop {
                let mut req = client.list_shards();
                req = match &token {
                    Some(t) => req.next_token(t),
                    None => req.stream_name("od"),
                };
                let page = req.send().await.expect("list shards");
                for s in page.shards() {
                    match s
                        .sequence_number_range()
                        .and_then(|r| r.ending_sequence_number())
                    {
                        None => n += 1,
                        Some(_) => closed += 1,
                    }
                }
                token = page.next_token;
                if token.is_none() {
                    break;
                }
            }
            (n, closed)
        };
        assert_eq!(open_shards(client.clone()).await, (4, 0));
        // ~3 MiB/s for a few seconds: 2x peak needs at least 6 shards.
        let payload = vec![7u8; 10 * 1024];
        let deadline = Instant::now() + Duration::from_secs(8);
        let mut i = 0u64;
        let mut scaled = (4, 0);
        while Instant::now() < deadline {
            let tick = Instant::now();
            let entries: Vec<PutRecordsRequestEntry> = (0..100)
                .map(|_| {
                    i += 1;
                    PutRecordsRequestEntry::builder()
                        .partition_key(format!("k{i}"))
                        .data(Blob::new(payload.clone()))
                        .build()
                        .expect("entry")
                })
                .collect();
            let out = client
                .put_records()
                .stream_name("od")
                .set_records(Some(entries))
                .send()
                .await
                .expect("put records");
            assert_eq!(
                out.failed_record_count(),
                Some(0),
                "on-demand streams are not throttled per shard"
            );
            scaled = open_shards(client.clone()).await;
            if scaled.0 >= 6 {
                break;
            }
            // 1 MiB per request, about three requests a second.
            tokio::time::sleep(Duration::from_millis(330).saturating_sub(tick.elapsed())).await;
        }
        assert!(
            scaled.0 >= 6,
            "open shards after sustained load: {scaled:?}"
        );
        assert!(scaled.1 >= 1, "scaling closed parents: {scaled:?}");
    });
}
