//! Helpers shared by the whole-stack tests in `tests/tests/`: starting the stack on free loopback
//! addresses and finding the external tools the interop tests need.
