//! Rust emitter library.
