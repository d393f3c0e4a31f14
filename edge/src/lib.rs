//! The edge: a caching reverse proxy in front of the origin (RFC 9111 freshness, revalidation,
//! request coalescing, stale serving, byte-bounded memory).
