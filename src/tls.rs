//! TLS to the broker with rustls (no OpenSSL): trust from a CA given as PEM text or the
//! system's roots, optional client certificate, ALPN. SNI is the configured host name.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::supervise::lock;
use crate::utc::days_from_civil;

/// The TLS part of a broker's identity, as configured (PEM text kept as given: what tells an
/// encrypted key, say, is in its header lines).
#[derive(Clone)]
pub struct TlsSettings {
    pub verify: bool,
    pub ca_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
    pub alpn: Vec<String>,
}

impl TlsSettings {
    /// What tells two apart, as connections are keyed by it: the texts by what they hold
    /// ([`canonical_pem`]), and no CA where nothing is verified against one.
    fn identity(&self) -> (bool, String, String, String, &[String]) {
        let ca = if self.verify {
            canonical_pem(&self.ca_pem)
        } else {
            String::new()
        };
        (
            self.verify,
            ca,
            canonical_pem(&self.client_cert_pem),
            canonical_pem(&self.client_key_pem),
            &self.alpn,
        )
    }
}

impl PartialEq for TlsSettings {
    fn eq(&self, other: &Self) -> bool {
        self.identity() == other.identity()
    }
}

impl Eq for TlsSettings {}

impl std::hash::Hash for TlsSettings {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.identity().hash(state);
    }
}

impl fmt::Debug for TlsSettings {
    // Hand-written so the private key never reaches a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("verify", &self.verify)
            .field("custom_ca", &!self.ca_pem.trim().is_empty())
            .field("client_cert", &!self.client_cert_pem.trim().is_empty())
            .field("alpn", &self.alpn)
            .finish()
    }
}

/// PEM with its line structure back. Kaa's admin UI draws every string field of the
/// configuration form as a single-line input, and browsers drop the newlines of a PEM pasted
/// there (Chrome removes them, Firefox makes them spaces); rustls-pemfile needs each
/// `-----BEGIN …-----` / `-----END …-----` marker on a line of its own. So each marker gets
/// one, and the base64 between a BEGIN and its END loses its whitespace; text outside
/// sections is kept, so a PEM with its lines reads as before.
fn restore_lines(pem: &str) -> String {
    let mut out = String::with_capacity(pem.len() + 8);
    let mut inside = false;
    let push = |out: &mut String, text: &str, inside: bool| {
        if inside {
            out.extend(text.chars().filter(|c| !c.is_whitespace()));
        } else {
            out.push_str(text);
        }
    };
    let mut rest = pem;
    // A marker is found by its own words, so a row of dashes before it (a separator) stays text.
    while let Some(start) = ["-----BEGIN ", "-----END "]
        .iter()
        .filter_map(|marker| rest.find(marker))
        .min()
    {
        let after = &rest[start + 5..];
        let Some(end) = after.find("-----") else {
            break;
        };
        push(&mut out, &rest[..start], inside);
        let label = &after[..end];
        out.push_str("\n-----");
        out.push_str(label);
        out.push_str("-----\n");
        inside = label.starts_with("BEGIN ");
        rest = &after[end + 5..];
    }
    push(&mut out, rest, inside);
    out
}

/// PEM text as connections are told apart by it: its line structure back ([`restore_lines`]),
/// without blank lines or the spaces around lines; blank text is none. So appenders given one
/// CA, pasted with its newlines and without, or "" and " " (which the older forms take for an
/// empty field), share a connection.
fn canonical_pem(pem: &str) -> String {
    let restored = restore_lines(pem);
    let lines: Vec<&str> = restored
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines.join("\n")
}

/// The certificates of a PEM text; an error if it holds none or anything unreadable.
pub fn parse_certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = rustls_pemfile::certs(&mut restore_lines(pem).as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("is not readable PEM: {e}"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate".to_string());
    }
    Ok(certs)
}

/// The private key of a PEM text (PKCS#8, PKCS#1 or SEC1), unencrypted: there is no field
/// for a passphrase. Where none can be read and the text holds an encrypted one, it is named
/// for what it is: read as such, it was "no private key" (PKCS#8) or bad base64 (OpenSSL's
/// traditional form, with its `Proc-Type` header), which sent users hunting for a broken paste.
pub fn parse_private_key(pem: &str) -> Result<PrivateKeyDer<'static>, String> {
    let read = rustls_pemfile::private_key(&mut restore_lines(pem).as_bytes());
    if let Ok(Some(key)) = read {
        return Ok(key);
    }
    if pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || pem.contains("Proc-Type: 4,ENCRYPTED")
    {
        return Err(
            "is encrypted, and the appender has no passphrase for it: give it the key \
                    unencrypted (`openssl pkey -in key.pem -out plain.pem` asks for the \
                    passphrase and writes it so)"
                .to_string(),
        );
    }
    read.map_err(|e| format!("is not readable PEM: {e}"))?
        .ok_or_else(|| "holds no PEM private key".to_string())
}

/// One DER element at the start of `der`: its tag, its content, and what follows it.
fn der_element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The `tbsCertificate` of a DER certificate, if its structure can be read.
fn tbs_certificate(der: &[u8]) -> Option<&[u8]> {
    let (0x30, certificate, _) = der_element(der)? else {
        return None;
    };
    let (0x30, tbs, _) = der_element(certificate)? else {
        return None;
    };
    Some(tbs)
}

/// The X.509 version of a DER certificate (1 to 3), if its structure can be read.
fn x509_version(der: &[u8]) -> Option<u8> {
    // `version [0] EXPLICIT INTEGER DEFAULT v1`: absent means v1.
    match der_element(tbs_certificate(der)?)? {
        (0xa0, version, _) => match der_element(version)? {
            (0x02, [v], _) if *v < 3 => Some(v + 1),
            _ => None,
        },
        _ => Some(1),
    }
}

/// The validity of a DER certificate, `notBefore` and `notAfter`, if its structure can be read.
fn x509_validity(der: &[u8]) -> Option<[CertTime; 2]> {
    let tbs = tbs_certificate(der)?;
    // [version,] serialNumber, signature, issuer, validity.
    let mut rest = match der_element(tbs)? {
        (0xa0, _, after) => after,
        _ => tbs,
    };
    for _ in 0..3 {
        rest = der_element(rest)?.2;
    }
    let (0x30, validity, _) = der_element(rest)? else {
        return None;
    };
    let (tag, not_before, rest) = der_element(validity)?;
    let not_before = CertTime::read(tag, not_before)?;
    let (tag, not_after, _) = der_element(rest)?;
    Some([not_before, CertTime::read(tag, not_after)?])
}

/// The validity of the client certificate: a broker that checks client certificates refuses
/// the TLS handshake outside it, with an alert that names the problem but not the date.
#[derive(Debug, PartialEq)]
pub struct CertificateDates {
    not_before: CertTime,
    not_after: CertTime,
}

impl CertificateDates {
    /// Which of its dates the certificate is outside of at `now` (seconds since 1970), if any.
    pub fn outside(&self, now: i64) -> Option<String> {
        if now > self.not_after.unix {
            Some(format!(
                "clientCertificate expired on {} (its notAfter)",
                self.not_after.text
            ))
        } else if now < self.not_before.unix {
            Some(format!(
                "clientCertificate is not valid before {} (its notBefore)",
                self.not_before.text
            ))
        } else {
            None
        }
    }

    /// What to warn of at `now`: dates outside the validity, with what to do, or a `notAfter`
    /// less than `ahead` seconds away.
    pub fn warning(&self, now: i64, ahead: i64) -> Option<String> {
        if let Some(outside) = self.outside(now) {
            let advice = if now > self.not_after.unix {
                "a broker that checks client certificates refuses the TLS handshake (received \
                 fatal alert: CertificateExpired); renew it"
            } else {
                "a broker that checks client certificates refuses the TLS handshake until then; \
                 check the clock of this node and of the issuer"
            };
            return Some(format!("{outside}: {advice}"));
        }
        let left = self.not_after.unix - now;
        if left >= ahead {
            return None;
        }
        Some(format!(
            "clientCertificate expires on {} (its notAfter), {}: from then on a broker that \
             checks client certificates refuses the TLS handshake; renew it before",
            self.not_after.text,
            in_days(left)
        ))
    }
}

/// `left` seconds as the warnings say it.
fn in_days(left: i64) -> String {
    match left / 86_400 {
        0 => "in less than a day".to_string(),
        1 => "in 1 day".to_string(),
        days => format!("in {days} days"),
    }
}

/// How long before its `notAfter` the broker's certificate is warned of, at most: from a third
/// of its validity before it, where that is less. Brokers' certificates are renewed ahead
/// (certbot at 30 days of Let's Encrypt's 90, short-lived ones halfway), so the warning says
/// that a renewal is late, not that one is due.
const BROKER_EXPIRY_AHEAD: i64 = 14 * 86_400;

/// What to warn of a broker's certificate valid from `not_before` to `not_after`, presented for
/// `server` at `now`, if its end is near.
fn broker_certificate_warning(dates: &[CertTime; 2], server: &str, now: i64) -> Option<String> {
    let [not_before, not_after] = dates;
    let ahead = BROKER_EXPIRY_AHEAD.min((not_after.unix - not_before.unix) / 3);
    let left = not_after.unix - now;
    (0..ahead).contains(&left).then(|| {
        format!(
            "the broker's certificate for '{}' expires on {} (its notAfter), {}: from then on \
             the TLS handshake with the broker fails, and every pack with it; have the \
             certificate renewed before",
            crate::log_budget::shown_in_log(server),
            not_after.text,
            in_days(left)
        )
    })
}

/// The certificates one connection's brokers (the configured one and its failover brokers)
/// showed at their last full handshake, by the name verified, each warned of once a day while
/// its end is near: at a handshake, and from the connection's sweep, since a connection may
/// last past the day its broker's certificate runs out, and a resumed TLS session shows none.
#[derive(Debug)]
pub struct BrokerCertificates {
    label: String,
    /// Each broker's certificate's dates, and when it may be warned of next (seconds since
    /// 1970); one entry a name verified, a broker or two.
    seen: Mutex<HashMap<String, ([CertTime; 2], i64)>>,
}

impl BrokerCertificates {
    fn new(label: &str) -> BrokerCertificates {
        BrokerCertificates {
            label: label.to_string(),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// The broker's certificate `der` for `server` was verified at `now`.
    fn verified(&self, der: &[u8], server: &str, now: i64) {
        let Some(dates) = x509_validity(der) else {
            return;
        };
        let mut seen = lock(&self.seen);
        let next = seen.get(server).map_or(0, |(_, next)| *next);
        seen.insert(server.to_string(), (dates, next));
        self.due(&mut seen, now);
    }

    /// At a sweep: what was verified before, looked at again at `now`.
    pub fn remind(&self, now: i64) {
        self.due(&mut lock(&self.seen), now);
    }

    fn due(&self, seen: &mut HashMap<String, ([CertTime; 2], i64)>, now: i64) {
        for (server, (dates, next)) in seen.iter_mut() {
            if now < *next {
                continue;
            }
            if let Some(warning) = broker_certificate_warning(dates, server, now) {
                *next = now.saturating_add(CHECKED_EVERY);
                log::warn!("{}: {warning}", self.label);
            }
        }
    }
}

/// How long before its `notAfter` a client certificate is warned of: a broker that checks
/// client certificates refuses the handshake from then on, and every pack fails.
pub const EXPIRY_WARNED_AHEAD: i64 = 30 * 86_400;

/// How often a running appender looks at its client certificate's dates again.
const CHECKED_EVERY: i64 = 86_400;

/// The client certificate's dates, looked at again once a day while an appender runs: `init`
/// warns of them once, and a node runs for months, so a certificate met valid at `init`
/// expires while it runs, and the next reconnect fails.
pub struct CertificateWatch {
    dates: Option<CertificateDates>,
    /// When to look next (seconds since 1970).
    next: i64,
}

impl CertificateWatch {
    /// Watches `dates` from `now`, when `init` has just looked.
    pub fn new(dates: Option<CertificateDates>, now: i64) -> CertificateWatch {
        CertificateWatch {
            dates,
            next: now + CHECKED_EVERY,
        }
    }

    /// What to warn of at `now`, at most once a day: as at `init`.
    pub fn due(&mut self, now: i64) -> Option<String> {
        if now < self.next {
            return None;
        }
        self.next = now + CHECKED_EVERY;
        self.dates.as_ref()?.warning(now, EXPIRY_WARNED_AHEAD)
    }
}

/// A time in a certificate: seconds since 1970 (UTC), and as the log shows it.
#[derive(Debug, PartialEq)]
struct CertTime {
    unix: i64,
    text: String,
}

impl CertTime {
    /// UTCTime (`YYMMDDHHMMSSZ`, 1950 to 2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`), the
    /// forms RFC 5280 allows.
    fn read(tag: u8, der: &[u8]) -> Option<CertTime> {
        let number = |digits: &[u8]| {
            digits.iter().try_fold(0i64, |n, &d| {
                d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
            })
        };
        let (year, rest) = match (tag, der.len()) {
            (0x17, 13) => {
                let yy = number(&der[..2])?;
                (if yy < 50 { 2000 + yy } else { 1900 + yy }, &der[2..])
            }
            (0x18, 15) => (number(&der[..4])?, &der[4..]),
            _ => return None,
        };
        if rest[10] != b'Z' {
            return None;
        }
        let [month, day, hour, minute, second] = [0, 2, 4, 6, 8].map(|i| number(&rest[i..i + 2]));
        let [month, day, hour, minute, second] = [month?, day?, hour?, minute?, second?];
        // Out of range, the time would read as another one (RFC 5280 allows no leap second).
        if hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        let days = days_from_civil(year, u32::try_from(month).ok()?, u32::try_from(day).ok()?)?;
        Some(CertTime {
            unix: days * 86_400 + hour * 3600 + minute * 60 + second,
            text: format!("{year}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02} UTC"),
        })
    }
}

/// rustls (webpki) takes only X.509 v3 end-entity certificates; OpenSSL's `x509 -req`
/// without `-extfile` issues v1 ones, which Mosquitto accepts. Told here with that reason,
/// rather than as rustls's "invalid peer certificate: Other(...)".
fn check_end_entity_version(cert: &CertificateDer) -> Result<(), String> {
    match x509_version(cert) {
        Some(3) | None => Ok(()),
        Some(v) => Err(format!(
            "is an X.509 v{v} certificate, which rustls cannot use (it takes v3 only); issue it \
             again with X.509 v3 extensions (for OpenSSL: x509 -req ... -extfile <file with \
             extendedKeyUsage = clientAuth>)"
        )),
    }
}

/// Which of the client certificate and key rustls could not use, and why in words an operator
/// can act on: its own name a key type (P-521, Ed448, RSA under 2048 bits) that ring does not
/// sign with "failed to parse private key as RSA, ECDSA, or EdDSA".
fn unusable_client_auth(e: rustls::Error) -> TlsError {
    match e {
        rustls::Error::InvalidCertificate(_) => (
            "clientCertificate",
            format!("is not a certificate rustls can read ({e})"),
        ),
        rustls::Error::InconsistentKeys(_) => (
            "clientPrivateKey",
            format!("is not the key of clientCertificate ({e})"),
        ),
        e => (
            "clientPrivateKey",
            format!(
                "cannot be used with clientCertificate ({e}): rustls signs with RSA keys of 2048 \
                 bits or more, ECDSA keys on P-256 or P-384, and Ed25519 keys"
            ),
        ),
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// What is wrong with a TLS setting: the config field and why.
pub type TlsError = (&'static str, String);

impl TlsSettings {
    /// The rustls client configuration, or the field at fault and why. Built at init to
    /// check the settings, and again when the connection opens, with what watches the
    /// broker's certificate where it is verified; `label` names the connection in its lines.
    pub fn client_config(
        &self,
        label: &str,
    ) -> Result<(Arc<ClientConfig>, Option<Arc<BrokerCertificates>>), TlsError> {
        let certificates = self
            .verify
            .then(|| Arc::new(BrokerCertificates::new(label)));
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| ("ssl", format!("TLS versions: {e}")))?;
        let verifying = match &certificates {
            Some(certificates) => Some((
                WebPkiServerVerifier::builder_with_provider(Arc::new(self.roots()?), provider())
                    .build()
                    .map_err(|e| ("caCertificate", format!("cannot be used: {e}")))?,
                Arc::clone(certificates),
            )),
            None => None,
        };
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(BrokerVerifier {
                provider: provider(),
                verifying,
            }));
        let has = |pem: &str| !pem.trim().is_empty();
        let mut config = match (has(&self.client_cert_pem), has(&self.client_key_pem)) {
            (false, false) => builder.with_no_client_auth(),
            (true, false) => {
                return Err((
                    "clientPrivateKey",
                    "is empty but clientCertificate is set".into(),
                ))
            }
            (false, true) => {
                return Err((
                    "clientCertificate",
                    "is empty but clientPrivateKey is set".into(),
                ))
            }
            (true, true) => {
                let chain = parse_certificates(&self.client_cert_pem)
                    .map_err(|e| ("clientCertificate", e))?;
                check_end_entity_version(&chain[0]).map_err(|e| ("clientCertificate", e))?;
                let key =
                    parse_private_key(&self.client_key_pem).map_err(|e| ("clientPrivateKey", e))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(unusable_client_auth)?
            }
        };
        config.alpn_protocols = self.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Ok((Arc::new(config), certificates))
    }

    /// The client certificate's validity, if there is one and its dates can be read.
    pub fn client_certificate_dates(&self) -> Option<CertificateDates> {
        let chain = parse_certificates(&self.client_cert_pem).ok()?;
        let [not_before, not_after] = x509_validity(chain.first()?)?;
        Some(CertificateDates {
            not_before,
            not_after,
        })
    }

    /// A configuration that trusts no server: what a connection gets if its settings stopped
    /// working after init, so that it can never fall back to plain text.
    pub fn refusing_config() -> Arc<ClientConfig> {
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map(|b| {
                b.with_root_certificates(RootCertStore::empty())
                    .with_no_client_auth()
            })
            .unwrap_or_else(|_| {
                ClientConfig::builder()
                    .with_root_certificates(RootCertStore::empty())
                    .with_no_client_auth()
            });
        Arc::new(config)
    }

    fn roots(&self) -> Result<RootCertStore, TlsError> {
        let mut roots = RootCertStore::empty();
        if self.ca_pem.trim().is_empty() {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                // Why, where it says: a variable naming a path the node's environment lacks.
                let why: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
                let why = if why.is_empty() {
                    String::new()
                } else {
                    format!(
                        " ({}; SSL_CERT_FILE and SSL_CERT_DIR, where set, say where they are)",
                        why.join("; ")
                    )
                };
                return Err((
                    "caCertificate",
                    format!("is empty and the system has no root certificates{why}"),
                ));
            }
        } else {
            for cert in parse_certificates(&self.ca_pem).map_err(|e| ("caCertificate", e))? {
                roots.add(cert).map_err(|e| {
                    (
                        "caCertificate",
                        format!("holds an unusable certificate: {e}"),
                    )
                })?;
            }
        }
        Ok(roots)
    }
}

/// The broker's certificate as `verifySslCert` says. On: rustls's own verifier decides, and
/// what it verified goes to [`BrokerCertificates`] (a node runs for months; once the broker's
/// certificate expires, every connection fails, and the node's log was the place to say so
/// ahead). Off: any certificate is accepted (the handshake's signatures are still checked, so
/// the peer must hold the key of the certificate it shows).
#[derive(Debug)]
struct BrokerVerifier {
    provider: Arc<CryptoProvider>,
    verifying: Option<(Arc<WebPkiServerVerifier>, Arc<BrokerCertificates>)>,
}

impl ServerCertVerifier for BrokerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some((verifier, certificates)) = &self.verifying else {
            return Ok(ServerCertVerified::assertion());
        };
        let verified = verifier.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        certificates.verified(end_entity, &server_name.to_str(), now);
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> TlsSettings {
        TlsSettings {
            verify: true,
            ca_pem: String::new(),
            client_cert_pem: String::new(),
            client_key_pem: String::new(),
            alpn: vec!["x-amzn-mqtt-ca".into()],
        }
    }

    /// A certificate's outer structure: SEQUENCE { tbsCertificate SEQUENCE { `tbs` } }.
    fn certificate(tbs: &[u8]) -> Vec<u8> {
        let mut inner = vec![0x30, tbs.len() as u8];
        inner.extend_from_slice(tbs);
        let mut outer = vec![0x30, inner.len() as u8];
        outer.extend_from_slice(&inner);
        outer
    }

    #[test]
    fn x509_versions_are_read_from_the_der() {
        let serial = [0x02, 0x01, 0x05];
        assert_eq!(
            x509_version(&certificate(&serial)),
            Some(1),
            "no version: v1"
        );
        let v3 = [&[0xa0, 0x03, 0x02, 0x01, 0x02][..], &serial].concat();
        assert_eq!(x509_version(&certificate(&v3)), Some(3));
        let v2 = [&[0xa0, 0x03, 0x02, 0x01, 0x01][..], &serial].concat();
        assert_eq!(x509_version(&certificate(&v2)), Some(2));
        assert_eq!(x509_version(&[0x30, 0x05, 0x30]), None, "truncated");
        let v1 = CertificateDer::from(certificate(&serial));
        assert!(check_end_entity_version(&v1)
            .unwrap_err()
            .contains("X.509 v1 certificate, which rustls cannot use"));
        assert!(check_end_entity_version(&CertificateDer::from(certificate(&v3))).is_ok());
    }

    /// Connections are keyed by what the texts hold: equal up to line breaks and spaces, and a
    /// CA where nothing is verified against it, one; another CA, key, verification or ALPN,
    /// two. Equal ones hash alike.
    #[test]
    fn settings_are_told_apart_by_what_their_texts_hold() {
        use std::collections::HashSet;
        let with = |verify: bool, ca: &str, key: &str, alpn: &[&str]| TlsSettings {
            verify,
            ca_pem: ca.to_string(),
            client_cert_pem: String::new(),
            client_key_pem: key.to_string(),
            alpn: alpn.iter().map(|p| p.to_string()).collect(),
        };
        let ca = "-----BEGIN CERTIFICATE-----\nMIIB\nAAAA\n-----END CERTIFICATE-----\n";
        let same: HashSet<TlsSettings> = [
            with(true, ca, "", &[]),
            with(true, &ca.replace('\n', ""), "", &[]),
            with(true, &ca.replace('\n', " "), " ", &[]),
            with(true, &format!("\n  {ca}\n"), "\t", &[]),
        ]
        .into_iter()
        .collect();
        assert_eq!(same.len(), 1);
        let unverified: HashSet<TlsSettings> = [with(false, ca, "", &[]), with(false, "", "", &[])]
            .into_iter()
            .collect();
        assert_eq!(unverified.len(), 1, "a CA nothing is verified against");
        for other in [
            with(true, &ca.replace("AAAA", "AAAB"), "", &[]),
            with(true, "", "", &[]),
            with(false, ca, "", &[]),
            with(
                true,
                ca,
                "-----BEGIN PRIVATE KEY-----\nMC4\n-----END PRIVATE KEY-----",
                &[],
            ),
            with(true, ca, "", &["mqtt"]),
        ] {
            assert!(!same.contains(&other), "{other:?}");
        }
    }

    /// Certificate times as RFC 5280 writes them, against Python's `calendar.timegm`.
    #[test]
    fn certificate_times_are_read_in_both_forms() {
        let read = |tag: u8, text: &str| CertTime::read(tag, text.as_bytes());
        let cases = [
            (
                0x17,
                "000301000000Z",
                951_868_800,
                "2000-03-01 00:00:00 UTC",
            ),
            (
                0x17,
                "491231235959Z",
                2_524_607_999,
                "2049-12-31 23:59:59 UTC",
            ),
            (
                0x17,
                "500101000000Z",
                -631_152_000,
                "1950-01-01 00:00:00 UTC",
            ),
            (
                0x18,
                "20261205034555Z",
                1_796_442_355,
                "2026-12-05 03:45:55 UTC",
            ),
            (
                0x18,
                "20240229120000Z",
                1_709_208_000,
                "2024-02-29 12:00:00 UTC",
            ),
        ];
        for (tag, text, unix, shown) in cases {
            let time = read(tag, text).unwrap_or_else(|| panic!("{text} not read"));
            assert_eq!((time.unix, time.text.as_str()), (unix, shown), "{text}");
        }
        for (tag, text) in [
            (0x17, "0003010000Z"),
            (0x17, "000301000000+"),
            (0x18, "2026120503455Z5"),
            (0x18, "000301000000Z"),
            (0x04, "000301000000Z"),
            (0x17, "001301000000Z"),
            (0x17, "260230000000Z"),
            (0x17, "000300000000Z"),
            (0x17, "000301240000Z"),
            (0x18, "20000301006000Z"),
        ] {
            assert_eq!(read(tag, text), None, "{text}");
        }
    }

    /// RFC 5280 allows no leap second: a time at second 60 is refused, not read as the next
    /// minute.
    #[test]
    fn a_leap_second_is_refused() {
        let read = |tag: u8, text: &str| CertTime::read(tag, text.as_bytes());
        assert_eq!(read(0x17, "161231235960Z"), None);
        assert_eq!(read(0x18, "20161231235960Z"), None);
        assert!(read(0x18, "20161231235959Z").is_some());
    }

    /// A certificate with its validity after version, serial, signature and issuer.
    /// (X.509 v1 has no version.)
    fn dated_certificate(version: bool, not_before: &str, not_after: &str) -> Vec<u8> {
        let mut tbs = if version {
            vec![0xa0, 0x03, 0x02, 0x01, 0x02]
        } else {
            Vec::new()
        };
        tbs.extend_from_slice(&[0x02, 0x01, 0x05, 0x30, 0x00, 0x30, 0x00, 0x30, 30, 0x17, 13]);
        tbs.extend_from_slice(not_before.as_bytes());
        tbs.extend_from_slice(&[0x17, 13]);
        tbs.extend_from_slice(not_after.as_bytes());
        certificate(&tbs)
    }

    #[test]
    fn client_certificate_dates_are_warned_of_outside_them() {
        let der = dated_certificate(true, "261201000000Z", "261204000000Z");
        let v1 = dated_certificate(false, "261201000000Z", "261204000000Z");
        for der in [&der, &v1] {
            assert_eq!(
                x509_validity(der).map(|[b, a]| (b.unix, a.unix)),
                Some((1_796_083_200, 1_796_342_400))
            );
        }
        assert_eq!(x509_validity(&der[..der.len() - 1]), None, "truncated");
        let mut tls = settings();
        tls.client_cert_pem = pem("CERTIFICATE", &der);
        let dates = tls.client_certificate_dates().expect("dates read");
        let day = 86_400;
        for (now, ahead, said) in [
            (1_796_342_401, 0, "expired on 2026-12-04 00:00:00 UTC"),
            (1_796_083_199, 0, "not valid before 2026-12-01 00:00:00 UTC"),
            (
                1_796_342_400 - 2 * day,
                30 * day,
                "expires on 2026-12-04 00:00:00 UTC (its notAfter), in 2 days",
            ),
            (1_796_342_400 - day, 30 * day, "in 1 day:"),
            (1_796_342_400 - 1, 30 * day, "in less than a day:"),
        ] {
            let warning = dates.warning(now, ahead).unwrap_or_default();
            assert!(warning.contains(said), "{warning}");
        }
        assert_eq!(dates.warning(1_796_342_400, 0), None, "valid");
        assert_eq!(dates.outside(1_796_342_400 - 2 * day), None, "not outside");
        assert_eq!(
            dates.outside(1_796_342_401).as_deref(),
            Some("clientCertificate expired on 2026-12-04 00:00:00 UTC (its notAfter)")
        );
        assert_eq!(
            dates.warning(1_796_342_400 - 2 * day, 2 * day),
            None,
            "not within"
        );
        tls.client_cert_pem.clear();
        assert_eq!(tls.client_certificate_dates(), None, "no certificate");
    }

    /// The broker's certificate is warned of from 14 days before its end, or from a third of
    /// its validity before it where that is less (short-lived certificates are renewed
    /// halfway), and not once it has expired (the handshake says so then).
    #[test]
    fn a_brokers_certificate_is_warned_of_as_its_end_nears() {
        let day = 86_400;
        let said = |der: &[u8], now: i64| {
            broker_certificate_warning(&x509_validity(der)?, "broker.example", now)
        };
        // 2026-10-01 to 2026-12-17: 77 days.
        let long = dated_certificate(true, "261001000000Z", "261217000000Z");
        let end = 1_797_465_600;
        assert_eq!(said(&long, end - 17 * day), None, "17 days left");
        assert_eq!(said(&long, end - 14 * day), None, "14 days left");
        let warning = said(&long, end - 14 * day + 1).unwrap_or_default();
        assert_eq!(
            warning,
            "the broker's certificate for 'broker.example' expires on 2026-12-17 00:00:00 UTC \
             (its notAfter), in 13 days: from then on the TLS handshake with the broker fails, \
             and every pack with it; have the certificate renewed before"
        );
        assert!(said(&long, end - 1).is_some_and(|w| w.contains("in less than a day")));
        assert_eq!(
            said(&long, end + 1),
            None,
            "expired: the handshake fails instead"
        );
        // 2026-12-01 to 2026-12-07: 6 days, warned of in its last 2.
        let short = dated_certificate(true, "261201000000Z", "261207000000Z");
        let end = 1_796_601_600;
        assert_eq!(said(&short, end - 2 * day), None, "halfway to its end");
        assert!(said(&short, end - 2 * day + 1).is_some_and(|w| w.contains("in 1 day")));
        assert_eq!(said(b"not a certificate", end), None);
    }

    /// Each broker's certificate is warned of once a day, at a handshake or at a sweep
    /// (a connection may outlive the day, and a resumed session shows no certificate), each
    /// broker's on its own clock.
    #[test]
    fn brokers_certificates_are_warned_of_daily_each_on_its_own() {
        crate::test_log::capture();
        let certificates = BrokerCertificates::new("watch-test");
        let day = 86_400;
        let end = 1_797_465_600; // 2026-12-17
        let long = dated_certificate(true, "261001000000Z", "261217000000Z");
        let said = || crate::test_log::lines_with("watch-test: the broker's certificate");
        certificates.verified(&long, "a.example", end - 30 * day);
        certificates.remind(end - 20 * day);
        assert_eq!(said(), Vec::<String>::new(), "not near its end yet");
        certificates.remind(end - 10 * day);
        assert_eq!(said().len(), 1, "at a sweep, once near");
        certificates.verified(&long, "a.example", end - 10 * day + 3600);
        certificates.remind(end - 10 * day + 7200);
        assert_eq!(said().len(), 1, "once a day");
        certificates.verified(&long, "b.example", end - 10 * day + 7200);
        assert_eq!(said().len(), 2, "another broker, on its own clock");
        certificates.remind(end - 9 * day + 7200);
        let lines = said();
        assert_eq!(lines.len(), 4, "a day later, both: {lines:#?}");
        assert!(
            lines[2..].iter().all(|l| l.contains("in 8 days")),
            "{lines:#?}"
        );
        assert!(
            lines[2..].iter().any(|l| l.contains("'a.example'")),
            "{lines:#?}"
        );
        assert!(
            lines[2..].iter().any(|l| l.contains("'b.example'")),
            "{lines:#?}"
        );
        certificates.verified(b"not a certificate", "c.example", end);
        certificates.remind(end + day);
        assert_eq!(said().len(), 4, "expired ones are the handshake's to say");
    }

    const DAY: i64 = 86_400;
    /// 2027-03-01, the end of [`client_watch`]'s certificate.
    const CLIENT_NOT_AFTER: i64 = 1_803_859_200;

    /// The watch a running appender keeps of its client certificate (of 2026-12-01 to
    /// [`CLIENT_NOT_AFTER`]), made at `start`.
    fn client_watch(start: i64) -> CertificateWatch {
        let der = dated_certificate(true, "261201000000Z", "270301000000Z");
        let mut tls = settings();
        tls.client_cert_pem = pem("CERTIFICATE", &der);
        CertificateWatch::new(tls.client_certificate_dates(), start)
    }

    /// A running appender is told of its certificate's end once a day from 30 days before it,
    /// and after it, though `init` met it valid.
    #[test]
    fn a_running_appender_is_warned_daily_as_its_certificate_nears_its_end() {
        let (not_after, day) = (CLIENT_NOT_AFTER, DAY);
        let start = not_after - 40 * day;
        let mut watch = client_watch(start);
        let said = |watch: &mut CertificateWatch, at: i64| watch.due(at).unwrap_or_default();
        assert_eq!(said(&mut watch, start + day - 1), "", "not yet a day");
        assert_eq!(said(&mut watch, start + day), "", "39 days left");
        assert!(said(&mut watch, not_after - 29 * day).contains("in 29 days"));
        assert_eq!(
            said(&mut watch, not_after - 29 * day + 3600),
            "",
            "once a day"
        );
        assert!(said(&mut watch, not_after - 28 * day).contains("in 28 days"));
        assert!(said(&mut watch, not_after + day).contains("expired on 2027-03-01"));
        let mut none = CertificateWatch::new(None, start);
        assert_eq!(none.due(not_after + day), None, "no client certificate");
    }

    /// `init` has just warned of a certificate near its end: the watch says it again a day
    /// later, not at once.
    #[test]
    fn a_certificate_near_its_end_at_start_is_warned_of_again_a_day_later() {
        let (not_after, day) = (CLIENT_NOT_AFTER, DAY);
        let start = not_after - 10 * day;
        let mut watch = client_watch(start);
        assert_eq!(watch.due(start), None, "init has warned");
        assert_eq!(watch.due(start + day - 1), None, "not yet a day");
        assert!(watch
            .due(start + day)
            .is_some_and(|w| w.contains("in 9 days")));
    }

    /// `der` as PEM, in lines of 64 base64 characters as openssl writes it.
    fn pem(label: &str, der: &[u8]) -> String {
        let mut base64 = Vec::new();
        crate::json_text::write_base64(&mut base64, der);
        let lines: Vec<&str> = base64
            .chunks(64)
            .map(|line| std::str::from_utf8(line).expect("ASCII"))
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }

    /// The PEM as a single-line input sends it: newlines dropped (Chrome), or made spaces
    /// (Firefox).
    fn flattened(pem: &str) -> [String; 2] {
        [pem.replace('\n', ""), pem.replace('\n', " ")]
    }

    /// A PEM pasted into Kaa's admin form arrives on one line; it reads as the PEM it was.
    /// (Before: init failed, "caCertificate is not readable PEM: section end ... missing".)
    #[test]
    fn pem_pasted_on_one_line_reads_as_the_original() {
        let serial: Vec<u8> = (0..120).collect();
        let der = |first: u8| certificate(&[&[0x02, 0x78][..], &serial[..119], &[first]].concat());
        let (a, b) = (der(1), der(2));
        assert!(pem("CERTIFICATE", &a).lines().count() > 4, "several lines");
        let read = |pem: &str| -> Vec<Vec<u8>> {
            parse_certificates(pem)
                .unwrap_or_else(|e| panic!("{e}: {pem}"))
                .iter()
                .map(|c| c.to_vec())
                .collect()
        };
        let one = pem("CERTIFICATE", &a);
        assert_eq!(read(&one), std::slice::from_ref(&a));
        for flat in flattened(&one) {
            assert_eq!(read(&flat), std::slice::from_ref(&a));
        }
        // Compared for a connection's key in one form, which reads the same.
        let canonical = canonical_pem(&one);
        assert_eq!(read(&canonical), std::slice::from_ref(&a));
        assert_eq!(canonical_pem(&canonical), canonical);
        for same in flattened(&one).into_iter().chain([format!("  {one}\n\n")]) {
            assert_eq!(canonical_pem(&same), canonical);
        }
        assert_eq!(canonical_pem(" \t\n"), "");
        let chain = pem("CERTIFICATE", &a) + &pem("CERTIFICATE", &b);
        assert_eq!(read(&chain), [a.clone(), b.clone()]);
        for flat in flattened(&chain) {
            assert_eq!(read(&flat), [a.clone(), b.clone()]);
        }
        // A row of dashes between them, whose length is no multiple of five.
        let separated = pem("CERTIFICATE", &a) + &"-".repeat(37) + "\n" + &pem("CERTIFICATE", &b);
        for flat in flattened(&separated) {
            assert_eq!(read(&flat), [a.clone(), b.clone()]);
        }
        for label in ["PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY"] {
            let key = pem(label, &serial);
            let read = |pem: &str| {
                parse_private_key(pem)
                    .unwrap_or_else(|e| panic!("{e}: {pem}"))
                    .secret_der()
                    .to_vec()
            };
            assert_eq!(read(&key), serial);
            for flat in flattened(&key) {
                assert_eq!(read(&flat), serial);
            }
        }
    }

    /// Keys as `openssl genpkey -aes256` and `openssl genrsa -aes128 -traditional` write them
    /// (bodies shortened; they are never decoded): the error says they are encrypted, also
    /// when pasted on one line.
    #[test]
    fn an_encrypted_key_is_named_so() {
        let pkcs8 = "-----BEGIN ENCRYPTED PRIVATE KEY-----\n\
                     MIHsMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAjx+HUzlbP7vgICCAAw\n\
                     -----END ENCRYPTED PRIVATE KEY-----\n";
        let traditional = "-----BEGIN RSA PRIVATE KEY-----\n\
                           Proc-Type: 4,ENCRYPTED\n\
                           DEK-Info: AES-128-CBC,37ACCC236D69418AF368C5AD11556BF1\n\
                           \n\
                           MIHsMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAjx+HUzlbP7vgICCAAw\n\
                           -----END RSA PRIVATE KEY-----\n";
        for pem in [pkcs8, traditional] {
            for text in [
                pem.to_string(),
                pem.replace('\n', ""),
                pem.replace('\n', " "),
            ] {
                let why = parse_private_key(&text).unwrap_err();
                assert!(why.starts_with("is encrypted"), "{why}: {text}");
            }
        }
        // A readable key ahead of an encrypted one is the key, as before.
        let serial: Vec<u8> = (0..120).collect();
        let plain = pem("PRIVATE KEY", &serial);
        let key = parse_private_key(&(plain + pkcs8)).expect("the readable key");
        assert_eq!(key.secret_der(), &serial[..]);
    }

    #[test]
    fn unreadable_pem_names_the_field() {
        let bad = TlsSettings {
            ca_pem: "-----BEGIN CERTIFICATE-----\nnot base64 !!\n-----END CERTIFICATE-----\n"
                .into(),
            ..settings()
        };
        let (field, why) = bad.client_config("test").unwrap_err();
        assert_eq!(field, "caCertificate", "{why}");
        assert!(parse_certificates("no pem here").is_err());
        assert!(parse_private_key("").is_err());
    }

    #[test]
    fn verification_off_needs_no_roots_and_keeps_alpn() {
        let config = TlsSettings {
            verify: false,
            ..settings()
        }
        .client_config("test")
        .unwrap();
        assert_eq!(config.0.alpn_protocols, vec![b"x-amzn-mqtt-ca".to_vec()]);
        assert!(config.1.is_none(), "nothing verified, nothing watched");
    }

    #[test]
    fn debug_hides_the_key() {
        let s = TlsSettings {
            client_key_pem: "SECRET KEY".into(),
            ..settings()
        };
        assert!(!format!("{s:?}").contains("SECRET"));
    }
}
