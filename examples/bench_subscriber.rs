//! The benchmark's subscriber (`scripts/bench`): counts the messages the broker delivers on one
//! topic, so no publisher can look fast by having its messages dropped.
//!
//! It subscribes at the publisher's QoS, writes `--ready` once the SUBACK is in, and counts
//! until `--stop` appears holding the publisher's confirmed count; then it waits for that many
//! messages (or for `--idle-ms` without one, or `--drain-seconds`), and writes a one-line JSON
//! result. Every wait is bounded, overall by `--max-seconds`.
//!
//! ```text
//! bench_subscriber --port P --topic T --qos Q --ready FILE --stop FILE --result FILE
//!                  [--max-seconds 600] [--drain-seconds 120] [--idle-ms 3000]
//! ```

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet};

#[path = "common/mod.rs"]
mod common;
use common::*;

fn main() {
    let opts = args();
    let port = num(&opts, "port", 1883) as u16;
    let topic = need(&opts, "topic");
    let q = qos(num(&opts, "qos", 1));
    let ready = PathBuf::from(need(&opts, "ready"));
    let stop = PathBuf::from(need(&opts, "stop"));
    let result = PathBuf::from(need(&opts, "result"));
    let max = Duration::from_secs(num(&opts, "max-seconds", 600));
    let drain = Duration::from_secs(num(&opts, "drain-seconds", 120));
    let idle = Duration::from_millis(num(&opts, "idle-ms", 3000));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let outcome = runtime.block_on(async move {
        let mut options = MqttOptions::new(
            format!("bench-sub-{}", std::process::id()),
            "127.0.0.1",
            port,
        );
        // Long: a broker far behind (two QoS 2 publishers, Mosquitto at ~300 µs per message)
        // answered a ping 30 s late, and the subscriber dropped with what it had not read.
        options
            .set_keep_alive(Duration::from_secs(300))
            .set_clean_session(true)
            .set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(options, 16);
        client
            .subscribe(topic.clone(), q)
            .await
            .expect("queue subscribe");

        let started = Instant::now();
        let mut received: u64 = 0;
        let mut bytes: u64 = 0;
        let mut duplicates: u64 = 0;
        let mut last_message = Instant::now();
        let mut expected: Option<(u64, Instant)> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let mut error: Option<String> = None;
        loop {
            tokio::select! {
                polled = eventloop.poll() => match polled {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        std::fs::write(&ready, b"ready\n").expect("write ready file");
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        received += 1;
                        bytes += p.payload.len() as u64;
                        duplicates += u64::from(p.dup);
                        last_message = Instant::now();
                    }
                    Ok(_) => {}
                    Err(e) => {
                        // A subscriber that lost its connection cannot vouch for any count.
                        error = Some(e.to_string());
                        break;
                    }
                },
                _ = tick.tick() => {
                    let now = Instant::now();
                    if expected.is_none() {
                        if let Ok(text) = std::fs::read_to_string(&stop) {
                            if let Ok(n) = text.trim().parse::<u64>() {
                                expected = Some((n, now));
                            }
                        }
                    }
                    if let Some((n, since)) = expected {
                        if received >= n && now - last_message >= Duration::from_millis(200) {
                            break; // everything is in, and nothing more (duplicates) follows
                        }
                        if now - last_message >= idle && now - since >= idle {
                            break; // nothing arrived for a while: the rest is not coming
                        }
                        if now - since >= drain {
                            break;
                        }
                    }
                    if now - started >= max {
                        error = Some(format!("gave up after {max:?}"));
                        break;
                    }
                }
            }
        }
        let _ = client.try_disconnect();
        (received, bytes, duplicates, expected.map(|(n, _)| n), error)
    });
    let (received, bytes, duplicates, expected, error) = outcome;
    let json = serde_json::json!({
        "cpu_seconds": cpu_seconds(),
        "received": received,
        "bytes": bytes,
        "duplicates_flagged": duplicates,
        "expected": expected,
        "error": error,
    });
    std::fs::write(&result, format!("{json}\n")).expect("write result file");
}
