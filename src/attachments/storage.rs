//! Where attachments' bytes live, behind one small interface: a directory
//! on the local disk (the default, like SQLite: nothing to install), or an
//! S3-compatible bucket (production, and any cluster of instances).
//!
//! Both stream: a blob is written as its bytes come and read as they go,
//! never held whole in memory, and appears under its key only once
//! complete (the disk renames a finished file into place; S3 makes a PUT's
//! object visible when its last byte is in), so a failed or cut-off upload
//! leaves nothing under the key.

use async_trait::async_trait;
use axum::http;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::signer::{SignedUrlOptions, Signer};
use object_store::{ObjectStore, ObjectStoreExt};
use std::io;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

/// A stream of a blob's bytes, or an upload's.
pub type ByteStream = BoxStream<'static, io::Result<Bytes>>;

/// What a blob is sent with when it is downloaded straight from the
/// store (S3 keeps them with the object).
#[derive(Debug, Clone)]
pub struct BlobHeaders {
    pub content_type: String,
    pub content_disposition: String,
}

/// Part or all of a blob, being read.
pub struct BlobRead {
    /// The whole blob's size.
    pub size: u64,
    /// The bytes asked for.
    pub range: Range<u64>,
    pub body: ByteStream,
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("no such blob")]
    NotFound,
    /// The upload's own stream failed (it was cut off, or went past the
    /// limit): the caller knows which from its stream.
    #[error("the upload's stream failed: {0}")]
    Upload(io::Error),
    #[error("the blob store failed: {0}")]
    Store(String),
}

impl From<object_store::Error> for BlobError {
    fn from(error: object_store::Error) -> Self {
        match error {
            object_store::Error::NotFound { .. } => Self::NotFound,
            error => Self::Store(error.to_string()),
        }
    }
}

#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Streams `body` (`len` bytes) to `key`, which holds it once whole.
    async fn put(
        &self,
        key: &str,
        body: ByteStream,
        len: u64,
        headers: &BlobHeaders,
    ) -> Result<(), BlobError>;

    /// Reads `range` of `key` (all of it when `None`); a range past the
    /// end is clamped to it.
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<BlobRead, BlobError>;

    /// Copies `from` to `to` (a direct upload's staging object to its
    /// place): `to` then holds what `from` held at that moment.
    async fn copy(&self, from: &str, to: &str) -> Result<(), BlobError>;

    /// Deletes `key`; one that is not there is deleted already.
    async fn delete(&self, key: &str) -> Result<(), BlobError>;

    /// A URL a client may GET `key` from directly for `expires`, served
    /// with `headers`; none for a store that serves through us (the disk).
    async fn download_url(
        &self,
        key: &str,
        expires: Duration,
        headers: &BlobHeaders,
    ) -> Result<Option<url::Url>, BlobError>;

    /// A URL a client may PUT `key` at for `expires`; none for a store
    /// that takes uploads through us (the disk).
    async fn upload_url(&self, key: &str, expires: Duration)
    -> Result<Option<url::Url>, BlobError>;

    /// The number of blobs stored, for tests and operators' checks.
    async fn count(&self) -> Result<usize, BlobError>;
}

/// Blobs as files under one directory, each written beside its place
/// (`<key>.part`) and renamed into it once complete.
pub struct Disk {
    root: PathBuf,
}

impl Disk {
    pub fn new(root: PathBuf) -> io::Result<Self> {
        std::fs::create_dir_all(&root)?;
        Ok(Self { root })
    }

    /// Keys are ours (an attachment's id and a suffix), never a client's
    /// text; still, none may name a place outside `root`.
    fn path(&self, key: &str) -> PathBuf {
        let safe: String = key
            .chars()
            .map(|c| match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' => c,
                '.' => '.',
                _ => '_',
            })
            .collect();
        self.root.join(safe.trim_start_matches('.'))
    }

    fn part(&self, key: &str) -> PathBuf {
        self.path(&format!("{key}.part"))
    }
}

#[async_trait]
impl BlobStore for Disk {
    async fn put(
        &self,
        key: &str,
        mut body: ByteStream,
        _len: u64,
        _headers: &BlobHeaders,
    ) -> Result<(), BlobError> {
        let part = self.part(key);
        let store = |e: io::Error| BlobError::Store(e.to_string());
        let mut file = tokio::fs::File::create(&part).await.map_err(store)?;
        let written = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(BlobError::Upload)?;
                file.write_all(&chunk).await.map_err(store)?;
            }
            file.sync_all().await.map_err(store)
        }
        .await;
        drop(file);
        match written {
            Ok(()) => tokio::fs::rename(&part, self.path(key))
                .await
                .map_err(store),
            Err(error) => {
                let _ = tokio::fs::remove_file(&part).await;
                Err(error)
            }
        }
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<BlobRead, BlobError> {
        let mut file = match tokio::fs::File::open(self.path(key)).await {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(BlobError::NotFound),
            Err(e) => return Err(BlobError::Store(e.to_string())),
        };
        let store = |e: io::Error| BlobError::Store(e.to_string());
        let size = file.metadata().await.map_err(store)?.len();
        let range = clamp(range, size);
        file.seek(io::SeekFrom::Start(range.start))
            .await
            .map_err(store)?;
        let limited = tokio::io::AsyncReadExt::take(file, range.end - range.start);
        let body = tokio_util::io::ReaderStream::with_capacity(limited, 64 * 1024).boxed();
        Ok(BlobRead { size, range, body })
    }

    async fn copy(&self, from: &str, to: &str) -> Result<(), BlobError> {
        match tokio::fs::copy(self.path(from), self.path(to)).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(BlobError::NotFound),
            Err(e) => Err(BlobError::Store(e.to_string())),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        // A part left by a process killed mid-upload goes with its blob.
        for path in [self.path(key), self.part(key)] {
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(BlobError::Store(e.to_string())),
            }
        }
        Ok(())
    }

    async fn download_url(
        &self,
        _key: &str,
        _expires: Duration,
        _headers: &BlobHeaders,
    ) -> Result<Option<url::Url>, BlobError> {
        Ok(None)
    }

    async fn upload_url(
        &self,
        _key: &str,
        _expires: Duration,
    ) -> Result<Option<url::Url>, BlobError> {
        Ok(None)
    }

    async fn count(&self) -> Result<usize, BlobError> {
        let mut entries = tokio::fs::read_dir(&self.root)
            .await
            .map_err(|e| BlobError::Store(e.to_string()))?;
        let mut count = 0;
        while let Some(_entry) = entries
            .next_entry()
            .await
            .map_err(|e| BlobError::Store(e.to_string()))?
        {
            count += 1;
        }
        Ok(count)
    }
}

/// How to reach an S3-compatible bucket.
#[derive(Debug, Clone)]
pub struct S3Options {
    pub bucket: String,
    /// For a store other than AWS (MinIO, Ceph, R2…); AWS's otherwise.
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Plain HTTP to the endpoint (a store on the same host or network).
    pub allow_http: bool,
}

/// Blobs as objects of an S3-compatible bucket. Uploads stream through a
/// presigned PUT of the declared length (one request, no part buffered
/// in memory; S3 keeps nothing of a PUT that did not finish); downloads
/// are redirects to presigned GETs.
pub struct S3 {
    store: Arc<object_store::aws::AmazonS3>,
    http: reqwest::Client,
}

/// How long a presigned PUT of ours stays valid: it is used at once.
const PUT_URL_LIFETIME: Duration = Duration::from_secs(15 * 60);

impl S3 {
    pub fn new(options: &S3Options) -> Result<Self, BlobError> {
        let mut builder = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(&options.bucket)
            .with_region(&options.region)
            .with_access_key_id(&options.access_key_id)
            .with_secret_access_key(&options.secret_access_key)
            .with_allow_http(options.allow_http);
        if let Some(endpoint) = &options.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| BlobError::Store(e.to_string()))?;
        Ok(Self {
            store: Arc::new(builder.build()?),
            http,
        })
    }
}

#[async_trait]
impl BlobStore for S3 {
    async fn put(
        &self,
        key: &str,
        body: ByteStream,
        len: u64,
        headers: &BlobHeaders,
    ) -> Result<(), BlobError> {
        let url = self
            .store
            .signed_url(http::Method::PUT, &ObjectPath::from(key), PUT_URL_LIFETIME)
            .await?;
        // The stream's own failure (a cut-off upload, the limit) ends the
        // request early: S3 stores nothing of it.
        let (failed_tx, mut failed_rx) = tokio::sync::oneshot::channel::<io::Error>();
        let mut failed_tx = Some(failed_tx);
        let body = body.map_err(move |error| {
            let kind = error.kind();
            let text = error.to_string();
            if let Some(tx) = failed_tx.take() {
                let _ = tx.send(error);
            }
            io::Error::new(kind, text)
        });
        let sent = self
            .http
            .put(url)
            .header(reqwest::header::CONTENT_LENGTH, len)
            .header(reqwest::header::CONTENT_TYPE, &headers.content_type)
            .header(
                reqwest::header::CONTENT_DISPOSITION,
                &headers.content_disposition,
            )
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await;
        if let Ok(error) = failed_rx.try_recv() {
            return Err(BlobError::Upload(error));
        }
        // Without the URL: a presigned one is a credential while it lasts.
        let response = sent.map_err(|e| BlobError::Store(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(BlobError::Store(format!(
                "the bucket answered a PUT with {}",
                response.status()
            )));
        }
        Ok(())
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<BlobRead, BlobError> {
        let path = ObjectPath::from(key);
        let options = object_store::GetOptions {
            range: range.clone().map(object_store::GetRange::Bounded),
            ..Default::default()
        };
        let result = self.store.get_opts(&path, options).await?;
        let size = result.meta.size;
        let range = result.range.clone();
        let body = result
            .into_stream()
            .map_err(|e| io::Error::other(e.to_string()))
            .boxed();
        Ok(BlobRead { size, range, body })
    }

    async fn copy(&self, from: &str, to: &str) -> Result<(), BlobError> {
        // Server-side: the bytes do not pass through us.
        Ok(self
            .store
            .copy(&ObjectPath::from(from), &ObjectPath::from(to))
            .await?)
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        match self.store.delete(&ObjectPath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    async fn download_url(
        &self,
        key: &str,
        expires: Duration,
        headers: &BlobHeaders,
    ) -> Result<Option<url::Url>, BlobError> {
        // What the browser is told comes from the signed URL, whatever
        // the object was stored with.
        let options = SignedUrlOptions::default().with_query([
            ("response-content-type", headers.content_type.as_str()),
            (
                "response-content-disposition",
                headers.content_disposition.as_str(),
            ),
        ]);
        let url = self
            .store
            .signed_url_opts(http::Method::GET, &ObjectPath::from(key), expires, &options)
            .await?;
        Ok(Some(url))
    }

    async fn upload_url(
        &self,
        key: &str,
        expires: Duration,
    ) -> Result<Option<url::Url>, BlobError> {
        // The length cannot be signed (object_store keeps Content-Length
        // to itself): the completion checks the size instead.
        let url = self
            .store
            .signed_url(http::Method::PUT, &ObjectPath::from(key), expires)
            .await?;
        Ok(Some(url))
    }

    async fn count(&self) -> Result<usize, BlobError> {
        let listed: Vec<_> = self.store.list(None).try_collect().await?;
        Ok(listed.len())
    }
}

/// `range` within a blob of `size` bytes.
fn clamp(range: Option<Range<u64>>, size: u64) -> Range<u64> {
    match range {
        None => 0..size,
        Some(range) => range.start.min(size)..range.end.min(size),
    }
}
