//! The origin: serves packaged titles (VOD and live) over HTTP with validators, conditional GET,
//! Range and cache headers. It is the source of truth the edges revalidate against.
