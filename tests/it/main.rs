//! Integration tests: the `ctindex` binary against real servers started by
//! `scripts/stack` (see `support` for how they are found).

mod import;
mod s3;
mod support;
