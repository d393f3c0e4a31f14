//! Response bodies the origin builds on top of `common::http::Body`: a body streaming from a
//! storage read, multipart/byteranges assembled from several reads, and a wrapper that counts
//! the bytes actually sent into the metrics.

use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use common::http::{Body, BoxError};
use futures_util::{stream, StreamExt, TryStreamExt};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, SizeHint};
use prometheus::IntCounter;

use crate::storage::{ByteStream, Object};

/// A body that streams `stream`.
pub fn from_stream(stream: ByteStream) -> Body {
    StreamBody::new(
        stream
            .map_ok(Frame::data)
            .map_err(|e| Box::new(e) as BoxError),
    )
    .boxed_unsync()
}

/// A multipart/byteranges body for `ranges` of `obj`, and its exact length.
pub struct Multipart {
    pub boundary: String,
    pub len: u64,
    pub body: Body,
}

/// Builds a multipart/byteranges body (RFC 9110 section 14.6) for sorted, disjoint `ranges`.
pub fn multipart(
    obj: Arc<dyn Object>,
    ranges: &[Range<u64>],
    content_type: &str,
    boundary: String,
) -> Multipart {
    let total = obj.meta().len;
    let mut parts: Vec<(Bytes, Range<u64>)> = Vec::with_capacity(ranges.len());
    let mut len = 0u64;
    for (i, r) in ranges.iter().enumerate() {
        let head = format!(
            "{}--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: bytes {}-{}/{total}\r\n\r\n",
            if i == 0 { "" } else { "\r\n" },
            r.start,
            r.end - 1
        );
        len += head.len() as u64 + (r.end - r.start);
        parts.push((Bytes::from(head), r.clone()));
    }
    let tail = Bytes::from(format!("\r\n--{boundary}--\r\n"));
    len += tail.len() as u64;
    let pieces = stream::iter(parts)
        .flat_map(move |(head, r)| {
            let head: ByteStream = Box::pin(stream::once(async move { Ok(head) }));
            stream::iter([head, obj.read(r)]).flatten()
        })
        .chain(stream::once(async move { Ok(tail) }));
    Multipart {
        boundary,
        len,
        body: from_stream(Box::pin(pieces)),
    }
}

/// A fresh multipart boundary: random per response so that it is unpredictable from the content.
pub fn boundary() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    let a = h.finish();
    let mut h2 = RandomState::new().build_hasher();
    h2.write_u64(a);
    format!("origin-{a:016x}{:016x}", h2.finish())
}

/// Counts the data bytes that pass through into a counter.
pub struct Counting {
    inner: Body,
    counter: IntCounter,
}

impl Counting {
    pub fn wrap(inner: Body, counter: IntCounter) -> Body {
        Counting { inner, counter }.boxed_unsync()
    }
}

impl hyper::body::Body for Counting {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                this.counter.inc_by(data.len() as u64);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A body that sends each chunk once its delay, counted from now, has passed: an object
/// delivered as it is produced. Its length is unknown to the client (chunked transfer).
pub fn paced(chunks: Vec<(std::time::Duration, Bytes)>) -> Body {
    let start = tokio::time::Instant::now();
    StreamBody::new(stream::iter(chunks).then(move |(delay, bytes)| async move {
        tokio::time::sleep_until(start + delay).await;
        Ok::<_, BoxError>(Frame::data(bytes))
    }))
    .boxed_unsync()
}
