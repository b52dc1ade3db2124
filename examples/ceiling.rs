//! The benchmark's ceiling (`scripts/bench`): a bare rumqttc publisher on one connection,
//! sending the same records as the appender, pre-encoded (Avro-JSON made once, before timing),
//! at the same QoS and with the same in-flight window (`scripts/bench` passes the appender's
//! automatic one: `INFLIGHT`, or `QOS2_INFLIGHT` at QoS 2, in src/protocol.rs). No decoding, no
//! JNI, no delivery tracking: what the appender could reach at best.
//!
//! Records go out in "packs" of `--pack-size`; at most `--inflight-packs` packs are
//! unconfirmed at a time (the Java driver bounds ours the same way), and a pack's latency runs
//! from its first publish to the ack of its last record. Acks are matched to packs by count:
//! one connection, and Mosquitto acks in order. With `--rate`, the measured packs start on a
//! schedule of that many records per second, as the Java driver paces ours ("half" rows), so
//! their latency is the bare publisher's below saturation.
//!
//! With `--mqtt-version 5` it speaks MQTT 5, whose window is also the broker's receive maximum
//! (rumqttc takes the smaller), as the appender's automatic one is, and each message carries
//! what the appender's MQTT 5 messages carry: the content type and the Kaa header as user
//! properties, with values as long as those of the benchmark's packs (without them the bare
//! publisher ran 1.28 times as fast at QoS 0, 1.24 at QoS 1).
//!
//! ```text
//! ceiling --port P --topic T --qos Q --schema F.avsc --records F.bin --count N
//!         [--warmup W] [--pack-size 100] [--inflight-packs 64] [--inflight 20]
//!         [--mqtt-version 3.1.1|5] [--rate R] [--max-seconds 60] --result FILE
//! ```
//! The result is one line of JSON (see `scripts/bench`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use kaa_mqtt_appender::decode::LogSchema;
use rumqttc::{Event, MqttOptions, Outgoing, Packet, QoS};

#[path = "common/mod.rs"]
mod common;
use common::*;

/// A bare rumqttc client of either MQTT version: where publishes are queued.
enum Client {
    V4(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

/// Its event loop: what writes them and reads the broker's answers.
enum Loop {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<rumqttc::v5::EventLoop>),
}

/// What the phase (and the connect) counts of the event loop's events.
enum Seen {
    /// The broker's CONNACK, with the receive maximum an MQTT 5 broker announced.
    ConnAck(Option<u16>),
    Written,
    PubAck,
    PubComp,
    Other,
}

/// Connects with clean session and `inflight` in flight at most; returns the client, its
/// event loop and its window: with MQTT 5 the broker's receive maximum where that is smaller.
async fn connect(
    v5: bool,
    port: u16,
    inflight: u16,
    cap: usize,
) -> Result<(Client, Loop, u16), String> {
    let id = format!("bench-ceiling-{}", std::process::id());
    let keep_alive = Duration::from_secs(10);
    let (client, mut eventloop) = if v5 {
        let mut options = rumqttc::v5::MqttOptions::new(id, "127.0.0.1", port);
        options
            .set_keep_alive(keep_alive)
            .set_outgoing_inflight_upper_limit(inflight)
            .set_clean_start(true)
            .set_max_packet_size(Some(64 * 1024));
        let (client, eventloop) = rumqttc::v5::AsyncClient::new(options, cap);
        (Client::V5(client), Loop::V5(Box::new(eventloop)))
    } else {
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options
            .set_keep_alive(keep_alive)
            .set_inflight(inflight)
            .set_clean_session(true)
            .set_max_packet_size(64 * 1024, 268_435_455);
        let (client, eventloop) = rumqttc::AsyncClient::new(options, cap);
        (Client::V4(client), Loop::V4(Box::new(eventloop)))
    };
    let connect_by = Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(connect_by.into(), eventloop.next()).await {
            Ok(Ok(Seen::ConnAck(receive_max))) => {
                let window = receive_max.map_or(inflight, |r| r.min(inflight));
                return Ok((client, eventloop, window));
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("cannot connect: {e}")),
            Err(_) => return Err("no CONNACK within 10 s".to_string()),
        }
    }
}

/// The benchmark's endpoint key and application token (the Java driver's), as the appender
/// sends them in MQTT 5 user properties.
const ENDPOINT_KEY_HASH: &str = "2y8L4jWQbHSlPbUZ3mPBQ1TU3ds=";
const APPLICATION_TOKEN: &str = "12345678901234567890";

impl Client {
    /// Queues the `index`th message of a pack.
    fn queue(&self, topic: &str, qos: QoS, payload: Vec<u8>, index: u64) -> Result<(), String> {
        match self {
            Client::V4(client) => client
                .try_publish(topic, qos, false, payload)
                .map_err(|e| e.to_string()),
            Client::V5(client) => {
                use rumqttc::v5::mqttbytes::QoS as QoS5;
                let qos = match qos {
                    QoS::AtMostOnce => QoS5::AtMostOnce,
                    QoS::AtLeastOnce => QoS5::AtLeastOnce,
                    QoS::ExactlyOnce => QoS5::ExactlyOnce,
                };
                // The appender's, in its order; the digest stands for one of the record's bytes.
                let properties = rumqttc::v5::mqttbytes::v5::PublishProperties {
                    content_type: Some("application/json".to_string()),
                    user_properties: vec![
                        ("endpointKeyHash".into(), ENDPOINT_KEY_HASH.into()),
                        ("applicationToken".into(), APPLICATION_TOKEN.into()),
                        ("logSchemaVersion".into(), "1".into()),
                        ("timestamp".into(), "1765100000000".into()),
                        ("recordIndex".into(), index.to_string()),
                        (
                            "recordDigest".into(),
                            format!("{:016x}", payload.len() as u64 * index),
                        ),
                    ],
                    ..Default::default()
                };
                client
                    .try_publish_with_properties(topic, qos, false, payload, properties)
                    .map_err(|e| e.to_string())
            }
        }
        .map_err(|e| format!("rumqttc refused a publish: {e}"))
    }

    /// Lets the DISCONNECT go out; the broker has acked everything counted already.
    async fn disconnect(&self, eventloop: &mut Loop) {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = match self {
                Client::V4(client) => client.disconnect().await.map_err(drop),
                Client::V5(client) => client.disconnect().await.map_err(drop),
            };
            while eventloop.next().await.is_ok() {}
        })
        .await;
    }
}

impl Loop {
    async fn next(&mut self) -> Result<Seen, String> {
        use rumqttc::v5::{Event as Event5, Incoming as Packet5};
        Ok(match self {
            Loop::V4(l) => match l.poll().await.map_err(|e| e.to_string())? {
                Event::Incoming(Packet::ConnAck(_)) => Seen::ConnAck(None),
                Event::Outgoing(Outgoing::Publish(_)) => Seen::Written,
                Event::Incoming(Packet::PubAck(_)) => Seen::PubAck,
                Event::Incoming(Packet::PubComp(_)) => Seen::PubComp,
                _ => Seen::Other,
            },
            Loop::V5(l) => match l.poll().await.map_err(|e| e.to_string())? {
                Event5::Incoming(Packet5::ConnAck(c)) => {
                    Seen::ConnAck(c.properties.and_then(|p| p.receive_max))
                }
                Event5::Outgoing(Outgoing::Publish(_)) => Seen::Written,
                Event5::Incoming(Packet5::PubAck(_)) => Seen::PubAck,
                Event5::Incoming(Packet5::PubComp(_)) => Seen::PubComp,
                _ => Seen::Other,
            },
        })
    }
}

struct Phase {
    /// Records of packs whose every record was acked (the measured work).
    records: u64,
    /// Every record acked, whole packs or not (what the subscriber must have seen).
    acked: u64,
    seconds: f64,
    latencies_ns: Vec<u64>,
    complete: bool,
    max_gap: Duration,
    /// Paced: how late the latest pack started against its schedule (the window was full).
    max_behind: Duration,
}

/// Publishes `packs` packs and waits for their acks, until `deadline` (and a short grace for
/// what was queued by then). One task does everything: it queues the first `inflight_packs`
/// packs with `try_publish` (the channel holds them all), then one more each time a pack is
/// fully acked, and polls the event loop in between. No cross-thread hand-off, no per-record
/// timer: as lean as a rumqttc publisher gets. Paced (`pace`: the time between two packs'
/// starts), a pack is queued when it is due and the window has room instead.
#[allow(clippy::too_many_arguments)]
async fn phase(
    client: &Client,
    eventloop: &mut Loop,
    payloads: &[Vec<u8>],
    topic: &str,
    qos: QoS,
    packs: u64,
    pack_size: u64,
    inflight_packs: usize,
    pace: Option<Duration>,
    deadline: Instant,
) -> Result<Phase, String> {
    let started = Instant::now();
    let mut next_payload = 0usize;
    let mut queued_packs = 0u64;
    let mut starts: VecDeque<Instant> = VecDeque::with_capacity(inflight_packs);
    let mut queue_pack = |starts: &mut VecDeque<Instant>| -> Result<(), String> {
        starts.push_back(Instant::now());
        for index in 0..pack_size {
            let payload = payloads[next_payload].clone();
            next_payload = (next_payload + 1) % payloads.len();
            client.queue(topic, qos, payload, index)?;
        }
        Ok(())
    };
    while pace.is_none() && queued_packs < packs && starts.len() < inflight_packs {
        queue_pack(&mut starts)?;
        queued_packs += 1;
    }
    let mut due = started;
    let mut max_behind = Duration::ZERO;

    let mut acked: u64 = 0;
    let mut in_pack: u64 = 0;
    let mut latencies = Vec::with_capacity(packs as usize);
    let mut last = started;
    // The longest wait for an ack: a stall (broker, scheduler) shows here, not in the rate.
    let mut last_ack = started;
    let mut max_gap = Duration::ZERO;
    let give_up = tokio::time::sleep_until((deadline + Duration::from_secs(5)).into());
    tokio::pin!(give_up);
    while acked < queued_packs * pack_size
        || (pace.is_some() && queued_packs < packs && due < deadline)
    {
        let room = queued_packs < packs && starts.len() < inflight_packs && due < deadline;
        let polled = tokio::select! {
            p = eventloop.next() => p,
            _ = tokio::time::sleep_until(due.into()), if pace.is_some() && room => {
                max_behind = max_behind.max(Instant::now() - due);
                queue_pack(&mut starts)?;
                queued_packs += 1;
                due += pace.unwrap_or_default();
                continue;
            }
            _ = &mut give_up => break,
        };
        let confirmed = match polled {
            Ok(Seen::Written) => qos == QoS::AtMostOnce,
            Ok(Seen::PubAck) => qos == QoS::AtLeastOnce,
            Ok(Seen::PubComp) => qos == QoS::ExactlyOnce,
            Ok(Seen::ConnAck(_) | Seen::Other) => false,
            Err(e) => return Err(format!("connection failed: {e}")),
        };
        if confirmed {
            let now = Instant::now();
            max_gap = max_gap.max(now - last_ack);
            last_ack = now;
            acked += 1;
            in_pack += 1;
            if in_pack == pack_size {
                in_pack = 0;
                let at = Instant::now();
                let start = starts.pop_front().expect("a pack was queued");
                latencies.push((at - start).as_nanos() as u64);
                last = at;
                if pace.is_none() && queued_packs < packs && at < deadline {
                    queue_pack(&mut starts)?;
                    queued_packs += 1;
                }
            }
        }
    }
    Ok(Phase {
        records: latencies.len() as u64 * pack_size,
        acked,
        seconds: (last - started).as_secs_f64(),
        complete: acked >= packs * pack_size,
        latencies_ns: latencies,
        max_gap,
        max_behind,
    })
}

/// A two-way option: false for `off` (the default), true for `on`.
fn either(
    opts: &std::collections::HashMap<String, String>,
    key: &str,
    off: &str,
    on: &str,
) -> bool {
    match opts.get(key).map(String::as_str) {
        None => false,
        Some(v) if v == off => false,
        Some(v) if v == on => true,
        Some(other) => {
            eprintln!("--{key} is {off} or {on}, not {other}");
            std::process::exit(2)
        }
    }
}

fn percentile_ms(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1e6
}

fn main() {
    let opts = args();
    let port = num(&opts, "port", 1883) as u16;
    let topic = need(&opts, "topic");
    let q = num(&opts, "qos", 1);
    let qos = qos(q);
    let pack_size = num(&opts, "pack-size", 100u64).max(1);
    let count = num(&opts, "count", 100_000u64);
    let warmup = num(&opts, "warmup", 0u64);
    let inflight_packs = num(&opts, "inflight-packs", 64).max(1) as usize;
    let inflight = num(&opts, "inflight", 20).clamp(1, u64::from(u16::MAX)) as u16;
    let max = Duration::from_secs(num(&opts, "max-seconds", 60));
    let rate = num(&opts, "rate", 0u64);
    let pace = (rate > 0).then(|| Duration::from_secs_f64(pack_size as f64 / rate as f64));
    let result_path = need(&opts, "result");
    let v5 = either(&opts, "mqtt-version", "3.1.1", "5");

    let schema_text = std::fs::read_to_string(need(&opts, "schema")).expect("read schema");
    let schema = LogSchema::parse(&schema_text).expect("parse schema");
    let payloads: Vec<Vec<u8>> = read_frames(&need(&opts, "records"))
        .iter()
        .map(|r| {
            let mut out = Vec::new();
            schema.to_avro_json(r, &mut out).expect("decode record");
            out
        })
        .collect();

    // `current`: one thread drives the connection and queues the publishes, no hand-offs
    // between threads. `multi`: the same task on a 2-worker runtime, as the appender runs its
    // connections.
    let multi = either(&opts, "runtime", "current", "multi");
    let runtime = if multi {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
    .expect("tokio runtime");
    let body = async move {
        let cap = inflight_packs * pack_size as usize;
        let (client, mut eventloop, window) = connect(v5, port, inflight, cap).await?;
        let deadline = Instant::now() + max;
        let warm = phase(
            &client,
            &mut eventloop,
            &payloads,
            &topic,
            qos,
            warmup.div_ceil(pack_size),
            pack_size,
            inflight_packs,
            None,
            deadline,
        )
        .await?;
        let cpu_before = cpu_seconds();
        let writes_before = proc_io("syscw");
        let measured = phase(
            &client,
            &mut eventloop,
            &payloads,
            &topic,
            qos,
            count.div_ceil(pack_size),
            pack_size,
            inflight_packs,
            pace,
            deadline,
        )
        .await?;
        let writes = writes_before.zip(proc_io("syscw")).map(|(a, b)| b - a);
        client.disconnect(&mut eventloop).await;
        let cpu = cpu_seconds() - cpu_before;
        Ok::<_, String>((warm, measured, cpu, writes, window))
    };
    let outcome = if multi {
        runtime.block_on(async { tokio::spawn(body).await.expect("publisher task") })
    } else {
        runtime.block_on(body)
    };

    let json = match outcome {
        Ok((warm, mut measured, cpu, writes, window)) => {
            measured.latencies_ns.sort_unstable();
            serde_json::json!({
                "mode": "ceiling",
                "qos": q,
                "records": measured.records,
                "seconds": measured.seconds,
                "records_per_s": measured.records as f64 / measured.seconds.max(1e-9),
                "p50_ms": percentile_ms(&measured.latencies_ns, 50.0),
                "p99_ms": percentile_ms(&measured.latencies_ns, 99.0),
                "peak_rss_kib": peak_rss_kib(),
                "cpu_seconds": cpu,
                "cpu_us_per_record": (measured.records > 0).then(|| cpu * 1e6 / measured.records as f64),
                // Write system calls of the measured phase (one thread: the socket's), and the
                // messages it published meanwhile.
                "write_calls": writes,
                "measured_messages": measured.acked,
                "warmup_records": warm.records,
                "confirmed": warm.acked + measured.acked,
                "confirmed_messages": warm.acked + measured.acked,
                "failed_packs": 0,
                "complete": warm.complete && measured.complete,
                "max_answer_gap_ms": warm.max_gap.max(measured.max_gap).as_secs_f64() * 1e3,
                "inflight": window,
                "mqtt_version": if v5 { "5" } else { "3.1.1" },
                "inflight_packs": inflight_packs,
                "pack_size": pack_size,
                "threads": 1,
                "paced_records_per_s": (rate > 0).then_some(rate),
                "max_behind_schedule_ms": pace.map(|_| measured.max_behind.as_secs_f64() * 1e3),
                "error": null,
            })
        }
        Err(e) => serde_json::json!({
            "mode": "ceiling",
            "qos": q,
            "records": 0,
            "confirmed": 0,
            "confirmed_messages": 0,
            "error": e,
        }),
    };
    std::fs::write(&result_path, format!("{json}\n")).expect("write result");
    if json["error"].is_string() {
        eprintln!("ceiling: {}", json["error"]);
        std::process::exit(1);
    }
}
