//! Where the origin's objects come from, behind one trait: the local filesystem (the embedded
//! default) and an S3-compatible object store. Both stream reads in bounded chunks, so a large
//! file is never held in memory whole.

pub mod local;
pub mod s3;

use std::future::Future;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::Stream;

pub use local::LocalStorage;
pub use s3::S3Storage;

/// A boxed future, for the object-safe storage trait.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A stream of an object's bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// What the HTTP layer needs to know about an object before reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Size in bytes.
    pub len: u64,
    /// Last modification time (Last-Modified, If-Modified-Since).
    pub modified: SystemTime,
    /// A strong entity tag including its quotes, e.g. `"5e1a-17f3c0a1b2c3d4e5"`.
    pub etag: String,
}

/// An opened object: its metadata, and reads of any byte range of it.
pub trait Object: Send + Sync {
    /// The object's metadata, as of opening it.
    fn meta(&self) -> &ObjectMeta;

    /// Streams the bytes in `range` (which lies within `0..len`). Lazy: nothing is read until
    /// the stream is polled. A stream that ends early (the object shrank) ends with an error.
    fn read(&self, range: Range<u64>) -> ByteStream;
}

/// Errors other than "not found".
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage I/O error on `{key}`: {source}")]
    Io { key: String, source: io::Error },
    #[error("object store error on `{key}`: {message}")]
    Remote { key: String, message: String },
}

/// A content store the origin serves from.
pub trait Storage: Send + Sync {
    /// Opens the object named `key` (a relative path with `/` separators, already checked by
    /// [`crate::path::to_key`]). `Ok(None)` when there is no such object, when it is a
    /// directory, or when it would resolve outside the store.
    fn open<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<dyn Object>>, StorageError>>;

    /// A short name for logs (`local`, `s3`).
    fn name(&self) -> &'static str;
}

/// Builds the configured backend.
pub fn from_config(config: &crate::Config) -> anyhow::Result<Arc<dyn Storage>> {
    Ok(match &config.storage {
        crate::config::StorageConfig::Local => {
            Arc::new(LocalStorage::new(&config.root)?.with_small_file_cache(
                std::time::Duration::from_millis(config.small_file_cache_ms),
                config.small_file_cache_bytes,
            ))
        }
        crate::config::StorageConfig::S3(s3) => Arc::new(S3Storage::new(s3)?),
    })
}

/// Formats a strong ETag from a size and a modification time (nanoseconds since the epoch).
pub fn etag_from(len: u64, modified: SystemTime) -> String {
    let nanos = modified
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("\"{len:x}-{nanos:x}\"")
}

/// An object held in memory (generated documents such as a live MPD).
pub struct MemoryObject {
    bytes: Bytes,
    meta: ObjectMeta,
}

impl MemoryObject {
    /// Wraps `bytes` with the given modification time and ETag.
    pub fn new(bytes: Bytes, modified: SystemTime, etag: String) -> MemoryObject {
        MemoryObject {
            meta: ObjectMeta {
                len: bytes.len() as u64,
                modified,
                etag,
            },
            bytes,
        }
    }
}

impl Object for MemoryObject {
    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }

    fn read(&self, range: Range<u64>) -> ByteStream {
        let end = range.end.min(self.bytes.len() as u64) as usize;
        let start = (range.start as usize).min(end);
        let slice = self.bytes.slice(start..end);
        Box::pin(futures_util::stream::once(async move { Ok(slice) }))
    }
}

/// Reads `range` of `obj` into memory (for small heads of files; callers bound the range).
pub async fn read_to_vec(obj: &dyn Object, range: Range<u64>) -> io::Result<Vec<u8>> {
    use futures_util::TryStreamExt;
    let mut out = Vec::with_capacity((range.end - range.start) as usize);
    let mut s = obj.read(range);
    while let Some(chunk) = s.try_next().await? {
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
