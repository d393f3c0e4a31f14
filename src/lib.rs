//! The `cdn` command's library: the subcommands that compose the crates into a running stack.
//!
//! Parts: [`stack`] (origin, three edges and the DNS router in one process, on loopback, with
//! generated configuration and optional TLS), [`up`] (`cdn up`: the stack left running, with
//! ready-to-paste commands), [`demo`] (`cdn demo`: the stack plus five players and a report),
//! [`watch`] (the stack's watch page: titles and live channels played in a browser).
//! The binary (`src/main.rs`) maps each subcommand to its crate and sets up logging.

pub mod demo;
pub mod stack;
pub mod up;
pub mod watch;
