//! MQTT 3.1.1 and MQTT 5 behind one face: rumqttc has an event loop and client per version,
//! alike in shape but not in types. The connection driver and the delivery tracker see only
//! what is defined here.

use std::future::Future;

use rumqttc::v5::mqttbytes::v5::{PubAckReason, PubRecReason, PublishProperties};

use crate::delivery::{Message, Outbox, PublishOptions};

/// What the delivery tracker needs to know of one event-loop event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// The broker accepted the connection; an MQTT 5 broker may say how many QoS 1 and 2
    /// messages it takes in flight (its receive maximum). `session_present`: it resumed the
    /// session of an earlier connection (clean session off).
    Connected {
        receive_maximum: Option<u16>,
        session_present: bool,
    },
    /// A publish was written with this packet id (0: QoS 0).
    Written(u16),
    /// A publish was taken from the channel but held back: its packet id is still in use.
    HeldBack,
    /// PUBACK (QoS 1); `refused` holds the broker's reason when it did not accept it (MQTT 5).
    Acked { pkid: u16, refused: Option<String> },
    /// PUBREC (QoS 2), likewise.
    Received { pkid: u16, refused: Option<String> },
    /// PUBCOMP (QoS 2).
    Completed(u16),
    /// Our DISCONNECT went out.
    Disconnected,
    /// Anything else (pings, PUBREL going out, ...).
    Other,
}

/// Why `poll` failed.
pub enum Failure {
    /// The broker answered CONNECT with a refusal (credentials, authorisation, ...).
    Refused(String),
    /// The broker closed a connection it had accepted: end of stream or reset (MQTT 3.1.1
    /// says no more), or an MQTT 5 DISCONNECT. `taken_over`: its reason was that another
    /// client connected with the same client id.
    Closed { why: String, taken_over: bool },
    /// Anything else: unreachable, TLS, timeout, keep-alive expired.
    Broken(String),
}

/// An I/O error that means the peer closed the socket, not that the network failed.
fn closed_by_peer(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionReset | ConnectionAborted | UnexpectedEof | BrokenPipe
    )
}

/// What the HTTP proxy answered to CONNECT, when it answered with an HTTP status other than
/// 200. 407 (its credentials were refused) is a refusal, like a broker refusing ours: retrying
/// cannot help until the configuration changes. Anything else (502: the proxy cannot reach
/// the broker, ...) is a broken connection. The error carries the status only, never the
/// request and so never the credentials.
fn proxy_failure(e: &(dyn std::error::Error + 'static)) -> Option<Failure> {
    use async_http_proxy::HttpError;
    match e.source()?.downcast_ref::<HttpError>()? {
        HttpError::HttpCode200(407) => Some(Failure::Refused(
            "the HTTP proxy refused the proxy credentials (407 Proxy Authentication Required); \
             check proxyUsername and proxyPassword"
                .to_string(),
        )),
        HttpError::HttpCode200(code) => Some(Failure::Broken(format!(
            "the HTTP proxy answered CONNECT with HTTP status {code}"
        ))),
        _ => None,
    }
}

/// One version's event loop, as the driver uses it.
pub trait EventLoop: Send + 'static {
    /// The connection settings of one broker (address included).
    type Options: Clone + Send + 'static;

    fn poll(&mut self) -> impl Future<Output = Result<Observed, Failure>> + Send;

    /// Connects to this broker, as `client_id`, from the next attempt on.
    fn switch_to(&mut self, options: &Self::Options, client_id: &str);

    /// Drops the connection as a failure would (the next poll reconnects); `forget` follows.
    fn drop_connection(&mut self);

    /// After a failure: drops the publishes rumqttc kept to replay on a resumed session (a
    /// clean session would drop them silently), but not the PUBRELs, and any stale collision. Returns how many publishes
    /// it had drained from its channel, and the events it queued but never returned.
    fn forget(&mut self) -> (usize, Vec<Observed>);
}

/// rumqttc's two event loops differ in types only.
macro_rules! event_loop {
    ($loop:ty, $options:ty, $field:ident, $request:path, $error:path, $state:path, $bytes_error:path, $observe:ident, $taken_over:ident) => {
        impl EventLoop for $loop {
            type Options = $options;

            fn switch_to(&mut self, options: &Self::Options, client_id: &str) {
                self.$field = options.clone();
                self.$field.set_client_id(client_id.to_string());
            }

            async fn poll(&mut self) -> Result<Observed, Failure> {
                use $error as ConnectionError;
                use $state as StateError;
                use $bytes_error as BytesError;
                match <$loop>::poll(self).await {
                    Ok(event) => Ok($observe(&event)),
                    Err(ConnectionError::ConnectionRefused(code)) => {
                        Err(Failure::Refused(format!("{code:?}")))
                    }
                    Err(ConnectionError::Proxy(e)) if proxy_failure(&e).is_some() => {
                        Err(proxy_failure(&e).expect("checked in the guard"))
                    }
                    Err(e) => {
                        let closed = match &e {
                            ConnectionError::MqttState(StateError::ConnectionAborted) => true,
                            ConnectionError::MqttState(StateError::Io(io))
                            | ConnectionError::MqttState(StateError::Deserialization(
                                BytesError::Io(io),
                            ))
                            | ConnectionError::Io(io) => closed_by_peer(io),
                            _ => false,
                        };
                        let taken_over = $taken_over(&e);
                        let why = e.to_string();
                        Err(if closed || taken_over {
                            Failure::Closed { why, taken_over }
                        } else {
                            Failure::Broken(why)
                        })
                    }
                }
            }

            fn drop_connection(&mut self) {
                self.clean();
            }

            fn forget(&mut self) -> (usize, Vec<Observed>) {
                use $request as Request;
                let drained = self
                    .pending
                    .iter()
                    .filter(|r| matches!(r, Request::Publish(p) if p.pkid == 0))
                    .count();
                // PUBRELs stay: rumqttc drops them too when the broker kept no session, and
                // sends them first when it did. A resumed session still holds each of those
                // QoS 2 packet ids until its PUBREL (MQTT requires resending it); without one
                // the broker refuses the id when it is used again (Mosquitto, MQTT 5: PUBREC
                // with a reason code, so packs answered onRemoteError) or takes the new message
                // for a duplicate. The PUBCOMP that follows names a pkid the tracker no longer
                // waits on (the packs were failed at the loss) and is ignored.
                self.pending.retain(|r| matches!(r, Request::PubRel(_)));
                self.state.collision = None;
                let unreported = self.state.events.drain(..).map(|e| $observe(&e)).collect();
                (drained, unreported)
            }
        }
    };
}

event_loop!(
    rumqttc::EventLoop,
    rumqttc::MqttOptions,
    mqtt_options,
    rumqttc::Request,
    rumqttc::ConnectionError,
    rumqttc::StateError,
    rumqttc::mqttbytes::Error,
    observe_v4,
    never_says_taken_over
);
event_loop!(
    rumqttc::v5::EventLoop,
    rumqttc::v5::MqttOptions,
    options,
    rumqttc::v5::Request,
    rumqttc::v5::ConnectionError,
    rumqttc::v5::StateError,
    rumqttc::v5::mqttbytes::Error,
    observe_v5,
    says_taken_over
);

/// MQTT 3.1.1 has no reason for a close.
fn never_says_taken_over(_: &rumqttc::ConnectionError) -> bool {
    false
}

fn says_taken_over(e: &rumqttc::v5::ConnectionError) -> bool {
    use rumqttc::v5::mqttbytes::v5::DisconnectReasonCode;
    matches!(
        e,
        rumqttc::v5::ConnectionError::MqttState(rumqttc::v5::StateError::ServerDisconnect {
            reason_code: DisconnectReasonCode::SessionTakenOver,
            ..
        })
    )
}

fn observe_v4(event: &rumqttc::Event) -> Observed {
    use rumqttc::{Event, Outgoing, Packet};
    match event {
        Event::Incoming(Packet::ConnAck(c)) => Observed::Connected {
            receive_maximum: None,
            session_present: c.session_present,
        },
        Event::Outgoing(Outgoing::Publish(pkid)) => Observed::Written(*pkid),
        Event::Outgoing(Outgoing::AwaitAck(_)) => Observed::HeldBack,
        Event::Incoming(Packet::PubAck(a)) => Observed::Acked {
            pkid: a.pkid,
            refused: None,
        },
        Event::Incoming(Packet::PubRec(r)) => Observed::Received {
            pkid: r.pkid,
            refused: None,
        },
        Event::Incoming(Packet::PubComp(c)) => Observed::Completed(c.pkid),
        Event::Outgoing(Outgoing::Disconnect) => Observed::Disconnected,
        _ => Observed::Other,
    }
}

pub(crate) fn observe_v5(event: &rumqttc::v5::Event) -> Observed {
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::Event;
    use rumqttc::Outgoing;
    match event {
        Event::Incoming(Packet::ConnAck(c)) => Observed::Connected {
            receive_maximum: c.properties.as_ref().and_then(|p| p.receive_max),
            session_present: c.session_present,
        },
        Event::Outgoing(Outgoing::Publish(pkid)) => Observed::Written(*pkid),
        Event::Outgoing(Outgoing::AwaitAck(_)) => Observed::HeldBack,
        Event::Incoming(Packet::PubAck(a)) => Observed::Acked {
            pkid: a.pkid,
            refused: match a.reason {
                PubAckReason::Success | PubAckReason::NoMatchingSubscribers => None,
                reason => Some(format!("{reason:?}")),
            },
        },
        Event::Incoming(Packet::PubRec(r)) => Observed::Received {
            pkid: r.pkid,
            refused: match r.reason {
                PubRecReason::Success | PubRecReason::NoMatchingSubscribers => None,
                reason => Some(format!("{reason:?}")),
            },
        },
        Event::Incoming(Packet::PubComp(c)) => Observed::Completed(c.pkid),
        Event::Outgoing(Outgoing::Disconnect) => Observed::Disconnected,
        _ => Observed::Other,
    }
}

impl Outbox for rumqttc::AsyncClient {
    fn try_publish(&mut self, message: Message, how: &PublishOptions) -> bool {
        rumqttc::AsyncClient::try_publish(
            self,
            &*message.topic,
            how.qos.into(),
            how.retain,
            message.payload,
        )
        .is_ok()
    }
}

impl Outbox for rumqttc::v5::AsyncClient {
    fn try_publish(&mut self, message: Message, how: &PublishOptions) -> bool {
        let properties = PublishProperties {
            content_type: Some(how.content_type.to_string()),
            message_expiry_interval: how.message_expiry,
            user_properties: message.labels,
            ..Default::default()
        };
        let qos = match how.qos {
            crate::config::Qos::AtMostOnce => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
            crate::config::Qos::AtLeastOnce => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            crate::config::Qos::ExactlyOnce => rumqttc::v5::mqttbytes::QoS::ExactlyOnce,
        };
        self.try_publish_with_properties(
            &*message.topic,
            qos,
            how.retain,
            message.payload,
            properties,
        )
        .is_ok()
    }
}
