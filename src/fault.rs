//! Panics on request at named places, for the tests that show that a panic in native code
//! never takes the node down (`NativePanicTest`): at the JNI entry points `open`, `append`,
//! `close` and `attributes`, in the callback dispatcher (`deliver`), and where a connection is
//! driven (`event-loop`, `written`: a message just written), recovered (`recover`) and closed
//! (`connection-close`). Only a library built with the `fault-injection` feature has them, a
//! debug build the tests make (`target/debug`); in every other build [`point`] is empty and
//! compiles away.
//!
//! `KAA_MQTT_APPENDER_FAULTS` names the places, comma-separated, each with how many times it
//! panics (`append:1`; without a count, every time). It is read at the first place reached.

/// Panics here if the environment asks for it; the panic names the caller's line.
#[cfg(feature = "fault-injection")]
#[track_caller]
pub(crate) fn point(place: &str) {
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex};

    /// The panics left at each place (`None`: every time).
    static LEFT: LazyLock<Mutex<HashMap<String, Option<u32>>>> =
        LazyLock::new(|| {
            let asked = std::env::var("KAA_MQTT_APPENDER_FAULTS").unwrap_or_default();
            let places = asked.split(',').filter(|s| !s.is_empty()).map(|entry| {
                match entry.split_once(':') {
                    Some((place, count)) => {
                        let count = count.parse().unwrap_or_else(|_| {
                            panic!("KAA_MQTT_APPENDER_FAULTS: '{entry}' has no count")
                        });
                        (place.to_string(), Some(count))
                    }
                    None => (entry.to_string(), None),
                }
            });
            Mutex::new(places.collect())
        });
    let due = match crate::supervise::lock(&LEFT).get_mut(place) {
        Some(Some(left)) if *left > 0 => {
            *left -= 1;
            true
        }
        Some(None) => true,
        _ => false,
    };
    if due {
        panic!("injected fault at {place}");
    }
}

#[cfg(all(feature = "fault-injection", not(debug_assertions)))]
compile_error!("the fault-injection feature is for the tests' debug build, never a release");

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn point(_place: &str) {}
