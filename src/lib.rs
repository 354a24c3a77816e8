//! ctindex loads AWS CloudTrail logs into Elasticsearch or OpenSearch.
//!
//! # Layout
//! Data flows one way, one module per stage:
//! - [`source`]: where files come from (local folders and S3; the CloudTrail
//!   layout and the selection applied to it; listing and reading);
//! - [`decode`]: gzip and the container shapes, bytes to events;
//! - [`transform`]: id, field filter ([`filter`]), classification
//!   ([`classify`]), monthly index; [`normalize`] fits events to the template
//!   ([`fields`]: the one table of CloudTrail's top-level fields);
//! - [`sink`]: bulk encoding, the cluster connection, retries, the index template;
//! - [`pipeline`]: the stage tasks and the bounded queues between them;
//!   [`follow`] feeds it the objects an SQS queue's notifications name;
//! - [`progress`] and [`dlq`]: counters, progress display, summary, dead letters.
//!
//! Beside the data flow: [`dashboards`] (the saved objects for Kibana and
//! OpenSearch Dashboards, pure) and [`kibana`] (their import API). Both the
//! sink and Kibana talk HTTP through [`http`] (credentials, TLS, AWS SigV4,
//! errors explained); [`aws`] is the AWS configuration S3 and SigV4 share.
//!
//! [`cli`] is what the user typed, [`config`] what it resolves to, [`cmd`] one
//! file per subcommand. `main.rs` only maps the result to an exit code.

pub mod assets;
pub mod aws;
pub mod buffers;
pub mod classify;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod dashboards;
pub mod decode;
pub mod dlq;
pub mod export;
pub mod fields;
pub mod filter;
pub mod follow;
pub mod http;
pub mod kibana;
pub mod normalize;
pub mod pipeline;
pub mod progress;
pub mod raw;
pub mod sink;
pub mod source;
pub mod state;
pub mod transform;
