//! Encryption at rest: records written while a stream is encrypted are stored sealed with a
//! keyring key, read back transparently, and never appear in plaintext on disk.

mod common;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{EncryptionType, ShardIteratorType};
use common::Server;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn read_all(
    client: &aws_sdk_kinesis::Client,
) -> Result<Vec<(String, Option<EncryptionType>)>, String> {
    let it = client
        .get_shard_iterator()
        .stream_name("e")
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .map_err(|e| format!("{:?}", e.into_service_error()))?
        .shard_iterator
        .unwrap_or_default();
    let r = client
        .get_records()
        .shard_iterator(it)
        .send()
        .await
        .map_err(|e| {
            let e = e.into_service_error();
            e.meta().code().unwrap_or_default().to_string()
        })?;
    Ok(r.records()
        .iter()
        .map(|r| {
            (
                String::from_utf8_lossy(r.data().as_ref()).into_owned(),
                r.encryption_type().cloned(),
            )
        })
        .collect())
}

/// Whether any file under `dir` contains `needle`.
fn on_disk(dir: &std::path::Path, needle: &[u8]) -> bool {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    return true;
                }
            }
        }
    }
    false
}

#[test]
fn encrypted_records_round_trip_and_never_touch_disk_in_plaintext() {
    let mut server = Server::start(&["--durability", "fsync"]);
    let client = server.client();
    let rt = rt();
    rt.block_on(async {
        client
            .create_stream()
            .stream_name("e")
            .shard_count(1)
            .send()
            .await
            .expect("create");
        let put = |data: &'static str| {
            let client = client.clone();
            async move {
                client
                    .put_record()
                    .stream_name("e")
                    .partition_key("k")
                    .data(Blob::new(data))
                    .send()
                    .await
                    .expect("put")
                    .encryption_type()
                    .cloned()
            }
        };
        assert_eq!(put("PLAIN-BEFORE-7d1e").await, None);
        let err = client
            .start_stream_encryption()
            .stream_name("e")
            .encryption_type(EncryptionType::Kms)
            .key_id("alias/does-not-exist")
            .send()
            .await
            .expect_err("unknown key");
        assert_eq!(
            err.into_service_error().meta().code(),
            Some("KMSNotFoundException")
        );
        client
            .start_stream_encryption()
            .stream_name("e")
            .encryption_type(EncryptionType::Kms)
            .key_id("alias/aws/kinesis")
            .send()
            .await
            .expect("start encryption");
        assert_eq!(put("SECRET-MARKER-9f3a").await, Some(EncryptionType::Kms));
        let summary = client
            .describe_stream_summary()
            .stream_name("e")
            .send()
            .await
            .expect("summary")
            .stream_description_summary
            .expect("summary");
        assert_eq!(summary.encryption_type, Some(EncryptionType::Kms));
        assert_eq!(summary.key_id.as_deref(), Some("alias/aws/kinesis"));
        client
            .stop_stream_encryption()
            .stream_name("e")
            .encryption_type(EncryptionType::Kms)
            .key_id("alias/aws/kinesis")
            .send()
            .await
            .expect("stop encryption");
        assert_eq!(put("PLAIN-AFTER-c0de").await, None);
        let expected = vec![
            ("PLAIN-BEFORE-7d1e".to_string(), None),
            ("SECRET-MARKER-9f3a".to_string(), Some(EncryptionType::Kms)),
            ("PLAIN-AFTER-c0de".to_string(), None),
        ];
        assert_eq!(read_all(&client).await.expect("read"), expected);
    });
    server.stop();
    assert!(
        on_disk(server.data_dir(), b"PLAIN-BEFORE-7d1e"),
        "the disk scan finds plaintext"
    );
    assert!(
        !on_disk(server.data_dir(), b"SECRET-MARKER-9f3a"),
        "encrypted data is not on disk in plaintext"
    );
    server.spawn();
    let client = server.client();
    let got = rt.block_on(read_all(&client)).expect("read after restart");
    assert_eq!(got.len(), 3);
    assert_eq!(got[1].0, "SECRET-MARKER-9f3a");
    // A disabled key stops reads of what it protects.
    server.stop();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_kinesin"))
        .args(["keys", "disable", "alias/aws/kinesis", "--data-dir"])
        .arg(server.data_dir())
        .status()
        .expect("kinesin keys");
    assert!(status.success());
    server.spawn();
    let client = server.client();
    let err = rt.block_on(read_all(&client)).expect_err("key disabled");
    assert_eq!(err, "KMSDisabledException");
}
