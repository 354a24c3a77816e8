//! Integration tests: the `ctindex` binary against real servers started by
//! `scripts/stack` (see `support` for how they are found).

mod dashboards;
mod deploy;
mod ecs;
mod export;
mod faults;
mod follow;
mod help;
mod import;
mod inputs;
mod messages;
mod retention;
mod s3;
mod secrets;
mod secure;
mod sigma;
mod sigv4;
mod summary;
mod support;
mod sync;
mod verify;
