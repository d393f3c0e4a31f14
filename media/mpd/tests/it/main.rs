//! The MPD crate's integration tests, one binary: parsing errors, hand-written fixtures,
//! round trips, schema validation of what the writer produces, and property tests.

mod errors;
mod fixtures;
mod models;
mod properties;
mod roundtrip;
mod schema;
