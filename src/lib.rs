//! Native core of the Kaa 0.9.0 PahoMqtt log appender.
//!
//! The Java plugin classes hand each log pack to `bridge`; everything that decides
//! behaviour lives in plain Rust below it, testable without a JVM (ARCHITECTURE.md follows one
//! pack through them):
//! - `bridge`: the JNI boundary, the only module allowed `unsafe_code`, and JNI types; the callback
//!   dispatcher thread, and `answer_lag`: how late its answers are, past which packs are
//!   answered at once.
//! - `appender`: one configured appender: a pack's records to messages, the deadline sweep,
//!   close and its drain.
//! - [`config`]: the configuration from Kaa's raw Avro bytes, validated with field names;
//!   `identity` resolves `{hostname}`, `{pid}` and `{random}`; `tls` builds the rustls client.
//! - [`decode`]: Avro binary to the Avro-JSON text Avro 1.7.5 wrote, or plain JSON (`compile`
//!   for the schema, `walk` for each record, `java_map` and `java_number` for Java's map order
//!   and numbers, `exact` for the big integers of its digit loop); `json_text` writes JSON
//!   strings and integers as Jackson 1.9 does, for it and [`header`]; `binary` reads Avro's
//!   varints.
//! - [`header`] (Kaa's record header), [`payload`] (the messages of a pack in the configured
//!   format), `topic` (topic templates) and [`status`] (the liveness message): what is published.
//! - [`connection`]: pooled connections, one driver task each (reconnects, failover, client id
//!   takeovers); `protocol`: the MQTT client, the only module that names rumqttc; `reason`:
//!   the codes a broker answers with, said in the MQTT specifications' words.
//! - `delivery`: ties every publish to its ack and answers each pack exactly once;
//!   `fair_queue` lets each endpoint's waiting packs take the window in turn;
//!   `packet_limit` learns from a broker's closes the largest packet it takes, where it does
//!   not say; `refused_topics` keeps the topics a broker refused lately (told by an MQTT 5
//!   reason code, or learned from its closes under MQTT 3.1.1), the endpoints whose records had
//!   several refused, and the appenders whose new topics all were, so that packs to them fail
//!   unpublished.
//! - `metrics`: the figures of JMX and the summary line; `node_memory`: the memory the node may
//!   use, which `maxPendingRecords` is weighed against at init; `supervise` keeps background tasks
//!   going after a panic; `log_budget` keeps the lines an endpoint's packs can repeat to ten a
//!   minute, and shows text from outside (endpoint keys, topics) short and on one line; `utc`
//!   converts seconds since 1970 to dates and back (status times, certificate validity).
//! - `fault`: panics on request at named places, only in a library built for the tests with the
//!   `fault-injection` feature.
//! - `test_log` (tests only): the test process's one logger, capturing what tests assert on.

#![deny(unsafe_code)]

mod answer_lag;
pub(crate) mod appender;
pub(crate) mod binary;
#[allow(unsafe_code)]
mod bridge;
pub mod config;
pub mod connection;
pub mod decode;
pub(crate) mod delivery;
mod fair_queue;
mod fault;
pub mod header;
mod identity;
mod json_text;
mod log_budget;
pub(crate) mod metrics;
mod node_memory;
mod packet_limit;
pub mod payload;
pub(crate) mod protocol;
mod reason;
mod refused_topics;
pub mod status;
mod supervise;
#[cfg(test)]
mod test_log;
pub(crate) mod tls;
pub(crate) mod topic;
mod utc;
