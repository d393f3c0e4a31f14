//! The MPD crate's integration tests, one binary: parsing errors, hand-written fixtures,
//! the lenient repairs, round trips, schema validation of what the writer produces, and property tests.

mod errors;
mod fixtures;
mod lenient;
mod models;
mod properties;
mod roundtrip;
mod schema;
