//! ctindex loads AWS CloudTrail logs into Elasticsearch or OpenSearch.
//!
//! # Layout
//! Data flows one way, one module per stage:
//! - [`source`]: where files come from (local folders and S3; the CloudTrail
//!   layout and the selection applied to it; listing and reading);
//! - [`decode`]: gzip and the container shapes, bytes to events;
//! - [`transform`]: id, field filter ([`filter`]), classification
//!   ([`classify`]), the ECS fields ([`ecs`]), monthly index; [`normalize`]
//!   fits events to the template ([`fields`]: the one table of CloudTrail's
//!   top-level fields);
//! - [`sink`]: bulk encoding, the cluster connection, retries, the index template;
//!   [`export`]: the same events as lines in files;
//! - [`pipeline`]: the stage tasks and the bounded queues between them;
//!   [`follow`] feeds it the objects an SQS queue's notifications name;
//! - [`progress`] and [`dlq`]: counters, progress display, summary, dead letters.
//!
//! [`sync`] is the sync engine (state, lease, windows; the state itself is
//! [`state`]); [`run`] is the run that `import`, `sync` and `export` share
//! (signals, sources, connection, summary).
//!
//! Beside the data flow: [`dashboards`] (the saved objects for Kibana and
//! OpenSearch Dashboards, pure) and [`kibana`] (their import API). Both the
//! sink and Kibana talk HTTP through [`http`] (credentials, TLS, AWS SigV4,
//! errors explained); [`aws`] is the AWS configuration S3 and SigV4 share;
//! [`retry`] is the one retry policy of every call to the cluster, S3 and
//! Kibana; [`date`] is the calendar.
//!
//! [`cli`] is what the user typed, [`config`] what it resolves to, [`cmd`] one
//! file per subcommand. `main.rs` only maps the result to an exit code.
//!
//! # Layers
//! A module imports only modules of the layers below its own: never one
//! above, never another of its own layer, and so no two modules import each
//! other. `tests/layers.rs` checks this list against every `crate::` and
//! `super::` path (a command file of `src/cmd/` counts as a module):
//!
//! 1. `cmd`: the dispatch;
//! 2. `cmd/*`: one file per subcommand, thin (arguments in, library call,
//!    report out), none importing another;
//! 3. `run`: the run that import, sync and export share;
//! 4. `config`: the options resolved and checked;
//! 5. `cli`: every option as typed;
//! 6. `sync`, `follow`: the sync engine; the queue follow reads;
//! 7. `pipeline`: the stages and queues;
//! 8. `export`: the line outputs;
//! 9. `state`: the sync state;
//! 10. `sink`: the cluster output;
//! 11. `dashboards`, `kibana`, `verify`: saved objects and their API; trail integrity;
//! 12. `transform`: what happens to an event;
//! 13. `classify`, `ecs`, `filter`: its rules;
//! 14. `normalize`: fitting to the template;
//! 15. `decode`: bytes to events;
//! 16. `raw`: raw JSON text: the fast path's fields, the scanner;
//! 17. `source`: local folders and S3;
//! 18. `dlq`, `progress`: dead letters, counters, summary;
//! 19. `http`: the HTTP client;
//! 20. `aws`: the AWS configuration;
//! 21. `assets`, `buffers`, `date`, `fields`, `retry`: embedded files, buffer
//!     reuse, the calendar, CloudTrail's top-level fields, the retry policy.

mod assets;
mod aws;
mod buffers;
pub mod classify;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod dashboards;
pub mod date;
pub mod decode;
mod dlq;
pub mod ecs;
mod export;
pub mod fields;
pub mod filter;
mod follow;
mod http;
mod kibana;
pub mod normalize;
mod pipeline;
pub mod progress;
pub mod raw;
mod retry;
mod run;
mod sink;
pub mod source;
mod state;
mod sync;
pub mod transform;
pub mod verify;
