//! The local filesystem backend. Opening resolves where the opened file really is (symlinks
//! followed) and refuses anything outside the (canonical) root, so a symbolic link cannot leak a
//! file from elsewhere. Small files are read whole when opened; larger ones are read with
//! positional reads (`pread`) on a blocking thread, one bounded chunk at a time.
//!
//! The ETag is built from the file's size and modification time in nanoseconds: stable across
//! restarts (and across machines that copy files with their times), cheap (one `fstat`), and
//! strong in practice because writers that change a file also change its mtime.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::future::Future as _;
use std::io;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio::task::JoinHandle;

use super::{etag_from, BoxFuture, ByteStream, Object, ObjectMeta, Storage, StorageError};

/// Bytes read per blocking call.
const CHUNK: u64 = 256 * 1024;
/// Files up to this size are read whole when opened.
const SMALL: u64 = 64 * 1024;

/// Files under a root directory.
pub struct LocalStorage {
    root: PathBuf,
    cache: Option<SmallCache>,
}

/// Small files kept in memory for a short validity, like nginx's `open_file_cache` (which keeps
/// descriptors and metadata): within the validity a hot MPD costs no system call and no thread
/// hop; after it, the next request opens the file again. Bounded in bytes; entries are dropped
/// oldest-checked first when full.
struct SmallCache {
    validity: Duration,
    max_bytes: u64,
    entries: Mutex<SmallEntries>,
}

#[derive(Default)]
struct SmallEntries {
    /// Key -> (object, when it was checked, its place in `order`).
    map: HashMap<String, (Arc<LocalObject>, Instant, u64)>,
    /// Keys by check order (oldest first), so eviction is O(log n).
    order: BTreeMap<u64, String>,
    next: u64,
    bytes: u64,
}

impl SmallEntries {
    fn size(key: &str, obj: &LocalObject) -> u64 {
        obj.small.as_ref().map_or(0, |b| b.len() as u64) + key.len() as u64
    }

    fn remove(&mut self, key: &str) {
        if let Some((old, _, seq)) = self.map.remove(key) {
            self.order.remove(&seq);
            self.bytes -= Self::size(key, &old);
        }
    }

    fn evict_oldest(&mut self) -> bool {
        match self.order.pop_first() {
            Some((_, key)) => {
                if let Some((old, _, _)) = self.map.remove(&key) {
                    self.bytes -= Self::size(&key, &old);
                }
                true
            }
            None => false,
        }
    }
}

impl LocalStorage {
    /// Serves files under `root`, which must exist. Every request opens the file.
    pub fn new(root: &Path) -> anyhow::Result<LocalStorage> {
        let root = std::fs::canonicalize(root)
            .with_context(|| format!("content root {} does not exist", root.display()))?;
        if !root.is_dir() {
            anyhow::bail!("content root {} is not a directory", root.display());
        }
        Ok(LocalStorage { root, cache: None })
    }

    /// Keeps files of at most 64 KiB in memory for `validity` after each check, up to
    /// `max_bytes` in total. A file changed on disk is seen at most `validity` later.
    pub fn with_small_file_cache(mut self, validity: Duration, max_bytes: u64) -> LocalStorage {
        self.cache = (!validity.is_zero() && max_bytes > 0).then(|| SmallCache {
            validity,
            max_bytes,
            entries: Mutex::new(SmallEntries::default()),
        });
        self
    }

    /// The canonical root.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Storage for LocalStorage {
    fn open<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<dyn Object>>, StorageError>> {
        if let Some(cache) = &self.cache {
            let entries = lock(&cache.entries);
            if let Some((obj, checked, _)) = entries.map.get(key) {
                if checked.elapsed() < cache.validity {
                    let obj: Arc<dyn Object> = obj.clone();
                    return Box::pin(async move { Ok(Some(obj)) });
                }
            }
        }
        let root = self.root.clone();
        let key = key.to_string();
        Box::pin(async move {
            let k = key.clone();
            let opened = tokio::task::spawn_blocking(move || open_blocking(&root, &k))
                .await
                .map_err(|e| StorageError::Io {
                    key: key.clone(),
                    source: io::Error::other(e),
                })?;
            match opened {
                Ok(Some(obj)) => {
                    let obj = Arc::new(obj);
                    if let Some(cache) = &self.cache {
                        cache.insert(&key, &obj);
                    }
                    Ok(Some(obj as Arc<dyn Object>))
                }
                Ok(None) => {
                    if let Some(cache) = &self.cache {
                        cache.remove(&key);
                    }
                    Ok(None)
                }
                Err(source) => Err(StorageError::Io { key, source }),
            }
        })
    }

    fn name(&self) -> &'static str {
        "local"
    }
}

impl SmallCache {
    fn insert(&self, key: &str, obj: &Arc<LocalObject>) {
        let Some(small) = &obj.small else {
            self.remove(key);
            return;
        };
        let size = small.len() as u64 + key.len() as u64;
        let mut e = lock(&self.entries);
        e.remove(key);
        while e.bytes + size > self.max_bytes && e.evict_oldest() {}
        if size <= self.max_bytes {
            let seq = e.next;
            e.next += 1;
            e.bytes += size;
            e.order.insert(seq, key.to_string());
            e.map
                .insert(key.to_string(), (obj.clone(), Instant::now(), seq));
        }
    }

    fn remove(&self, key: &str) {
        lock(&self.entries).remove(key);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn open_blocking(root: &Path, key: &str) -> io::Result<Option<LocalObject>> {
    let full = root.join(key);
    // O_NONBLOCK: opening a FIFO planted in the root must not block a thread forever (reads of
    // regular files are unaffected by the flag).
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&full)
    {
        Ok(f) => f,
        Err(e) if is_missing(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    // Where the open file really is, symlinks resolved: one readlink of /proc/self/fd/N
    // (canonicalizing the path instead when /proc is not mounted).
    let real = match std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) {
        Ok(p) => p,
        Err(_) => match std::fs::canonicalize(&full) {
            Ok(p) => p,
            Err(e) if is_missing(&e) => return Ok(None),
            Err(e) => return Err(e),
        },
    };
    if !real.starts_with(root) {
        tracing::warn!(key, resolved = %real.display(), "refusing a path that resolves outside the content root");
        return Ok(None);
    }
    let md = file.metadata()?;
    if !md.is_file() {
        return Ok(None);
    }
    let modified = md.modified()?;
    let meta = ObjectMeta {
        len: md.len(),
        modified,
        etag: etag_from(md.len(), modified),
    };
    // Small files (MPDs, init segments) are read right away, saving a second blocking hop.
    let small = if md.len() <= SMALL {
        match read_exact_at(&file, 0, md.len() as usize) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => None,
            Err(e) => return Err(e),
        }
    } else {
        None
    };
    Ok(Some(LocalObject {
        file: Arc::new(file),
        meta,
        small,
    }))
}

fn is_missing(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory | io::ErrorKind::PermissionDenied
    ) || e.raw_os_error() == Some(40) // ELOOP: a symlink loop is simply not an object
        || e.raw_os_error() == Some(36) // ENAMETOOLONG
}

/// An open file.
pub struct LocalObject {
    file: Arc<File>,
    meta: ObjectMeta,
    /// The whole content of a small file, read at opening.
    small: Option<Bytes>,
}

impl Object for LocalObject {
    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }

    fn read(&self, range: Range<u64>) -> ByteStream {
        if let Some(bytes) = &self.small {
            let end = range.end.min(bytes.len() as u64) as usize;
            let slice = bytes.slice((range.start as usize).min(end)..end);
            return Box::pin(futures_util::stream::once(async move { Ok(slice) }));
        }
        Box::pin(FileStream {
            file: self.file.clone(),
            pos: range.start,
            end: range.end.min(self.meta.len),
            pending: None,
        })
    }
}

/// Reads `pos..end` of a file in chunks of at most [`CHUNK`] bytes, one blocking task per chunk,
/// never more than one chunk in flight (the consumer's pace bounds memory).
struct FileStream {
    file: Arc<File>,
    pos: u64,
    end: u64,
    pending: Option<JoinHandle<io::Result<Bytes>>>,
}

impl Stream for FileStream {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.pending.is_none() {
            if this.pos >= this.end {
                return Poll::Ready(None);
            }
            let file = this.file.clone();
            let pos = this.pos;
            let want = (this.end - pos).min(CHUNK) as usize;
            this.pending = Some(tokio::task::spawn_blocking(move || {
                read_exact_at(&file, pos, want)
            }));
        }
        let Some(handle) = this.pending.as_mut() else {
            return Poll::Ready(None);
        };
        let result = match Pin::new(handle).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(r) => r,
        };
        this.pending = None;
        match result {
            Ok(Ok(bytes)) => {
                this.pos += bytes.len() as u64;
                Poll::Ready(Some(Ok(bytes)))
            }
            Ok(Err(e)) => {
                this.pos = this.end;
                Poll::Ready(Some(Err(e)))
            }
            Err(join) => {
                this.pos = this.end;
                Poll::Ready(Some(Err(io::Error::other(join))))
            }
        }
    }
}

fn read_exact_at(file: &File, pos: u64, want: usize) -> io::Result<Bytes> {
    let mut buf = BytesMut::zeroed(want);
    let mut filled = 0;
    while filled < want {
        match file.read_at(&mut buf[filled..], pos + filled as u64) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shrank while being served",
                ))
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::TryStreamExt;

    fn tempdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "origin-local-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[tokio::test]
    async fn reads_ranges_in_chunks() {
        let dir = tempdir("ranges");
        let data: Vec<u8> = (0..(CHUNK as usize * 2 + 1000))
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(dir.join("big.bin"), &data).unwrap();
        let store = LocalStorage::new(&dir).unwrap();
        let obj = store.open("big.bin").await.unwrap().unwrap();
        assert_eq!(obj.meta().len, data.len() as u64);
        let chunks: Vec<Bytes> = obj.read(0..data.len() as u64).try_collect().await.unwrap();
        assert_eq!(chunks.len(), 3, "three chunks of at most CHUNK bytes");
        assert_eq!(chunks.concat(), data);
        let mid: Vec<Bytes> = obj.read(10..20).try_collect().await.unwrap();
        assert_eq!(mid.concat(), &data[10..20]);
        assert!(store.open("missing").await.unwrap().is_none());
        std::fs::create_dir(dir.join("sub")).unwrap();
        assert!(store.open("sub").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn etag_is_stable_across_opens_and_changes_with_content() {
        let dir = tempdir("etag");
        std::fs::write(dir.join("a"), b"one").unwrap();
        let store = LocalStorage::new(&dir).unwrap();
        let e1 = store.open("a").await.unwrap().unwrap().meta().etag.clone();
        let store2 = LocalStorage::new(&dir).unwrap();
        let e2 = store2.open("a").await.unwrap().unwrap().meta().etag.clone();
        assert_eq!(e1, e2);
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(dir.join("a"), b"two!").unwrap();
        let e3 = store.open("a").await.unwrap().unwrap().meta().etag.clone();
        assert_ne!(e1, e3);
        assert!(e1.starts_with('"') && e1.ends_with('"'));
    }

    #[tokio::test]
    async fn small_file_cache_serves_for_its_validity_then_rechecks() {
        let dir = tempdir("cache");
        std::fs::write(dir.join("m.mpd"), b"one").unwrap();
        std::fs::write(dir.join("big"), vec![7u8; SMALL as usize + 1]).unwrap();
        let store = LocalStorage::new(&dir)
            .unwrap()
            .with_small_file_cache(Duration::from_millis(300), 1 << 20);
        let read = |o: Arc<dyn Object>| async move {
            let len = o.meta().len;
            crate::storage::read_to_vec(o.as_ref(), 0..len)
                .await
                .unwrap()
        };
        assert_eq!(
            read(store.open("m.mpd").await.unwrap().unwrap()).await,
            b"one"
        );
        std::fs::write(dir.join("m.mpd"), b"two!").unwrap();
        assert_eq!(
            read(store.open("m.mpd").await.unwrap().unwrap()).await,
            b"one",
            "within the validity"
        );
        std::thread::sleep(Duration::from_millis(350));
        assert_eq!(
            read(store.open("m.mpd").await.unwrap().unwrap()).await,
            b"two!",
            "after the validity"
        );
        std::fs::remove_file(dir.join("m.mpd")).unwrap();
        std::thread::sleep(Duration::from_millis(350));
        assert!(store.open("m.mpd").await.unwrap().is_none());
        // Large files are never cached.
        store.open("big").await.unwrap().unwrap();
        assert!(!lock(&store.cache.as_ref().unwrap().entries)
            .map
            .contains_key("big"));
        // The byte bound holds.
        let tiny = LocalStorage::new(&dir)
            .unwrap()
            .with_small_file_cache(Duration::from_secs(60), 40);
        for name in ["a1", "a2", "a3"] {
            std::fs::write(dir.join(name), [1u8; 16]).unwrap();
            tiny.open(name).await.unwrap().unwrap();
        }
        let e = lock(&tiny.cache.as_ref().unwrap().entries);
        assert!(
            e.bytes <= 40 && e.map.len() == 2,
            "{} bytes, {} entries",
            e.bytes,
            e.map.len()
        );
        assert!(
            !e.map.contains_key("a1"),
            "the oldest-checked file went first"
        );
        assert_eq!(
            e.order.len(),
            e.map.len(),
            "the eviction order tracks the map"
        );
    }

    #[tokio::test]
    async fn a_fifo_is_not_an_object_and_does_not_block() {
        let dir = tempdir("fifo");
        let path = std::ffi::CString::new(dir.join("pipe").to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o644) }, 0);
        let store = LocalStorage::new(&dir).unwrap();
        let opened =
            tokio::time::timeout(std::time::Duration::from_secs(5), store.open("pipe")).await;
        assert!(opened.expect("opening a FIFO blocked").unwrap().is_none());
    }

    #[tokio::test]
    async fn symlinks_outside_the_root_are_not_found() {
        let dir = tempdir("symlink");
        let outside = tempdir("symlink-outside");
        std::fs::write(outside.join("secret"), b"secret").unwrap();
        std::fs::create_dir(dir.join("root")).unwrap();
        std::fs::write(dir.join("root/inside"), b"ok").unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), dir.join("root/leak")).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("root/dirleak")).unwrap();
        std::os::unix::fs::symlink(dir.join("root/inside"), dir.join("root/alias")).unwrap();
        let store = LocalStorage::new(&dir.join("root")).unwrap();
        assert!(store.open("leak").await.unwrap().is_none());
        assert!(store.open("dirleak/secret").await.unwrap().is_none());
        assert!(store.open("alias").await.unwrap().is_some());
    }
}
