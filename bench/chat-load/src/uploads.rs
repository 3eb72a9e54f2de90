//! W10: attachments. Eight 25 MB uploads at once, with the server's
//! resident memory sampled all along (it streams: the target is growth
//! under 30 MB); then upload and download throughput on the disk backend
//! and, given an S3 endpoint (moto, MinIO…), on the S3 backend, each beside
//! the same bytes copied by the storage alone in the same run: tokio's
//! file I/O (write, fsync, rename; read) for the disk, `object_store` for
//! the bucket. The ratio is what the server adds.

use crate::Common;
use crate::process::Served;
use crate::report::write_json;
use crate::target::{SECRET, token_as};
use bytes::Bytes;
use futures::future::try_join_all;
use object_store::{ObjectStoreExt, PutPayload};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const FILE_BYTES: usize = 25 * 1024 * 1024;
const BUCKET: &str = "chat-bench";

#[derive(Serialize)]
struct Row {
    backend: &'static str,
    what: &'static str,
    files: usize,
    mib_per_s_server: f64,
    mib_per_s_storage_alone: f64,
    /// The server's rate over the storage's own.
    ratio: f64,
}

#[derive(Serialize)]
struct Memory {
    backend: &'static str,
    uploads: usize,
    rss_before_mib: f64,
    rss_peak_mib: f64,
    growth_mib: f64,
}

#[derive(Serialize)]
struct Results {
    memory: Vec<Memory>,
    throughput: Vec<Row>,
}

/// Text bytes (an allowed type), different along the file.
fn file() -> Bytes {
    (0..FILE_BYTES)
        .map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789 \n"[(i * 7 + i / 38) % 38])
        .collect::<Vec<u8>>()
        .into()
}

pub async fn uploads(
    common: &Common,
    concurrent: usize,
    s3_endpoint: Option<&str>,
) -> Result<(), String> {
    let bytes = file();
    let mut results = Results {
        memory: Vec::new(),
        throughput: Vec::new(),
    };
    let mut backends: Vec<(&'static str, Vec<(&str, String)>)> = vec![("disk", vec![])];
    if let Some(endpoint) = s3_endpoint {
        create_bucket(endpoint).await?;
        backends.push((
            "s3",
            vec![
                ("CHAT_ATTACHMENT_STORAGE", "s3".to_owned()),
                ("CHAT_S3_BUCKET", BUCKET.to_owned()),
                ("CHAT_S3_ENDPOINT", endpoint.to_owned()),
                ("CHAT_S3_ACCESS_KEY_ID", "bench".to_owned()),
                ("CHAT_S3_SECRET_ACCESS_KEY", "bench".to_owned()),
                ("CHAT_S3_ALLOW_HTTP", "true".to_owned()),
            ],
        ));
    }
    for (backend, settings) in backends {
        let mut base: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
        base.extend([
            ("CHAT_UPLOAD_RATE_PER_USER", "1000000"),
            ("CHAT_UPLOAD_BURST_PER_USER", "1000000"),
        ]);
        let env = common.server_env(&base);
        let served = Served::chat_server(&common.store(), SECRET, &env).await?;
        let server = Server::new(&served.base).await?;
        // Warm: the pools and the first statements.
        server.upload(bytes.clone()).await?;

        let before = served.sample().rss_kib;
        let peak = Arc::new(AtomicU64::new(before));
        let sampler = {
            let (peak, pid) = (peak.clone(), served.pid());
            tokio::spawn(async move {
                loop {
                    let rss = crate::process::Sample::of(pid).rss_kib;
                    peak.fetch_max(rss, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        };
        let started = Instant::now();
        let ids = try_join_all((0..concurrent).map(|_| server.upload(bytes.clone()))).await?;
        let upload_secs = started.elapsed().as_secs_f64();
        sampler.abort();
        let peak = peak.load(Ordering::Relaxed);
        let memory = Memory {
            backend,
            uploads: concurrent,
            rss_before_mib: before as f64 / 1024.0,
            rss_peak_mib: peak as f64 / 1024.0,
            growth_mib: peak.saturating_sub(before) as f64 / 1024.0,
        };
        println!(
            "{backend}: {concurrent} x 25 MiB at once: RSS {:.1} -> peak {:.1} MiB (+{:.1})",
            memory.rss_before_mib, memory.rss_peak_mib, memory.growth_mib
        );
        results.memory.push(memory);

        let started = Instant::now();
        let lengths = try_join_all(ids.iter().map(|id| server.download(id))).await?;
        let download_secs = started.elapsed().as_secs_f64();
        if lengths.iter().any(|&len| len != FILE_BYTES) {
            return Err(format!("{backend}: a download came back short"));
        }

        let (alone_up, alone_down) = match backend {
            "disk" => disk_alone(&bytes, concurrent).await?,
            _ => s3_alone(s3_endpoint.unwrap_or_default(), &bytes, concurrent).await?,
        };
        let mib = (concurrent * FILE_BYTES) as f64 / (1024.0 * 1024.0);
        for (what, ours, alone) in [
            ("upload", upload_secs, alone_up),
            ("download", download_secs, alone_down),
        ] {
            let row = Row {
                backend,
                what,
                files: concurrent,
                mib_per_s_server: mib / ours,
                mib_per_s_storage_alone: mib / alone,
                ratio: alone / ours,
            };
            println!(
                "{backend} {what}: {:.0} MiB/s through the server, {:.0} MiB/s storage alone (ratio {:.2})",
                row.mib_per_s_server, row.mib_per_s_storage_alone, row.ratio
            );
            results.throughput.push(row);
        }
    }
    write_json("uploads", common, &results)
}

/// chat-server, as one uploader sees it.
struct Server {
    http: reqwest::Client,
    base: String,
    token: String,
    room: String,
}

impl Server {
    async fn new(base: &str) -> Result<Self, String> {
        let http = reqwest::Client::new();
        let token = token_as("uploader", "user");
        let room: serde_json::Value = http
            .post(format!("{base}/api/chat/rooms"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"name": "files"}))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let room = room["id"].as_str().ok_or("no room id")?.to_owned();
        Ok(Self {
            http,
            base: base.to_owned(),
            token,
            room,
        })
    }

    async fn upload(&self, bytes: Bytes) -> Result<String, String> {
        let response = self
            .http
            .post(format!(
                "{}/api/chat/rooms/{}/attachments?name=big.txt",
                self.base, self.room
            ))
            .bearer_auth(&self.token)
            .body(bytes)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("upload: {}", response.status()));
        }
        let attachment: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
        Ok(attachment["id"]
            .as_str()
            .ok_or("no attachment id")?
            .to_owned())
    }

    /// Reads it all (following a redirect to the bucket); its length.
    async fn download(&self, id: &String) -> Result<usize, String> {
        let response = self
            .http
            .get(format!("{}/api/chat/attachments/{id}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("download: {}", response.status()));
        }
        let mut length = 0;
        let mut body = response.bytes_stream();
        while let Some(chunk) = futures::StreamExt::next(&mut body).await {
            length += chunk.map_err(|e| e.to_string())?.len();
        }
        Ok(length)
    }
}

/// The disk backend's own steps, alone: write in 64 KiB chunks, fsync,
/// rename; then read back. Seconds for each, `concurrent` files at once.
async fn disk_alone(bytes: &Bytes, concurrent: usize) -> Result<(f64, f64), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let started = Instant::now();
    try_join_all((0..concurrent).map(|n| {
        let (path, bytes) = (dir.path().join(n.to_string()), bytes.clone());
        async move {
            let part = path.with_extension("part");
            let mut file = tokio::fs::File::create(&part).await?;
            for chunk in bytes.chunks(64 * 1024) {
                file.write_all(chunk).await?;
            }
            file.sync_all().await?;
            tokio::fs::rename(&part, &path).await
        }
    }))
    .await
    .map_err(|e| e.to_string())?;
    let written = started.elapsed().as_secs_f64();
    let started = Instant::now();
    try_join_all((0..concurrent).map(|n| {
        let path = dir.path().join(n.to_string());
        async move {
            let mut file = tokio::fs::File::open(path).await?;
            let mut buffer = vec![0u8; 64 * 1024];
            let mut total = 0;
            loop {
                let read = file.read(&mut buffer).await?;
                if read == 0 {
                    return Ok::<_, std::io::Error>(total);
                }
                total += read;
            }
        }
    }))
    .await
    .map_err(|e| e.to_string())?;
    Ok((written, started.elapsed().as_secs_f64()))
}

/// The same bytes put and got by `object_store` alone.
async fn s3_alone(endpoint: &str, bytes: &Bytes, concurrent: usize) -> Result<(f64, f64), String> {
    let store = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(BUCKET)
        .with_region("us-east-1")
        .with_endpoint(endpoint)
        .with_access_key_id("bench")
        .with_secret_access_key("bench")
        .with_allow_http(true)
        .build()
        .map_err(|e| e.to_string())?;
    let path = |n: usize| object_store::path::Path::from(format!("alone/{n}"));
    let started = Instant::now();
    try_join_all((0..concurrent).map(|n| {
        let (store, bytes) = (&store, bytes.clone());
        async move { store.put(&path(n), PutPayload::from(bytes)).await }
    }))
    .await
    .map_err(|e| e.to_string())?;
    let written = started.elapsed().as_secs_f64();
    let started = Instant::now();
    try_join_all((0..concurrent).map(|n| {
        let store = &store;
        async move { store.get(&path(n)).await?.bytes().await }
    }))
    .await
    .map_err(|e| e.to_string())?;
    Ok((written, started.elapsed().as_secs_f64()))
}

async fn create_bucket(endpoint: &str) -> Result<(), String> {
    // moto and MinIO in their test modes take an unsigned bucket creation.
    reqwest::Client::new()
        .put(format!("{endpoint}/{BUCKET}"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}
