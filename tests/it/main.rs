//! Integration tests: the `ctindex` binary against real servers started by
//! `scripts/stack` (see `support` for how they are found).

mod dashboards;
mod export;
mod faults;
mod import;
mod retention;
mod s3;
mod secrets;
mod secure;
mod sigv4;
mod support;
mod sync;
