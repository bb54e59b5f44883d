//! The `--history GLOB=SIZE[/TTL]` rules (declared in `options`, parsed in `resolve`). The
//! rule itself, its parsing, checks and matching, is sio-wire's
//! ([`sio_wire::history::spec`]): `sio-emit --history` reads the same rules the same way.
pub use sio_wire::history::HistorySpec;
