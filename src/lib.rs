//! The `cdn` command's library: the whole stack in one process (`stack`), the guided demo
//! (`demo`), and the subcommands that compose the crates.

pub mod demo;
pub mod stack;
pub mod up;
