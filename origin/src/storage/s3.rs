//! The S3-compatible object-store backend (AWS S3, MinIO, Ceph RGW, moto...), through the
//! `object_store` crate. Opening is a HEAD; a read is a ranged GET conditioned on the ETag seen
//! at opening (`If-Match`), streamed as the store sends it, so an object replaced between the
//! two requests fails the response rather than mixing two versions.

use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, RetryConfig};

use super::{etag_from, BoxFuture, ByteStream, Object, ObjectMeta, Storage, StorageError};
use crate::config::S3Config;

/// Objects in one bucket (under an optional key prefix).
pub struct S3Storage {
    store: Arc<AmazonS3>,
    prefix: Vec<String>,
}

impl S3Storage {
    /// Builds the client; credentials and region fall back to the `AWS_*` environment.
    pub fn new(c: &S3Config) -> anyhow::Result<S3Storage> {
        if c.bucket.is_empty() {
            anyhow::bail!("storage.bucket must be set for the s3 backend");
        }
        let mut b = AmazonS3Builder::from_env().with_bucket_name(&c.bucket);
        if let Some(e) = &c.endpoint {
            b = b.with_endpoint(e).with_virtual_hosted_style_request(false);
        }
        if let Some(r) = &c.region {
            b = b.with_region(r);
        }
        if let Some(k) = &c.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(s) = &c.secret_access_key {
            b = b.with_secret_access_key(s);
        }
        // Fail fast when the store is down; allow long bodies (reads stream at the client's pace).
        let options = ClientOptions::new()
            .with_allow_http(c.allow_http)
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(300));
        let retry = RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(15),
            ..Default::default()
        };
        b = b.with_client_options(options).with_retry(retry);
        let store = b
            .build()
            .map_err(|e| anyhow::anyhow!("s3 storage for bucket `{}`: {e}", c.bucket))?;
        let prefix = c
            .prefix
            .split('/')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        Ok(S3Storage {
            store: Arc::new(store),
            prefix,
        })
    }

    fn path(&self, key: &str) -> Path {
        Path::from_iter(self.prefix.iter().map(String::as_str).chain(key.split('/')))
    }
}

impl Storage for S3Storage {
    fn open<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<dyn Object>>, StorageError>> {
        Box::pin(async move {
            let path = self.path(key);
            match self.store.head(&path).await {
                Ok(m) => {
                    let modified: std::time::SystemTime = m.last_modified.into();
                    let etag = match &m.e_tag {
                        Some(t) if t.starts_with('"') && t.ends_with('"') && t.len() >= 2 => {
                            t.clone()
                        }
                        Some(t) if !t.is_empty() && !t.contains('"') => format!("\"{t}\""),
                        _ => etag_from(m.size, modified),
                    };
                    let obj = S3Object {
                        store: self.store.clone(),
                        path,
                        store_etag: m.e_tag.clone(),
                        meta: ObjectMeta {
                            len: m.size,
                            modified,
                            etag,
                        },
                    };
                    Ok(Some(Arc::new(obj) as Arc<dyn Object>))
                }
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(StorageError::Remote {
                    key: key.to_string(),
                    message: e.to_string(),
                }),
            }
        })
    }

    fn name(&self) -> &'static str {
        "s3"
    }
}

struct S3Object {
    store: Arc<AmazonS3>,
    path: Path,
    store_etag: Option<String>,
    meta: ObjectMeta,
}

impl Object for S3Object {
    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }

    fn read(&self, range: Range<u64>) -> ByteStream {
        if range.start >= range.end {
            return Box::pin(futures_util::stream::empty());
        }
        let store = self.store.clone();
        let path = self.path.clone();
        let opts = GetOptions {
            range: Some(GetRange::Bounded(range)),
            if_match: self.store_etag.clone(),
            ..Default::default()
        };
        let fut = async move {
            let got = store.get_opts(&path, opts).await.map_err(io::Error::from)?;
            Ok::<_, io::Error>(got.into_stream().map_err(io::Error::from))
        };
        Box::pin(futures_util::stream::once(fut).try_flatten().boxed())
    }
}
