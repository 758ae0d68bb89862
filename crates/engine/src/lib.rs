//! kinesin-engine: streams, shards, hash ranges, sequence numbers, iterators and metadata.
//!
//! The engine speaks domain types ([`api`]) and AWS error codes ([`Error`]); it knows nothing
//! of HTTP, JSON or CBOR. Records live in the shared write-ahead log (`kinesin-log`), one log
//! queue per shard; metadata lives in redb (`meta`).

pub mod api;
pub mod api_ops;
mod engine;
pub mod error;
pub mod hashkey;
pub mod iam;
pub mod keyring;
mod meta;
pub mod names;
pub mod seqnum;
pub mod throttle;
mod token;

pub use engine::*;
pub use error::{Error, Result};
pub use kinesin_log::{BufferPool, Clock, Durability, SystemClock};
