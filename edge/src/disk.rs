//! The disk tier: responses kept in files under `cache_dir`, up to `disk_size` bytes of what the
//! files really occupy, surviving restarts, never serving a byte that was not verified.
//!
//! Layout: `DIR/cdn-edge-cache` (marker; a non-empty directory without it is refused),
//! `DIR/tmp/` (files being written; emptied at start), `DIR/objects/XX/SSSSSSSSSSSSSSSS` (one
//! file per stored response; `S` is the write's sequence number in hex, `XX` its low byte).
//! A sequence number is never reused: a new version of a key is a new file, and the old file is
//! removed once the index points at the new one.
//!
//! File format (integers little-endian):
//!
//! ```text
//! 0   8  magic "CDNDISK1"
//! 8   4  meta_len          12  4  block size (bytes per checksummed body block)
//! 16  8  body_len          24  4  CRC-32 of the meta block
//! 28  4  CRC-32 of the block table      32  4  reserved (0)
//! 36  4  CRC-32 of bytes 0..36
//! 40     meta: key, status, header fields, freshness, Vary values
//! ..     body (body_len bytes)
//! ..     block table: CRC-32 of each body block, 4 bytes each
//! ```
//!
//! Atomic publish: a file is written whole under `tmp/`, then renamed into `objects/`; the index
//! learns of it only after the rename. A killed process leaves at most a file in `tmp/`, removed
//! at the next start. Files are not fsynced: after a power loss a renamed file may be short or
//! hold garbage, which the checks below find. Every read checks the preamble's checksum, the
//! file length against the lengths it announces, the meta checksum and the stored key; a short
//! read (a file cut after the length check) fails too. The body is checked block by block (the
//! block table's checksum, then each body block's before any byte of it is served) until every
//! block of the file has passed once: the index then marks that version *verified* and later
//! reads skip the body checksums (CRC-32 over each byte served was a tenth of a disk hit's
//! time). The mark lives only in memory and only for that file: a new version of the key is a
//! new, unverified file, and after a restart every file is unverified again. So what is
//! detected: any torn, short or garbled file as written (a failed or partial write, a crash, a
//! power loss, a file cut or changed while the edge was stopped) on the first read after it was
//! written or after the edge started, and at any read of a file not mapped (below) a length
//! that no longer matches or a damaged preamble or meta block. What is not: body bytes changed in place, with the length
//! kept, after that first read and while the edge keeps running (another process writing into
//! the cache directory, or the disk silently returning different bytes for pages the kernel
//! dropped from its cache); those are served until the next restart. A file failing a check is
//! deleted and its key dropped from the index, so the next request is a miss and is fetched
//! again.
//!
//! Buffers: a body read whole goes into a recycled buffer (an idle pool of at most
//! [`POOL_BYTES`]), not a fresh allocation that must be zeroed and faulted in on each hit.
//!
//! Mappings: once a file is verified, its next read maps its body (read-only, pages populated
//! from the page cache) and keeps the mapping with the decoded head, up to [`MAP_BYTES`] of
//! bodies, least recently used dropped first. A hit on a mapped file reads nothing, decodes
//! nothing and copies nothing: the socket write takes the bytes from the page cache, as
//! Varnish's file storage does. Removing a file (eviction, purge, a new version) drops its
//! mapping; a body being sent keeps the mapping, and so the file's blocks, until it is sent.
//! Mapped pages count in the process's RSS as file pages the kernel may drop. The rule that
//! comes with mapping: nothing but this edge writes into the cache directory while it runs (a
//! mapped file truncated by another program would fault the process). The directory is
//! locked (`flock` on the marker file) so that a second edge refuses it.
//!
//! Threads: file reads run on tokio's blocking pool, except the read of a file used within
//! [`READ_INLINE_WITHIN`] before (a popular object: its pages were read moments ago and are in
//! the page cache), which runs on the async worker: the hop to the pool and back cost more than
//! the read itself (15% of req/s for 1 MiB hits). The risk taken: if the kernel dropped those
//! pages meanwhile (memory pressure), that one read stalls the worker for a disk access, as
//! every read does in nginx without `aio threads`.
//!
//! Index: in memory, key -> (sequence, bytes on disk, LRU tick, disk hits, verified mark), plus
//! the LRU order (the mark fits in the slot's padding). Its cost per object is [`INDEX_BYTES_PER_OBJECT`] plus the key's length (measured by
//! `tests/weigh.rs`). It is rebuilt at start by a background task that reads each file's
//! preamble and meta (two reads, no body); requests are served meanwhile: a key not yet indexed
//! is a miss, and the fetched copy (a newer sequence number) wins over the file found later.
//! A PURGE or invalidation during the rebuild is remembered until it ends, so the loader does
//! not bring back a purged file.
//!
//! Eviction: LRU by bytes on disk (file length rounded up to the allocation, 4 KiB, or the
//! blocks the file system reports, whichever is larger). LRU suits video here for the reason it
//! does in memory: a new live segment is always admitted and old segments of a moving window
//! age out first; a VOD tail object read once ages out behind everything read since.
//!
//! Promotion: a disk hit tells the caller to put the body in the memory tier on the object's
//! second disk hit since it was written, loaded or last promoted (the count restarts at each
//! promotion), when that hit read the body into a buffer (a file not yet verified, or one that
//! could not be mapped). A mapped body is never promoted: serving it costs what a memory hit
//! costs, and a copy would take room from bodies that are not mapped. So the memory tier holds
//! what was fetched lately (a live channel's segments, requested by every viewer within seconds
//! of their miss), and a VOD tail read again is served from its mapping. A promoted body is the
//! one the hit read anyway: no second read, no copy.
//!
//! Errors: a failed write (disk full, I/O error, unwritable directory) is logged, counted, and
//! suspends writes for [`SUSPEND`]: the edge goes on serving from memory and the origin. A
//! failed read is a miss.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderName, HeaderValue, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use prometheus::{IntCounter, IntGauge};

use common::clock::Clock;
use common::http::{Body, BoxError};

use crate::key::CacheKey;
use crate::metrics::{ByteTally, Metrics};
use crate::policy::{Freshness, PolicyConfig};
use crate::store::{Payload, Stored};

const MAGIC: [u8; 8] = *b"CDNDISK1";
/// Bytes before the meta block.
pub const PREAMBLE: u64 = 40;
/// Bytes per checksummed body block: a Range or a streamed body reads whole blocks.
pub const BLOCK: u64 = 256 << 10;
/// Largest meta block accepted when reading (headers are bounded far below this).
const MAX_META: u32 = 4 << 20;
/// Bodies up to this size are read whole (and verified) on a disk hit; larger ones stream.
pub const READ_WHOLE: u64 = 2 << 20;
/// A file used again within this long is read on the async worker rather than on the blocking
/// pool (see the module doc).
pub const READ_INLINE_WITHIN: Duration = Duration::from_secs(2);
/// Most bytes of bodies kept mapped (see the module doc).
pub const MAP_BYTES: u64 = 256 << 20;
/// How long opening a directory waits for a lock held by a store shutting down.
const LOCK_WAIT: Duration = Duration::from_secs(5);
/// How long writes stay off after a write error.
pub const SUSPEND: Duration = Duration::from_secs(10);
/// Allocation unit charged per file.
const ALLOCATION_UNIT: u64 = 4096;
/// The marker file naming a directory as an edge cache.
const MARKER: &str = "cdn-edge-cache";
const MARKER_TEXT: &str = "cdn edge disk cache, format CDNDISK1\n";

/// Memory the index holds per disk object, besides the key's host and path bytes: the `Arc`'d
/// key (header, two boxed strings, with malloc's overhead), the hash map slot (key pointer and
/// [`Slot`], at the map's load factor, plus its control byte) and the LRU tree's entry (tick,
/// sequence and key pointer, at the B-tree's fill). Checked by `tests/weigh.rs`.
pub const INDEX_BYTES_PER_OBJECT: u64 = 256;

/// What the index keeps per object.
#[derive(Debug, Clone, Copy)]
struct Slot {
    seq: u64,
    /// Bytes the file occupies.
    size: u64,
    tick: u64,
    /// Disk hits since it was written, loaded or last promoted (saturating).
    hits: u8,
    /// Every body block of this file has passed its checksum since it was written or since the
    /// process started (see the module doc): later reads skip the body checksums.
    verified: bool,
}

#[derive(Default)]
struct Index {
    map: HashMap<Arc<CacheKey>, Slot>,
    /// LRU order: (tick, sequence) -> key; the first is the least recently used.
    lru: BTreeMap<(u64, u64), Arc<CacheKey>>,
    used: u64,
    clock: u64,
}

impl Index {
    fn next_tick(&mut self) -> u64 {
        self.clock = (self.clock + 1).max(micros(SystemTime::now()));
        self.clock
    }

    /// Marks `key` used; returns its slot after the hit is counted, and the tick of its
    /// previous use.
    fn touch(&mut self, key: &CacheKey) -> Option<(Slot, u64)> {
        let tick = self.next_tick();
        let (k, slot) = self.map.get_key_value(key)?;
        let k = k.clone();
        let old = (slot.tick, slot.seq);
        let slot = self.map.get_mut(key)?;
        slot.tick = tick;
        slot.hits = slot.hits.saturating_add(1);
        let s = *slot;
        self.lru.remove(&old);
        self.lru.insert((s.tick, s.seq), k);
        Some((s, old.0))
    }

    /// Notes that version `seq` of `key` passed every body check.
    fn mark_verified(&mut self, key: &CacheKey, seq: u64) {
        if let Some(slot) = self.map.get_mut(key).filter(|s| s.seq == seq) {
            slot.verified = true;
        }
    }

    /// Restarts the hit count of version `seq` of `key` (it was just promoted to memory).
    fn promoted(&mut self, key: &CacheKey, seq: u64) {
        if let Some(slot) = self.map.get_mut(key).filter(|s| s.seq == seq) {
            slot.hits = 0;
        }
    }

    /// Adds or replaces `key`; of two versions the higher sequence wins. Returns the sequence
    /// of the file no longer indexed (the replaced one, or `slot`'s own when it lost).
    fn insert(&mut self, key: Arc<CacheKey>, slot: Slot) -> Option<u64> {
        if let Some(old) = self.map.get(&*key).copied() {
            if old.seq == slot.seq {
                return None;
            }
            if old.seq > slot.seq {
                return Some(slot.seq);
            }
            self.remove(&key);
            self.put(key, slot);
            return Some(old.seq);
        }
        self.put(key, slot);
        None
    }

    fn put(&mut self, key: Arc<CacheKey>, slot: Slot) {
        self.used += slot.size;
        self.lru.insert((slot.tick, slot.seq), key.clone());
        self.map.insert(key, slot);
    }

    fn remove(&mut self, key: &CacheKey) -> Option<Slot> {
        let slot = self.map.remove(key)?;
        self.lru.remove(&(slot.tick, slot.seq));
        self.used -= slot.size;
        Some(slot)
    }

    /// Removes `key` only if it still is version `seq`.
    fn remove_version(&mut self, key: &CacheKey, seq: u64) -> bool {
        if self.map.get(key).is_some_and(|s| s.seq == seq) {
            self.remove(key);
            true
        } else {
            false
        }
    }

    /// Removes least recently used entries until `used <= capacity`; their sequences.
    fn evict_to(&mut self, capacity: u64) -> Vec<u64> {
        let mut victims = Vec::new();
        while self.used > capacity {
            let Some((_, key)) = self.lru.pop_first() else {
                break;
            };
            if let Some(slot) = self.map.remove(&*key) {
                self.used -= slot.size;
                victims.push(slot.seq);
            }
        }
        victims
    }
}

fn micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros().min(u64::MAX as u128) as u64)
        .unwrap_or(0)
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128) as u64
}

/// Handles to the disk metrics of the edge's registry.
#[derive(Clone)]
pub struct DiskMetrics {
    read_bytes: IntCounter,
    write_bytes: IntCounter,
    errors_read: IntCounter,
    errors_write: IntCounter,
    errors_corrupt: IntCounter,
    evictions: IntCounter,
    load_seconds: prometheus::Gauge,
    loading: IntGauge,
    suspended: IntGauge,
}

impl DiskMetrics {
    pub fn from(m: &Metrics) -> DiskMetrics {
        let errors = |op: &str| m.disk_errors.with_label_values(&[op]);
        DiskMetrics {
            read_bytes: m.disk_read_bytes.clone(),
            write_bytes: m.disk_write_bytes.clone(),
            errors_read: errors("read"),
            errors_write: errors("write"),
            errors_corrupt: errors("corrupt"),
            evictions: m.disk_evictions.clone(),
            load_seconds: m.disk_index_load_seconds.clone(),
            loading: m.disk_loading.clone(),
            suspended: m.disk_writes_suspended.clone(),
        }
    }
}

/// A purge or invalidation seen while the index was being rebuilt: files written before it
/// (sequence below `before`) whose path matches are not loaded.
struct Forget {
    path: Box<str>,
    prefix: bool,
    before: u64,
}

struct Inner {
    dir: PathBuf,
    capacity: u64,
    index: Mutex<Index>,
    next_seq: AtomicU64,
    loading: AtomicBool,
    forgotten: Mutex<Vec<Forget>>,
    suspended_until: Mutex<Option<Instant>>,
    metrics: DiskMetrics,
    /// The memory store's purge counter: a fetch that overlaps a purge keeps nothing.
    purges: Arc<AtomicU64>,
    loaded: tokio::sync::watch::Sender<bool>,
    policy: PolicyConfig,
    clock: Arc<dyn Clock>,
    /// Bodies of verified files mapped into memory (see the module doc).
    maps: Mutex<Maps>,
    /// Held (an exclusive `flock` on the marker file) while the store is open: one process
    /// per cache directory.
    _lock: File,
}

/// The body of a verified file mapped into memory, with its decoded response head: a hit on
/// it reads nothing and copies nothing.
struct Mapped {
    status: StatusCode,
    fields: Box<[(HeaderName, HeaderValue)]>,
    freshness: Freshness,
    vary: Vec<(HeaderName, Option<String>)>,
    /// A slice of the mapping, which is unmapped when the last clone is dropped.
    body: Bytes,
}

/// The mapped files, least recently used first, up to [`MAP_BYTES`] of bodies.
#[derive(Default)]
struct Maps {
    by_seq: HashMap<u64, (Arc<Mapped>, u64)>,
    order: BTreeMap<u64, u64>,
    bytes: u64,
    tick: u64,
}

impl Maps {
    fn get(&mut self, seq: u64) -> Option<Arc<Mapped>> {
        self.tick += 1;
        let tick = self.tick;
        let (mapped, at) = self.by_seq.get_mut(&seq)?;
        self.order.remove(at);
        *at = tick;
        self.order.insert(tick, seq);
        Some(mapped.clone())
    }

    fn insert(&mut self, seq: u64, mapped: Arc<Mapped>) {
        self.remove(seq);
        self.tick += 1;
        self.bytes += mapped.body.len() as u64;
        self.by_seq.insert(seq, (mapped, self.tick));
        self.order.insert(self.tick, seq);
        while self.bytes > MAP_BYTES {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some((m, _)) = self.by_seq.remove(&oldest) {
                self.bytes -= m.body.len() as u64;
            }
        }
    }

    fn remove(&mut self, seq: u64) {
        if let Some((m, at)) = self.by_seq.remove(&seq) {
            self.order.remove(&at);
            self.bytes -= m.body.len() as u64;
        }
    }
}

/// The disk tier; cheap to clone.
#[derive(Clone)]
pub struct DiskStore {
    inner: Arc<Inner>,
}

/// Why a file cannot be used.
fn corrupt(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Options of [`DiskStore::open`].
pub struct DiskOptions {
    pub dir: PathBuf,
    pub capacity: u64,
    pub policy: PolicyConfig,
    pub clock: Arc<dyn Clock>,
    pub purges: Arc<AtomicU64>,
    pub metrics: DiskMetrics,
}

impl DiskStore {
    /// Opens (creating it if needed) the cache directory and starts rebuilding the index in
    /// the background; returns at once. Errors name the directory: it cannot be created or
    /// written, or it is a non-empty directory that is not an edge cache.
    pub fn open(opts: DiskOptions) -> Result<DiskStore> {
        let dir = opts.dir;
        let lock = prepare(&dir, LOCK_WAIT)?;
        let inner = Arc::new(Inner {
            maps: Mutex::new(Maps::default()),
            _lock: lock,
            capacity: opts.capacity,
            index: Mutex::new(Index::default()),
            next_seq: AtomicU64::new(micros(SystemTime::now()).max(1)),
            loading: AtomicBool::new(true),
            forgotten: Mutex::new(Vec::new()),
            suspended_until: Mutex::new(None),
            metrics: opts.metrics,
            purges: opts.purges,
            loaded: tokio::sync::watch::channel(false).0,
            policy: opts.policy,
            clock: opts.clock,
            dir,
        });
        inner.metrics.loading.set(1);
        let loader = inner.clone();
        tokio::task::spawn_blocking(move || loader.load());
        Ok(DiskStore { inner })
    }

    /// Waits until the index has been rebuilt from the directory.
    pub async fn loaded(&self) {
        let mut rx = self.inner.loaded.subscribe();
        let _ = rx.wait_for(|done| *done).await;
    }

    pub fn is_loading(&self) -> bool {
        self.inner.loading.load(Ordering::SeqCst)
    }

    pub fn capacity(&self) -> u64 {
        self.inner.capacity
    }

    /// Bytes the indexed files occupy.
    pub fn used_bytes(&self) -> u64 {
        lock(&self.inner.index).used
    }

    pub fn objects(&self) -> usize {
        lock(&self.inner.index).map.len()
    }

    /// True while writes are off after a write error.
    pub fn writes_suspended(&self) -> bool {
        self.inner.suspended()
    }

    /// The path of the file holding `key`, if indexed (for tests and tools).
    pub fn file_of(&self, key: &CacheKey) -> Option<PathBuf> {
        let seq = lock(&self.inner.index).map.get(key)?.seq;
        Some(self.inner.object_path(seq))
    }

    /// The stored response for `key`, verified, with whether the memory tier should take it
    /// (its second disk hit since it was written, loaded or last promoted, and small enough:
    /// `memory_limit`). Bodies up to [`READ_WHOLE`], or promoted, are read whole (into a
    /// recycled buffer unless promoted); larger ones are served block by block. A file that
    /// fails a check is deleted and `None` returned.
    pub async fn get(&self, key: &CacheKey, memory_limit: u64) -> Option<(Arc<Stored>, bool)> {
        let (slot, previous) = lock(&self.inner.index).touch(key)?;
        let promote = slot.hits >= 2;
        if slot.verified {
            let mapped = lock(&self.inner.maps).get(slot.seq);
            if let Some(m) = mapped {
                // Not promoted: a mapped body is served as a memory hit is (no read, no copy),
                // and a copy would take memory-tier room from bodies that are not mapped.
                let body = m.body.clone();
                self.inner.metrics.read_bytes.inc_by(body.len() as u64);
                let stored = Stored::restored(
                    &self.inner.policy,
                    m.status,
                    m.fields.clone(),
                    Payload::Memory(body),
                    m.freshness.clone(),
                    m.vary.clone(),
                );
                return Some((Arc::new(stored), false));
            }
        }
        let inner = self.inner.clone();
        let k = key.clone();
        let read = if slot.tick.saturating_sub(previous) <= nanos(READ_INLINE_WITHIN) / 1000 {
            // Used moments ago: its pages are in the page cache, and the read is a copy that
            // costs less than the hop to the blocking pool and back.
            Ok(inner.read(&k, slot, promote, memory_limit))
        } else {
            tokio::task::spawn_blocking(move || inner.read(&k, slot, promote, memory_limit)).await
        };
        match read {
            Ok(Ok((stored, copied))) => {
                let promote = promote && copied && stored.body.len() <= memory_limit;
                if promote {
                    // Evicted from memory later, it earns its way back with two more disk hits
                    // rather than being read into memory again on every one.
                    lock(&self.inner.index).promoted(key, slot.seq);
                }
                Some((Arc::new(stored), promote))
            }
            Ok(Err(e)) => {
                self.inner.discard(key, slot.seq, &e).await;
                None
            }
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "disk read task failed");
                None
            }
        }
    }

    /// Writes a fetched response (`entry`'s status, fields, freshness and Vary; the body from
    /// `chunks`) fetched at purge generation `since`. False when not kept: writes are
    /// suspended, it is larger than the whole tier, the write failed, or a purge overlapped.
    pub async fn insert_fetched(
        &self,
        key: &CacheKey,
        entry: &Stored,
        chunks: Vec<Bytes>,
        since: u64,
    ) -> bool {
        if self.inner.suspended() {
            return false;
        }
        let body_len: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        let meta = encode_meta(key, entry);
        let estimate = round_up(
            PREAMBLE + meta.len() as u64 + body_len + 4 * blocks(body_len),
            ALLOCATION_UNIT,
        );
        if estimate > self.inner.capacity {
            return false;
        }
        let seq = self.inner.next_seq.fetch_add(1, Ordering::SeqCst);
        let inner = self.inner.clone();
        let written = tokio::task::spawn_blocking(move || inner.write(seq, &meta, &chunks)).await;
        let size = match written {
            Ok(Ok(size)) => size,
            Ok(Err(e)) => {
                self.inner.write_failed(key, &e);
                return false;
            }
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "disk write task failed");
                return false;
            }
        };
        self.inner.metrics.write_bytes.inc_by(size);
        let (stale, victims) = {
            let mut index = lock(&self.inner.index);
            let tick = index.next_tick();
            let slot = Slot {
                seq,
                size,
                tick,
                hits: 0,
                verified: false,
            };
            let stale = index.insert(Arc::new(key.clone()), slot);
            let victims = index.evict_to(self.inner.capacity);
            (stale, victims)
        };
        self.inner.metrics.evictions.inc_by(victims.len() as u64);
        let mut unlink: Vec<u64> = victims;
        unlink.extend(stale);
        // Inserted, then checked: a purge either bumped the counter before this check, or
        // finds the entry in its scan of the index.
        let kept = self.inner.purges.load(Ordering::SeqCst) == since;
        if !kept && lock(&self.inner.index).remove_version(key, seq) {
            unlink.push(seq);
        }
        self.inner.unlink(unlink).await;
        kept && lock(&self.inner.index)
            .map
            .get(key)
            .is_some_and(|s| s.seq == seq)
    }

    /// Removes `key` (an unsafe method succeeded on its URL).
    pub async fn remove(&self, key: &CacheKey) {
        self.inner.forget(&key.path, false);
        let slot = lock(&self.inner.index).remove(key);
        if let Some(slot) = slot {
            self.inner.unlink(vec![slot.seq]).await;
        }
    }

    /// Removes every entry whose path equals `path` (any host), or starts with it when
    /// `prefix`; the files are gone when this returns. Returns how many.
    pub async fn purge(&self, path: &str, prefix: bool) -> usize {
        self.inner.forget(path, prefix);
        let seqs: Vec<u64> = {
            let mut index = lock(&self.inner.index);
            let keys: Vec<Arc<CacheKey>> = index
                .map
                .keys()
                .filter(|k| {
                    if prefix {
                        k.path.starts_with(path)
                    } else {
                        &*k.path == path
                    }
                })
                .cloned()
                .collect();
            keys.iter()
                .filter_map(|k| index.remove(k).map(|s| s.seq))
                .collect()
        };
        let n = seqs.len();
        self.inner.unlink(seqs).await;
        n
    }
}

impl Inner {
    fn object_path(&self, seq: u64) -> PathBuf {
        self.dir
            .join("objects")
            .join(format!("{:02x}", seq & 0xff))
            .join(format!("{seq:016x}"))
    }

    fn suspended(&self) -> bool {
        let mut until = lock(&self.suspended_until);
        match *until {
            Some(t) if Instant::now() < t => true,
            Some(_) => {
                *until = None;
                self.metrics.suspended.set(0);
                false
            }
            None => false,
        }
    }

    fn write_failed(&self, key: &CacheKey, e: &io::Error) {
        self.metrics.errors_write.inc();
        self.metrics.suspended.set(1);
        *lock(&self.suspended_until) = Some(Instant::now() + SUSPEND);
        tracing::warn!(key = %key, dir = %self.dir.display(), error = %e,
            "disk cache write failed; serving from memory only for {}s", SUSPEND.as_secs());
    }

    /// Drops a file that failed a read (deleting it when it is corrupt).
    async fn discard(self: &Arc<Self>, key: &CacheKey, seq: u64, e: &io::Error) {
        let removed = lock(&self.index).remove_version(key, seq);
        if e.kind() == io::ErrorKind::InvalidData {
            self.metrics.errors_corrupt.inc();
            tracing::warn!(key = %key, file = %self.object_path(seq).display(), error = %e,
                "corrupt disk cache file dropped");
        } else {
            self.metrics.errors_read.inc();
            tracing::warn!(key = %key, file = %self.object_path(seq).display(), error = %e,
                "disk cache read failed; entry dropped");
        }
        if removed {
            self.unlink(vec![seq]).await;
        }
    }

    /// Remembers a purge while the index is being rebuilt.
    fn forget(&self, path: &str, prefix: bool) {
        if self.loading.load(Ordering::SeqCst) {
            lock(&self.forgotten).push(Forget {
                path: path.into(),
                prefix,
                before: self.next_seq.load(Ordering::SeqCst),
            });
        }
    }

    fn forgotten(&self, key: &CacheKey, seq: u64) -> bool {
        lock(&self.forgotten).iter().any(|f| {
            seq < f.before
                && if f.prefix {
                    key.path.starts_with(&*f.path)
                } else {
                    *key.path == *f.path
                }
        })
    }

    async fn unlink(self: &Arc<Self>, seqs: Vec<u64>) {
        if seqs.is_empty() {
            return;
        }
        {
            let mut maps = lock(&self.maps);
            for seq in &seqs {
                maps.remove(*seq);
            }
        }
        let inner = self.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for seq in seqs {
                let path = inner.object_path(seq);
                if let Err(e) = fs::remove_file(&path) {
                    if e.kind() != io::ErrorKind::NotFound {
                        tracing::warn!(file = %path.display(), error = %e, "cannot remove disk cache file");
                    }
                }
            }
        })
        .await;
    }

    /// Writes a file under `tmp/` and renames it into place; the bytes it occupies.
    fn write(&self, seq: u64, meta: &[u8], chunks: &[Bytes]) -> io::Result<u64> {
        let tmp = self.dir.join("tmp").join(format!("{seq:016x}"));
        let result = self.write_file(&tmp, seq, meta, chunks);
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn write_file(&self, tmp: &Path, seq: u64, meta: &[u8], chunks: &[Bytes]) -> io::Result<u64> {
        let body_len: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        let table = block_table(chunks, body_len);
        let table_bytes: Vec<u8> = table.iter().flat_map(|c| c.to_le_bytes()).collect();
        let preamble = encode_preamble(&Preamble {
            meta_len: meta.len() as u32,
            block: BLOCK as u32,
            body_len,
            meta_crc: crc32fast::hash(meta),
            table_crc: crc32fast::hash(&table_bytes),
        });
        let file = OpenOptions::new().write(true).create_new(true).open(tmp)?;
        let mut w = BufWriter::with_capacity(BLOCK as usize, file);
        w.write_all(&preamble)?;
        w.write_all(meta)?;
        for c in chunks {
            w.write_all(c)?;
        }
        w.write_all(&table_bytes)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        let md = file.metadata()?;
        drop(file);
        fs::rename(tmp, self.object_path(seq))?;
        Ok(occupied(&md))
    }

    /// Marks version `seq` of `key` verified (every body block passed its checksum).
    fn mark_verified(&self, key: &CacheKey, seq: u64) {
        lock(&self.index).mark_verified(key, seq);
    }

    /// Reads and checks a file's head (and, unless the file is verified, its block table);
    /// maps a verified file's body, or reads it with `promote` (or when small). The flag
    /// returned: the body was read into a buffer of its own (the memory tier may take it).
    fn read(
        self: &Arc<Self>,
        key: &CacheKey,
        slot: Slot,
        promote: bool,
        memory_limit: u64,
    ) -> io::Result<(Stored, bool)> {
        let seq = slot.seq;
        let path = self.object_path(seq);
        let file = File::open(&path)?;
        let head = read_head(&file)?;
        if head.meta.key != *key {
            return Err(corrupt("the file holds another key"));
        }
        let p = &head.preamble;
        // A verified file's blocks are not checked again: its table is not needed.
        let table: Vec<u32> = if slot.verified {
            Vec::new()
        } else {
            let n = blocks(p.body_len) as usize;
            let mut raw = vec![0u8; n * 4];
            file.read_exact_at(&mut raw, PREAMBLE + p.meta_len as u64 + p.body_len)?;
            if crc32fast::hash(&raw) != p.table_crc {
                return Err(corrupt("block table checksum"));
            }
            raw.chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        self.metrics
            .read_bytes
            .inc_by(PREAMBLE + p.meta_len as u64 + 4 * table.len() as u64);
        let body = DiskBody {
            file,
            offset: PREAMBLE + p.meta_len as u64,
            len: p.body_len,
            block: p.block as u64,
            table,
            verified: AtomicBool::new(slot.verified),
            key: key.clone(),
            seq,
            store: self.clone(),
        };
        let promote = promote && p.body_len <= memory_limit;
        let mapped = if slot.verified && p.body_len > 0 {
            match map_body(&body.file, body.offset, p) {
                Ok(b) => Some(b),
                Err(e) if e.kind() == io::ErrorKind::InvalidData => return Err(e),
                Err(e) => {
                    // Out of address space or mappings: read it instead.
                    tracing::debug!(key = %key, error = %e, "cannot map a disk cache file");
                    None
                }
            }
        } else {
            None
        };
        if let Some(mapped_body) = mapped {
            let m = head.meta;
            let mapped = Arc::new(Mapped {
                body: mapped_body,
                status: m.status,
                fields: m.fields,
                freshness: m.freshness,
                vary: m.vary,
            });
            lock(&self.maps).insert(seq, mapped.clone());
            self.metrics.read_bytes.inc_by(p.body_len);
            let stored = Stored::restored(
                &self.policy,
                mapped.status,
                mapped.fields.clone(),
                Payload::Memory(mapped.body.clone()),
                mapped.freshness.clone(),
                mapped.vary.clone(),
            );
            return Ok((stored, false));
        }
        let whole = p.body_len <= READ_WHOLE || promote;
        let payload = if whole {
            // A promoted body goes to the memory tier, which weighs it by its length: a buffer
            // of exactly that size. Any other is served and dropped: a recycled buffer.
            let bytes = body.read_range(0, p.body_len, !promote)?;
            self.metrics.read_bytes.inc_by(bytes.len() as u64);
            Payload::Memory(bytes)
        } else {
            Payload::Disk(Arc::new(body))
        };
        let m = head.meta;
        let stored = Stored::restored(
            &self.policy,
            m.status,
            m.fields,
            payload,
            m.freshness,
            m.vary,
        );
        Ok((stored, whole))
    }

    /// Rebuilds the index from the files in `objects/` (runs on a blocking thread).
    fn load(self: Arc<Self>) {
        let started = Instant::now();
        let now = self.clock.now();
        let (mut loaded, mut dropped) = (0u64, 0u64);
        for shard in 0..=0xffu32 {
            let dir = self.dir.join("objects").join(format!("{shard:02x}"));
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot read disk cache directory");
                    continue;
                }
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(seq) = name.to_str().and_then(|n| u64::from_str_radix(n, 16).ok()) else {
                    continue;
                };
                match self.load_one(&entry.path(), seq, now) {
                    Ok(true) => loaded += 1,
                    Ok(false) => dropped += 1,
                    Err(e) => {
                        dropped += 1;
                        if e.kind() == io::ErrorKind::InvalidData {
                            self.metrics.errors_corrupt.inc();
                            tracing::warn!(file = %entry.path().display(), error = %e,
                                "corrupt disk cache file removed");
                        }
                        if e.kind() != io::ErrorKind::NotFound {
                            let _ = fs::remove_file(entry.path());
                        }
                    }
                }
            }
        }
        let victims = {
            let mut index = lock(&self.index);
            index.evict_to(self.capacity)
        };
        self.metrics.evictions.inc_by(victims.len() as u64);
        for seq in victims {
            let _ = fs::remove_file(self.object_path(seq));
        }
        self.loading.store(false, Ordering::SeqCst);
        lock(&self.forgotten).clear();
        let secs = started.elapsed().as_secs_f64();
        self.metrics.load_seconds.set(secs);
        self.metrics.loading.set(0);
        self.loaded.send_replace(true);
        tracing::info!(dir = %self.dir.display(), objects = loaded, dropped, seconds = secs,
            "disk cache index loaded");
    }

    /// Indexes one file: true when kept, false when it was dropped (expired, purged, an older
    /// version); `Err` when it cannot be used.
    fn load_one(&self, path: &Path, seq: u64, now: SystemTime) -> io::Result<bool> {
        let file = File::open(path)?;
        let md = file.metadata()?;
        let head = read_head(&file)?;
        drop(file);
        let key = head.meta.key;
        let fresh_until = head.meta.freshness.response_time
            + head
                .meta
                .freshness
                .retention(&self.policy, head.meta.freshness.response_time);
        if now >= fresh_until || self.forgotten(&key, seq) {
            let _ = fs::remove_file(path);
            return Ok(false);
        }
        let tick = md.modified().map(micros).unwrap_or(0);
        let slot = Slot {
            seq,
            size: occupied(&md),
            tick,
            hits: 0,
            verified: false,
        };
        let stale = {
            let mut index = lock(&self.index);
            // Checked again under the lock: a purge between the check above and this insert
            // either is in the list now or will find the entry in the index.
            if self.forgotten(&key, seq) {
                Some(seq)
            } else {
                index.insert(Arc::new(key), slot)
            }
        };
        match stale {
            Some(s) => {
                let _ = fs::remove_file(self.object_path(s));
                Ok(s != seq)
            }
            None => Ok(true),
        }
    }
}

/// A verified view of a body in a disk cache file, served block by block. The file stays open
/// (and readable after an eviction or purge unlinks it) while a response uses it.
pub struct DiskBody {
    file: File,
    /// Where the body starts in the file.
    offset: u64,
    len: u64,
    block: u64,
    /// CRC-32 of each block (empty when the file was verified before this view was made).
    table: Vec<u32>,
    /// Every block passed its check once: no more checks (see the module doc).
    verified: AtomicBool,
    key: CacheKey,
    seq: u64,
    store: Arc<Inner>,
}

impl std::fmt::Debug for DiskBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskBody")
            .field("file", &self.store.object_path(self.seq))
            .field("len", &self.len)
            .finish()
    }
}

impl DiskBody {
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of memory this view holds.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.table.len() * 4
            + self.key.host.len()
            + self.key.path.len()
            + 64
    }

    fn is_verified(&self) -> bool {
        self.verified.load(Ordering::Relaxed)
    }

    /// Reads bytes `start..end` of the body, verifying every block they touch unless the file
    /// is verified (blocking). Without `pooled` (a body the memory tier may keep, and weighs by
    /// its length) the buffer holds exactly the bytes read; with it (a body served and dropped)
    /// it may be up to an eighth larger. Reading the whole body marks the file verified.
    fn read_range(&self, start: u64, end: u64, pooled: bool) -> io::Result<Bytes> {
        let end = end.min(self.len);
        if start >= end {
            return Ok(Bytes::new());
        }
        let first = start / self.block;
        let last = (end - 1) / self.block;
        let from = first * self.block;
        let to = ((last + 1) * self.block).min(self.len);
        let n = (to - from) as usize;
        let mut buf = Pooled::take(n, !pooled);
        self.file
            .read_exact_at(buf.as_mut(), self.offset + from)
            .map_err(eof_is_corrupt)?;
        if !self.is_verified() {
            for (i, chunk) in buf.as_ref().chunks(self.block as usize).enumerate() {
                let want = self.table.get(first as usize + i).copied();
                if want != Some(crc32fast::hash(chunk)) {
                    return Err(corrupt(format!(
                        "body block {} checksum",
                        first as usize + i
                    )));
                }
            }
            if from == 0 && to == self.len {
                self.verified.store(true, Ordering::Relaxed);
                self.store.mark_verified(&self.key, self.seq);
            }
        }
        Ok(buf
            .into_bytes()
            .slice((start - from) as usize..(end - from) as usize))
    }

    /// Bytes `start..end`, read on a blocking thread; a failed check drops the entry.
    async fn read_async(self: &Arc<Self>, start: u64, end: u64) -> io::Result<Bytes> {
        self.read_async_in(start, end, true).await
    }

    async fn read_async_in(
        self: &Arc<Self>,
        start: u64,
        end: u64,
        pooled: bool,
    ) -> io::Result<Bytes> {
        let me = self.clone();
        let read = tokio::task::spawn_blocking(move || me.read_range(start, end, pooled))
            .await
            .map_err(|e| io::Error::other(e.to_string()))?;
        match read {
            Ok(b) => {
                self.store.metrics.read_bytes.inc_by(b.len() as u64);
                Ok(b)
            }
            Err(e) => {
                self.store.discard(&self.key, self.seq, &e).await;
                Err(e)
            }
        }
    }

    /// The whole body in memory, verified (for a revalidation, whose 304 serves it).
    pub async fn read_all(self: &Arc<Self>) -> io::Result<Bytes> {
        // Kept in an entry the memory tier may take: a buffer of exactly its size.
        self.read_async_in(0, self.len, false).await
    }

    /// A client body streaming bytes `start..end` a block at a time, at the client's pace:
    /// each block is read and verified only when the previous one has been taken. A block
    /// failing its check ends the body with an error (the client sees a short body, never a
    /// wrong one) and drops the entry.
    pub fn stream(self: Arc<Self>, start: u64, end: u64, tally: ByteTally) -> Body {
        let state = (self, start, end, tally);
        let stream =
            futures_util::stream::unfold(state, move |(body, pos, end, tally)| async move {
                let end = end.min(body.len);
                if pos >= end {
                    // Every block of the body was read and checked, one read at a time.
                    if start == 0 && pos == body.len && !body.is_verified() {
                        body.verified.store(true, Ordering::Relaxed);
                        body.store.mark_verified(&body.key, body.seq);
                    }
                    return None;
                }
                let next = ((pos / body.block + 1) * body.block).min(end);
                match body.read_async(pos, next).await {
                    Ok(bytes) => {
                        tally.add(bytes.len() as u64);
                        Some((Ok::<_, BoxError>(bytes), (body, next, end, tally)))
                    }
                    Err(e) => {
                        let err: BoxError = format!("disk cache read failed: {e}").into();
                        Some((Err(err), (body, end, end, tally)))
                    }
                }
            });
        StreamBody::new(stream.map(|r| r.map(Frame::data))).boxed_unsync()
    }
}

/// Idle body buffers kept for reuse, most recently freed last. A disk hit read whole into a
/// fresh allocation pays for zeroing it and for faulting its pages in (and glibc returns such
/// buffers to the system when they are freed); a recycled one is already mapped and often
/// still in the CPU's caches.
static POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
/// Most bytes of idle buffers [`POOL`] keeps; buffers in use (being sent) are not counted.
pub const POOL_BYTES: usize = 16 << 20;
/// Buffers smaller than this are plain allocations.
const POOL_MIN: usize = 64 << 10;

/// A body buffer, returned to [`POOL`] when the last `Bytes` of it is dropped (a promoted
/// body's when the memory tier drops it).
struct Pooled {
    buf: Vec<u8>,
    len: usize,
}

impl Pooled {
    /// A buffer of `len` bytes: a recycled one (of exactly `len` bytes with `exact`, else at
    /// most an eighth larger), or a new one of exactly `len` bytes.
    fn take(len: usize, exact: bool) -> Pooled {
        let found = if len < POOL_MIN {
            None
        } else {
            let mut pool = lock(&POOL);
            let fits = |c: usize| c == len || (!exact && c > len && c - len <= len / 8);
            let at = pool.iter().rposition(|b| fits(b.capacity()));
            at.map(|i| pool.swap_remove(i))
        };
        // A recycled buffer keeps its length (its bytes are initialized): nothing is zeroed.
        let buf = found.unwrap_or_else(|| vec![0u8; len]);
        Pooled { buf, len }
    }

    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }

    fn into_bytes(self) -> Bytes {
        if self.buf.capacity() < POOL_MIN {
            let mut me = self;
            let mut buf = std::mem::take(&mut me.buf);
            buf.truncate(me.len);
            Bytes::from(buf)
        } else {
            Bytes::from_owner(self)
        }
    }
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if self.buf.capacity() < POOL_MIN {
            return;
        }
        let mut pool = lock(&POOL);
        pool.push(std::mem::take(&mut self.buf));
        // Over the bound: the oldest go (the newest are the likeliest still in the caches).
        let mut idle: usize = pool.iter().map(|b| b.capacity()).sum();
        while idle > POOL_BYTES {
            idle -= pool.remove(0).capacity();
        }
    }
}

/// Maps the body of a verified file (its pages are in the page cache: it was read moments
/// ago). The length is checked against the preamble first: a mapping never reaches past the
/// end of the file.
fn map_body(file: &File, offset: u64, p: &Preamble) -> io::Result<Bytes> {
    if file.metadata()?.len() != p.file_len() {
        return Err(corrupt("file length differs from its preamble"));
    }
    // SAFETY: the mapping is read-only and the file is one of this store's published files,
    // which are never written again or truncated: a new version is a new file, an old one is
    // unlinked (the mapping keeps its blocks until it is dropped). The directory is locked
    // against other edge processes (see `prepare`); another program truncating a mapped file
    // would make reading it fault, which the module doc states as the directory's rule.
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(offset)
            .len(p.body_len as usize)
            .populate()
            .map(file)?
    };
    Ok(Bytes::from_owner(map))
}

fn eof_is_corrupt(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        corrupt("file shorter than announced")
    } else {
        e
    }
}

fn blocks(body_len: u64) -> u64 {
    body_len.div_ceil(BLOCK)
}

fn round_up(n: u64, unit: u64) -> u64 {
    n.div_ceil(unit) * unit
}

/// Bytes a file occupies: its length rounded up to the allocation unit, or the blocks the file
/// system allocated, whichever is larger.
fn occupied(md: &fs::Metadata) -> u64 {
    round_up(md.len(), ALLOCATION_UNIT).max(md.blocks() * 512)
}

/// CRC-32 of each [`BLOCK`] of the body formed by `chunks`.
fn block_table(chunks: &[Bytes], body_len: u64) -> Vec<u32> {
    let mut table = Vec::with_capacity(blocks(body_len) as usize);
    let mut hasher = crc32fast::Hasher::new();
    let mut in_block = 0u64;
    for chunk in chunks {
        let mut rest: &[u8] = chunk;
        while !rest.is_empty() {
            let take = ((BLOCK - in_block) as usize).min(rest.len());
            hasher.update(&rest[..take]);
            in_block += take as u64;
            rest = &rest[take..];
            if in_block == BLOCK {
                table.push(std::mem::take(&mut hasher).finalize());
                in_block = 0;
            }
        }
    }
    if in_block > 0 {
        table.push(hasher.finalize());
    }
    table
}

struct Preamble {
    meta_len: u32,
    block: u32,
    body_len: u64,
    meta_crc: u32,
    table_crc: u32,
}

impl Preamble {
    fn file_len(&self) -> u64 {
        PREAMBLE
            + self.meta_len as u64
            + self.body_len
            + 4 * self.body_len.div_ceil(self.block as u64)
    }
}

fn encode_preamble(p: &Preamble) -> [u8; PREAMBLE as usize] {
    let mut b = [0u8; PREAMBLE as usize];
    b[0..8].copy_from_slice(&MAGIC);
    b[8..12].copy_from_slice(&p.meta_len.to_le_bytes());
    b[12..16].copy_from_slice(&p.block.to_le_bytes());
    b[16..24].copy_from_slice(&p.body_len.to_le_bytes());
    b[24..28].copy_from_slice(&p.meta_crc.to_le_bytes());
    b[28..32].copy_from_slice(&p.table_crc.to_le_bytes());
    let crc = crc32fast::hash(&b[0..36]);
    b[36..40].copy_from_slice(&crc.to_le_bytes());
    b
}

fn decode_preamble(b: &[u8; PREAMBLE as usize]) -> io::Result<Preamble> {
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    if b[0..8] != MAGIC {
        return Err(corrupt("not a disk cache file (magic)"));
    }
    if crc32fast::hash(&b[0..36]) != u32_at(36) {
        return Err(corrupt("preamble checksum"));
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&b[16..24]);
    let p = Preamble {
        meta_len: u32_at(8),
        block: u32_at(12),
        body_len: u64::from_le_bytes(len),
        meta_crc: u32_at(24),
        table_crc: u32_at(28),
    };
    if p.meta_len > MAX_META
        || !p.block.is_power_of_two()
        || !(4096..=(64 << 20)).contains(&p.block)
        || p.body_len > 1 << 40
    {
        return Err(corrupt("preamble values out of range"));
    }
    Ok(p)
}

/// What a file says about its response.
struct Meta {
    key: CacheKey,
    status: StatusCode,
    fields: Box<[(HeaderName, HeaderValue)]>,
    freshness: Freshness,
    vary: Vec<(HeaderName, Option<String>)>,
}

struct Head {
    preamble: Preamble,
    meta: Meta,
}

/// Reads and checks a file's preamble, length and meta.
fn read_head(file: &File) -> io::Result<Head> {
    let len = file.metadata()?.len();
    let mut pre = [0u8; PREAMBLE as usize];
    file.read_exact_at(&mut pre, 0).map_err(eof_is_corrupt)?;
    let preamble = decode_preamble(&pre)?;
    if len != preamble.file_len() {
        return Err(corrupt(format!(
            "length {len}, expected {} (torn write)",
            preamble.file_len()
        )));
    }
    let mut meta = vec![0u8; preamble.meta_len as usize];
    file.read_exact_at(&mut meta, PREAMBLE)
        .map_err(eof_is_corrupt)?;
    if crc32fast::hash(&meta) != preamble.meta_crc {
        return Err(corrupt("meta checksum"));
    }
    let meta = decode_meta(&meta)?;
    Ok(Head { preamble, meta })
}

const META_VERSION: u8 = 1;

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u32(out, b.len().min(u32::MAX as usize) as u32);
    out.extend_from_slice(&b[..b.len().min(u32::MAX as usize)]);
}

/// The meta block of `entry` stored under `key`.
fn encode_meta(key: &CacheKey, entry: &Stored) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.push(META_VERSION);
    put_bytes(&mut out, key.host.as_bytes());
    put_bytes(&mut out, key.path.as_bytes());
    out.extend_from_slice(&entry.status.as_u16().to_le_bytes());
    let f = &entry.freshness;
    put_u64(&mut out, nanos(f.lifetime));
    put_u64(&mut out, nanos(f.initial_age));
    put_u64(
        &mut out,
        nanos(
            f.response_time
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
        ),
    );
    put_u64(&mut out, nanos(f.stale_while_revalidate));
    put_u64(&mut out, nanos(f.stale_if_error));
    let flags = f.no_cache as u8
        | (f.must_revalidate as u8) << 1
        | (f.heuristic as u8) << 2
        | (f.has_validator as u8) << 3;
    out.push(flags);
    put_u32(&mut out, entry.fields().len() as u32);
    for (name, value) in entry.fields() {
        put_bytes(&mut out, name.as_str().as_bytes());
        put_bytes(&mut out, value.as_bytes());
    }
    put_u32(&mut out, entry.vary.len() as u32);
    for (name, value) in &entry.vary {
        put_bytes(&mut out, name.as_str().as_bytes());
        match value {
            Some(v) => {
                out.push(1);
                put_bytes(&mut out, v.as_bytes());
            }
            None => out.push(0),
        }
    }
    out
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> io::Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| corrupt("meta block ends early"))?;
        let s = &self.buf[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self) -> io::Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> io::Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> io::Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> io::Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn bytes(&mut self) -> io::Result<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn text(&mut self) -> io::Result<&'a str> {
        std::str::from_utf8(self.bytes()?).map_err(|_| corrupt("meta text is not UTF-8"))
    }

    fn duration(&mut self) -> io::Result<Duration> {
        Ok(Duration::from_nanos(self.u64()?))
    }

    fn name(&mut self) -> io::Result<HeaderName> {
        HeaderName::from_bytes(self.bytes()?).map_err(|_| corrupt("bad header name"))
    }
}

fn decode_meta(buf: &[u8]) -> io::Result<Meta> {
    let mut r = Reader { buf, at: 0 };
    if r.u8()? != META_VERSION {
        return Err(corrupt("unknown meta version"));
    }
    let key = CacheKey {
        host: r.text()?.into(),
        path: r.text()?.into(),
    };
    let status = StatusCode::from_u16(r.u16()?).map_err(|_| corrupt("bad status"))?;
    let lifetime = r.duration()?;
    let initial_age = r.duration()?;
    let response_time = UNIX_EPOCH + r.duration()?;
    let stale_while_revalidate = r.duration()?;
    let stale_if_error = r.duration()?;
    let flags = r.u8()?;
    let freshness = Freshness {
        lifetime,
        initial_age,
        response_time,
        stale_while_revalidate,
        stale_if_error,
        no_cache: flags & 1 != 0,
        must_revalidate: flags & 2 != 0,
        heuristic: flags & 4 != 0,
        has_validator: flags & 8 != 0,
    };
    let n = r.u32()? as usize;
    // Each field takes at least 8 bytes: a count beyond that is corrupt, not an allocation.
    if n > buf.len() / 8 {
        return Err(corrupt("field count"));
    }
    let mut fields = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.name()?;
        let value = HeaderValue::from_bytes(r.bytes()?).map_err(|_| corrupt("bad header value"))?;
        fields.push((name, value));
    }
    let n = r.u32()? as usize;
    if n > buf.len() / 5 {
        return Err(corrupt("vary count"));
    }
    let mut vary = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.name()?;
        let value = match r.u8()? {
            0 => None,
            1 => Some(r.text()?.to_string()),
            _ => return Err(corrupt("bad vary value")),
        };
        vary.push((name, value));
    }
    if r.at != buf.len() {
        return Err(corrupt("trailing bytes in meta block"));
    }
    Ok(Meta {
        key,
        status,
        fields: fields.into_boxed_slice(),
        freshness,
        vary,
    })
}

/// Creates the directory layout, or checks an existing one, and empties `tmp/`.
/// Makes `dir` ready and locks it (an exclusive lock on its marker file, held by the returned
/// file). A lock still held (e.g. by a store of this process that is shutting down) is
/// waited for up to `wait`.
fn prepare(dir: &Path, wait: Duration) -> Result<File> {
    let d = dir.display();
    fs::create_dir_all(dir).with_context(|| format!("cannot create the cache directory {d}"))?;
    let marker = dir.join(MARKER);
    match fs::read_to_string(&marker) {
        Ok(text) if text == MARKER_TEXT => {}
        Ok(_) => bail!(
            "{} is from another cache format; empty the directory {d} or choose another",
            marker.display()
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut entries = fs::read_dir(dir)
                .with_context(|| format!("cannot read the cache directory {d}"))?;
            if entries.next().is_some() {
                bail!(
                    "the cache directory {d} is not empty and holds no {MARKER} file: \
                     refusing to use a directory the edge did not create"
                );
            }
            fs::write(&marker, MARKER_TEXT)
                .with_context(|| format!("cannot write to the cache directory {d}"))?;
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", marker.display())),
    }
    let lock = File::open(&marker).with_context(|| format!("cannot open {}", marker.display()))?;
    let deadline = Instant::now() + wait;
    loop {
        match lock.try_lock() {
            Ok(()) => break,
            Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(fs::TryLockError::WouldBlock) => bail!(
                "the cache directory {d} is in use by another edge (its {MARKER} file is locked)"
            ),
            Err(fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", marker.display()))
            }
        }
    }
    let tmp = dir.join("tmp");
    fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    for entry in fs::read_dir(&tmp)
        .with_context(|| format!("cannot read {}", tmp.display()))?
        .flatten()
    {
        // Partial writes of a process that stopped before publishing them.
        let _ = fs::remove_file(entry.path());
    }
    for shard in 0..=0xffu32 {
        let p = dir.join("objects").join(format!("{shard:02x}"));
        fs::create_dir_all(&p).with_context(|| format!("cannot create {}", p.display()))?;
    }
    Ok(lock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::clock::SystemClock;
    use http::HeaderMap;

    struct Fixture {
        dir: tempfile::TempDir,
        metrics: Arc<Metrics>,
        purges: Arc<AtomicU64>,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture {
                dir: tempfile::tempdir().unwrap(),
                metrics: Arc::new(Metrics::new("t").unwrap()),
                purges: Arc::new(AtomicU64::new(0)),
            }
        }

        async fn open(&self, capacity: u64) -> DiskStore {
            let store = DiskStore::open(DiskOptions {
                dir: self.dir.path().join("cache"),
                capacity,
                policy: PolicyConfig::default(),
                clock: Arc::new(SystemClock),
                purges: self.purges.clone(),
                metrics: DiskMetrics::from(&self.metrics),
            })
            .unwrap();
            store.loaded().await;
            store
        }

        fn corrupt_count(&self) -> u64 {
            self.metrics
                .disk_errors
                .with_label_values(&["corrupt"])
                .get()
        }
    }

    fn key(p: &str) -> CacheKey {
        CacheKey {
            host: "h.test".into(),
            path: p.into(),
        }
    }

    fn body(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
            .collect()
    }

    fn entry(max_age: u64) -> Stored {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_str(&format!("max-age={max_age}")).unwrap(),
        );
        h.insert(http::header::ETAG, HeaderValue::from_static("\"v1\""));
        h.append("x-multi", HeaderValue::from_static("a"));
        h.append("x-multi", HeaderValue::from_static("b"));
        let now = SystemTime::now();
        let cfg = PolicyConfig::default();
        let f = Freshness::new(&cfg, StatusCode::OK, &h, now, now);
        let mut e = Stored::new(&cfg, StatusCode::OK, h, &[], f, Vec::new());
        e.vary = vec![(http::header::ACCEPT_ENCODING, Some("gzip".into()))];
        e
    }

    /// Splits a body into uneven chunks, as a network read would.
    fn chunks(b: &[u8]) -> Vec<Bytes> {
        b.chunks(70_001).map(Bytes::copy_from_slice).collect()
    }

    async fn put(store: &DiskStore, k: &CacheKey, b: &[u8]) -> bool {
        store.insert_fetched(k, &entry(600), chunks(b), 0).await
    }

    async fn collect(body: Body) -> Result<Vec<u8>, String> {
        body.collect()
            .await
            .map(|c| c.to_bytes().to_vec())
            .map_err(|e| e.to_string())
    }

    fn tally(m: &Metrics) -> ByteTally {
        m.tally("cache")
    }

    #[tokio::test]
    async fn round_trip_keeps_headers_freshness_vary_and_body() {
        let fx = Fixture::new();
        let store = fx.open(64 << 20).await;
        let b = body(300_000, 1);
        assert!(put(&store, &key("/a"), &b).await);
        let (got, promote) = store.get(&key("/a"), 1 << 30).await.unwrap();
        assert!(!promote, "the first disk hit does not promote");
        let want = entry(600);
        assert_eq!(got.body.bytes().unwrap().as_ref(), &b[..]);
        assert_eq!(got.fields(), want.fields());
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.freshness.lifetime, want.freshness.lifetime);
        assert!(got.freshness.has_validator);
        assert_eq!(got.vary, want.vary);
        // Bytes on disk cover preamble, meta, body and table, in whole allocation units.
        assert!(
            store.used_bytes() >= 300_000 + PREAMBLE,
            "{}",
            store.used_bytes()
        );
        assert_eq!(store.used_bytes() % ALLOCATION_UNIT, 0);
        assert_eq!(store.objects(), 1);
        // The first hit verified it: the second is served from a mapping, not promoted.
        let (_, promote) = store.get(&key("/a"), 1 << 30).await.unwrap();
        assert!(!promote);
        assert_eq!(mapped(&store).0, 1);
        assert!(store.get(&key("/other"), 1 << 30).await.is_none());
    }

    #[tokio::test]
    async fn a_body_read_into_a_buffer_is_promoted_at_its_second_disk_hit() {
        let fx = Fixture::new();
        let store = fx.open(64 << 20).await;
        let b = body(3 << 20, 4);
        assert!(put(&store, &key("/r"), &b).await);
        // The first hit reads a part only (a Range): the file stays unverified, not mapped.
        let (e, promote) = store.get(&key("/r"), 1 << 30).await.unwrap();
        assert!(!promote);
        let Payload::Disk(d) = &e.body else {
            panic!("a large unverified body streams from disk");
        };
        let part = collect(d.clone().stream(0, 1000, tally(&fx.metrics)));
        assert_eq!(part.await.unwrap(), &b[..1000]);
        // Its second hit: read whole into a buffer of its own, which the memory tier may take
        // (unless larger than the memory tier's object limit).
        let (_, promote) = store.get(&key("/r"), 1000).await.unwrap();
        assert!(
            !promote,
            "not when larger than the memory tier's object limit"
        );
        let (e, promote) = store.get(&key("/r"), 1 << 30).await.unwrap();
        assert!(promote);
        assert_eq!(e.body.bytes().unwrap().as_ref(), &b[..]);
        assert_eq!(mapped(&store).0, 0);
    }

    #[tokio::test]
    async fn a_restart_finds_every_object_and_its_age() {
        let fx = Fixture::new();
        let store = fx.open(64 << 20).await;
        for i in 0..20 {
            assert!(put(&store, &key(&format!("/o/{i}")), &body(5000 + i, i as u8)).await);
        }
        let before = store.get(&key("/o/3"), 0).await.unwrap().0;
        drop(store);
        let store = fx.open(64 << 20).await;
        assert_eq!(store.objects(), 20);
        for i in 0..20 {
            let (e, _) = store.get(&key(&format!("/o/{i}")), 0).await.unwrap();
            assert_eq!(
                e.body.bytes().unwrap().as_ref(),
                &body(5000 + i, i as u8)[..]
            );
        }
        let after = store.get(&key("/o/3"), 0).await.unwrap().0;
        assert_eq!(
            after.freshness, before.freshness,
            "Date/Age arithmetic survives"
        );
        assert!(fx.metrics.disk_index_load_seconds.get() > 0.0);
    }

    #[tokio::test]
    async fn torn_files_are_dropped_at_load_wherever_they_were_cut() {
        let fx = Fixture::new();
        let b = body(600_000, 7);
        let store = fx.open(64 << 20).await;
        assert!(put(&store, &key("/t"), &b).await);
        let path = store.file_of(&key("/t")).unwrap();
        drop(store);
        let full = fs::read(&path).unwrap();
        let meta_end = PREAMBLE as usize + (full.len() - 600_000 - 12 - PREAMBLE as usize);
        let cuts = [
            0,
            7,
            PREAMBLE as usize - 1,
            PREAMBLE as usize,
            meta_end - 3,
            meta_end,
            meta_end + 300_000,
            full.len() - 12,
            full.len() - 1,
        ];
        for cut in cuts {
            fs::write(&path, &full[..cut]).unwrap();
            let store = fx.open(64 << 20).await;
            assert_eq!(store.objects(), 0, "cut at {cut} of {}", full.len());
            assert!(!path.exists(), "the torn file is removed (cut at {cut})");
            assert!(store.get(&key("/t"), 1 << 30).await.is_none());
        }
        assert_eq!(fx.corrupt_count(), cuts.len() as u64);
        // An abandoned partial write in tmp/ is removed at start.
        let tmp = fx.dir.path().join("cache/tmp/00000000000000ff");
        fs::write(&tmp, b"partial").unwrap();
        let _store = fx.open(64 << 20).await;
        assert!(!tmp.exists());
    }

    #[tokio::test]
    async fn a_flipped_byte_is_never_served() {
        let fx = Fixture::new();
        let store = fx.open(64 << 20).await;
        let small = body(100_000, 3);
        let large = body(9 * BLOCK as usize + 1000, 4);
        assert!(large.len() as u64 > READ_WHOLE);
        assert!(put(&store, &key("/small"), &small).await);
        assert!(put(&store, &key("/large"), &large).await);
        // Flip one body byte in each file.
        for (k, at) in [("/small", 5000u64), ("/large", 2 * BLOCK + 17)] {
            let path = store.file_of(&key(k)).unwrap();
            let mut bytes = fs::read(&path).unwrap();
            let body_start = bytes.len() as u64
                - (if k == "/small" {
                    100_000
                } else {
                    large.len() as u64
                })
                - 4 * blocks(if k == "/small" {
                    100_000
                } else {
                    large.len() as u64
                });
            bytes[(body_start + at) as usize] ^= 0x40;
            fs::write(&path, bytes).unwrap();
        }
        // Small: read whole, checked, refused, dropped.
        assert!(store.get(&key("/small"), 1 << 30).await.is_none());
        assert!(store.file_of(&key("/small")).is_none());
        // Large: streamed; the blocks before the bad one are served, then the body fails.
        let (e, _) = store.get(&key("/large"), 0).await.unwrap();
        let Payload::Disk(d) = &e.body else {
            panic!("a large body streams from disk");
        };
        assert_eq!(d.len(), large.len() as u64);
        let ok = collect(d.clone().stream(0, BLOCK + 10, tally(&fx.metrics)))
            .await
            .unwrap();
        assert_eq!(
            ok,
            &large[..BLOCK as usize + 10],
            "verified blocks are served"
        );
        let ranged = collect(d.clone().stream(BLOCK - 5, BLOCK + 5, tally(&fx.metrics)))
            .await
            .unwrap();
        assert_eq!(ranged, &large[BLOCK as usize - 5..BLOCK as usize + 5]);
        let err = collect(d.clone().stream(0, d.len(), tally(&fx.metrics))).await;
        assert!(err.unwrap_err().contains("checksum"));
        assert!(store.get(&key("/large"), 0).await.is_none(), "dropped");
        assert_eq!(fx.corrupt_count(), 2);
        assert_eq!(store.objects(), 0);
    }

    fn verified(store: &DiskStore, k: &CacheKey) -> bool {
        lock(&store.inner.index)
            .map
            .get(k)
            .is_some_and(|s| s.verified)
    }

    fn flip_body_byte(path: &Path, body_len: u64, at: u64) {
        let mut bytes = fs::read(path).unwrap();
        let body_start = bytes.len() as u64 - body_len - 4 * blocks(body_len);
        bytes[(body_start + at) as usize] ^= 0x40;
        fs::write(path, bytes).unwrap();
    }

    #[tokio::test]
    async fn the_first_read_after_a_write_or_a_start_verifies_the_body() {
        let fx = Fixture::new();
        let store = fx.open(64 << 20).await;
        let b = body(600_000, 5);
        assert!(put(&store, &key("/v"), &b).await);
        assert!(!verified(&store, &key("/v")), "written is not verified");
        let (e, _) = store.get(&key("/v"), 0).await.unwrap();
        assert_eq!(e.body.bytes().unwrap().as_ref(), &b[..]);
        assert!(
            verified(&store, &key("/v")),
            "a whole checked read verifies"
        );
        let (e, _) = store.get(&key("/v"), 0).await.unwrap();
        assert_eq!(e.body.bytes().unwrap().as_ref(), &b[..]);
        // A verified file cut while the edge runs: the length check still finds it.
        assert!(put(&store, &key("/cut"), &b).await);
        assert!(store.get(&key("/cut"), 0).await.is_some());
        let cut = store.file_of(&key("/cut")).unwrap();
        let f = OpenOptions::new().write(true).open(&cut).unwrap();
        f.set_len(f.metadata().unwrap().len() - 100).unwrap();
        drop(f);
        assert!(store.get(&key("/cut"), 0).await.is_none());
        assert_eq!(fx.corrupt_count(), 1);
        // Changed while the edge was stopped: the mark is gone and the first read finds it.
        let path = store.file_of(&key("/v")).unwrap();
        drop(store);
        flip_body_byte(&path, b.len() as u64, 400_000);
        let store = fx.open(64 << 20).await;
        assert!(!verified(&store, &key("/v")));
        assert!(store.get(&key("/v"), 0).await.is_none(), "never served");
        assert_eq!(fx.corrupt_count(), 2);
        assert!(!path.exists());
        // A new version of a verified key starts unverified.
        assert!(put(&store, &key("/n"), b"one").await);
        store.get(&key("/n"), 0).await.unwrap();
        assert!(verified(&store, &key("/n")));
        assert!(put(&store, &key("/n"), b"two").await);
        assert!(!verified(&store, &key("/n")));
    }

    fn mapped(store: &DiskStore) -> (usize, u64) {
        let maps = lock(&store.inner.maps);
        (maps.by_seq.len(), maps.bytes)
    }

    #[tokio::test]
    async fn verified_files_are_mapped_and_unmapped_when_removed() {
        let fx = Fixture::new();
        let store = fx.open(64 << 20).await;
        let b = body(3 << 20, 9);
        assert!(put(&store, &key("/m"), &b).await);
        // The first read verifies (block by block: larger than READ_WHOLE), the second maps.
        let (e, _) = store.get(&key("/m"), 0).await.unwrap();
        let Payload::Disk(d) = &e.body else {
            panic!("an unverified large body streams from disk");
        };
        let all = collect(d.clone().stream(0, d.len(), tally(&fx.metrics)));
        assert_eq!(all.await.unwrap(), b);
        assert!(verified(&store, &key("/m")));
        assert_eq!(mapped(&store), (0, 0));
        for _ in 0..3 {
            let (e, promote) = store.get(&key("/m"), 0).await.unwrap();
            assert!(!promote);
            assert_eq!(e.body.bytes().unwrap().as_ref(), &b[..]);
            assert_eq!(e.status, StatusCode::OK);
            assert_eq!(mapped(&store), (1, b.len() as u64));
        }
        // Never promoted, however often it is hit: the memory tier never holds a mapping.
        for _ in 0..3 {
            let (e, promote) = store.get(&key("/m"), 16 << 20).await.unwrap();
            assert!(!promote, "a mapped body is not promoted");
            assert_eq!(e.body.bytes().unwrap().as_ref(), &b[..]);
        }
        // A new version and a purge both drop the mapping of the file they remove.
        assert!(put(&store, &key("/m"), b"new").await);
        assert_eq!(mapped(&store), (0, 0));
        for _ in 0..2 {
            store.get(&key("/m"), 0).await.unwrap();
        }
        assert_eq!(mapped(&store), (1, 3));
        assert_eq!(store.purge("/m", false).await, 1);
        assert_eq!(mapped(&store), (0, 0));
        assert!(store.get(&key("/m"), 0).await.is_none());
    }

    #[tokio::test]
    async fn mappings_stay_within_their_byte_bound() {
        let fx = Fixture::new();
        let store = fx.open(1 << 30).await;
        let n = (MAP_BYTES / (1 << 20)) as usize + 8;
        let b = body(1 << 20, 3);
        for i in 0..n {
            let k = key(&format!("/b/{i}"));
            assert!(put(&store, &k, &b).await);
            for _ in 0..2 {
                store.get(&k, 0).await.unwrap();
            }
        }
        let (files, bytes) = mapped(&store);
        assert_eq!(bytes, MAP_BYTES);
        assert_eq!(files as u64, MAP_BYTES >> 20);
        // The oldest went first.
        assert!(!lock(&store.inner.maps)
            .by_seq
            .contains_key(&lock(&store.inner.index).map.get(&key("/b/0")).unwrap().seq));
    }

    #[test]
    fn a_directory_in_use_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let held = prepare(dir.path(), LOCK_WAIT).unwrap();
        let err = prepare(dir.path(), Duration::from_millis(100))
            .unwrap_err()
            .to_string();
        assert!(err.contains("in use by another edge"), "{err}");
        drop(held);
        prepare(dir.path(), Duration::ZERO).expect("free once the holder is gone");
    }

    #[tokio::test]
    async fn a_streamed_body_is_verified_only_once_read_to_its_end() {
        let fx = Fixture::new();
        let store = fx.open(64 << 20).await;
        let large = body(9 * BLOCK as usize + 7, 6);
        assert!(put(&store, &key("/l"), &large).await);
        let (e, _) = store.get(&key("/l"), 0).await.unwrap();
        let Payload::Disk(d) = &e.body else {
            panic!("a large body streams from disk");
        };
        let part = collect(d.clone().stream(0, BLOCK * 3, tally(&fx.metrics)))
            .await
            .unwrap();
        assert_eq!(part, &large[..3 * BLOCK as usize]);
        assert!(!verified(&store, &key("/l")), "a part does not verify");
        let all = collect(d.clone().stream(0, d.len(), tally(&fx.metrics)))
            .await
            .unwrap();
        assert_eq!(all, large);
        assert!(verified(&store, &key("/l")));
        // Verified: the next read maps it, and a range is a slice of the mapping.
        let (e, _) = store.get(&key("/l"), 0).await.unwrap();
        let Payload::Memory(m) = &e.body else {
            panic!("a verified body is mapped");
        };
        let (from, to) = (BLOCK as usize - 3, BLOCK as usize + 3);
        assert_eq!(m.slice(from..to), &large[from..to]);
    }

    #[test]
    fn buffers_are_recycled_and_exact_when_asked() {
        let len = 3 * POOL_MIN + 5;
        let first = Pooled::take(len, true);
        assert_eq!(first.buf.capacity(), len);
        let at = first.buf.as_ptr();
        drop(first.into_bytes());
        // Other tests share the pool: look for the buffer among what it holds.
        assert!(lock(&POOL).iter().any(|b| b.as_ptr() == at));
        let again = Pooled::take(len - 10, false);
        assert!(again.buf.capacity() >= len - 10);
        assert_eq!(again.as_ref().len(), len - 10);
        let exact = Pooled::take(len - 10, true);
        assert_eq!(exact.buf.capacity(), len - 10, "exact: no slack");
        let small = Pooled::take(100, false).into_bytes();
        assert_eq!(small.len(), 100);
        let idle: usize = lock(&POOL).iter().map(|b| b.capacity()).sum();
        assert!(idle <= POOL_BYTES);
    }

    #[tokio::test]
    async fn eviction_keeps_bytes_within_capacity_in_lru_order() {
        let fx = Fixture::new();
        let store = fx.open(1 << 20).await;
        for i in 0..4 {
            assert!(put(&store, &key(&format!("/e/{i}")), &body(200_000, 1)).await);
        }
        // /e/0 used again: /e/1 is now the least recently used.
        assert!(store.get(&key("/e/0"), 0).await.is_some());
        for i in 4..8 {
            assert!(put(&store, &key(&format!("/e/{i}")), &body(200_000, 1)).await);
            assert!(store.used_bytes() <= 1 << 20, "{}", store.used_bytes());
        }
        assert!(store.get(&key("/e/1"), 0).await.is_none());
        assert!(store.get(&key("/e/0"), 0).await.is_some());
        assert!(store.get(&key("/e/7"), 0).await.is_some());
        assert!(fx.metrics.disk_evictions.get() >= 3);
        let files = fs::read_dir(fx.dir.path().join("cache/objects"))
            .unwrap()
            .flatten()
            .map(|d| fs::read_dir(d.path()).unwrap().count())
            .sum::<usize>();
        assert_eq!(files, store.objects(), "evicted files are deleted");
        // Larger than the whole tier: not written.
        assert!(!put(&store, &key("/huge"), &body(2 << 20, 1)).await);
    }

    #[tokio::test]
    async fn purges_and_overlapping_fetches_do_not_come_back() {
        let fx = Fixture::new();
        let store = fx.open(64 << 20).await;
        for p in ["/v/a/1", "/v/a/2", "/v/b/1"] {
            assert!(put(&store, &key(p), b"x").await);
        }
        assert_eq!(store.purge("/v/a/", true).await, 2);
        assert_eq!(store.purge("/v/b/1", false).await, 1);
        // A fetch that started before a purge (generation 0) and lands after it is not kept.
        fx.purges.fetch_add(1, Ordering::SeqCst);
        assert!(
            !store
                .insert_fetched(&key("/v/a/3"), &entry(60), chunks(b"y"), 0)
                .await
        );
        drop(store);
        let store = fx.open(64 << 20).await;
        assert_eq!(
            store.objects(),
            0,
            "purged objects stay purged after a restart"
        );
        // A newer version replaces the file of the older one.
        assert!(
            store
                .insert_fetched(&key("/r"), &entry(60), chunks(b"old"), 1)
                .await
        );
        let old = store.file_of(&key("/r")).unwrap();
        assert!(
            store
                .insert_fetched(&key("/r"), &entry(60), chunks(b"new"), 1)
                .await
        );
        assert!(!old.exists());
        let (e, _) = store.get(&key("/r"), 0).await.unwrap();
        assert_eq!(e.body.bytes().unwrap().as_ref(), b"new");
    }

    #[tokio::test]
    async fn write_errors_suspend_writes_and_count() {
        let fx = Fixture::new();
        let store = fx.open(64 << 20).await;
        // tmp/ replaced by a file: every write fails (ENOTDIR), as on a full or failing disk;
        // root ignores permission bits, so this is how a test can make writes fail.
        let tmp = fx.dir.path().join("cache/tmp");
        fs::remove_dir_all(&tmp).unwrap();
        fs::write(&tmp, b"not a directory").unwrap();
        assert!(!put(&store, &key("/f"), b"x").await);
        assert!(store.writes_suspended());
        assert_eq!(
            fx.metrics.disk_errors.with_label_values(&["write"]).get(),
            1
        );
        // While suspended, nothing is attempted.
        assert!(!put(&store, &key("/g"), b"x").await);
        assert_eq!(
            fx.metrics.disk_errors.with_label_values(&["write"]).get(),
            1
        );
    }

    #[test]
    fn a_foreign_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("precious.txt"), b"data").unwrap();
        let err = prepare(dir.path(), LOCK_WAIT).unwrap_err().to_string();
        assert!(err.contains("not empty"), "{err}");
        assert!(dir.path().join("precious.txt").exists());
    }

    #[test]
    fn meta_decoding_rejects_garbage_without_panicking() {
        let e = entry(60);
        let meta = encode_meta(&key("/m"), &e);
        let m = decode_meta(&meta).unwrap();
        assert_eq!(*m.key.path, *"/m");
        for cut in 0..meta.len() {
            assert!(decode_meta(&meta[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = meta.clone();
        bad[0] = 9;
        assert!(decode_meta(&bad).is_err());
        // A huge field count is refused before any allocation.
        let mut r = meta.clone();
        let at = 1 + 4 + 6 + 4 + 2 + 2 + 40 + 1;
        r[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_meta(&r).is_err());
    }

    #[test]
    fn block_table_matches_blockwise_crc_whatever_the_chunking() {
        let b = body(BLOCK as usize * 2 + 5, 9);
        let want: Vec<u32> = b.chunks(BLOCK as usize).map(crc32fast::hash).collect();
        for size in [1usize, 999, BLOCK as usize, b.len()] {
            let c: Vec<Bytes> = b.chunks(size).map(Bytes::copy_from_slice).collect();
            assert_eq!(block_table(&c, b.len() as u64), want, "chunks of {size}");
        }
        assert!(block_table(&[], 0).is_empty());
    }
}
