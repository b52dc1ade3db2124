//! Native core of the Kaa 0.9.0 PahoMqtt log appender.
//!
//! The Java plugin classes hand each log pack to [`bridge`]; everything that decides
//! behaviour lives in plain Rust below it, testable without a JVM:
//! [`config`] decodes the appender configuration, [`decode`] turns Avro records into the
//! payloads the original appender published (one file per job: `compile` for the schema,
//! `walk` for each record, `java_map` and `java_number` for Java's map order and numbers),
//! `json_text` writes strings and integers as Jackson 1.9 does for [`decode`] and [`header`],
//! [`connection`] keeps pooled MQTT connections, [`header`] and [`payload`] shape each
//! message, [`delivery`] ties every publish to its ack and answers each pack exactly once,
//! [`status`] writes the liveness message of `statusTopic`, and [`appender`] puts them
//! together; `supervise` keeps background tasks going after a panic.

#![deny(unsafe_code)]

pub(crate) mod appender;
pub(crate) mod binary;
#[allow(unsafe_code)]
mod bridge;
pub mod config;
pub mod connection;
pub mod decode;
pub(crate) mod delivery;
pub mod header;
mod identity;
mod json_text;
pub(crate) mod metrics;
pub mod payload;
pub(crate) mod protocol;
pub mod status;
mod supervise;
pub(crate) mod tls;
pub(crate) mod topic;
