//! Background work that survives its own panics: the deadline sweep and the connection
//! drivers run on the tokio runtime, where a panic would end the task silently, and with it
//! every answer the task owed. Here a panic is caught where it happens, logged with its
//! message, and the caller decides how the work goes on.

use std::any::Any;
use std::cell::RefCell;
use std::future::Future;
use std::io::Write;
use std::ops::DerefMut;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, Once, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::task::{Context, Poll};
use std::time::Duration;

/// Locks `m` whether or not a panic poisoned it: every lock here guards state that stays
/// consistent between statements, and the work that panicked is already answered for.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// [`lock`]'s reading side of an `RwLock`.
pub(crate) fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// [`lock`]'s writing side of an `RwLock`.
pub(crate) fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

thread_local! {
    /// Where this thread's last panic began, as the hook of [`note_panics`] saw it.
    static PANICKED_AT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// How many panics the hook of [`note_panics`] passes on to Rust's default hook, which
/// writes them to stderr.
#[derive(Clone, Copy)]
pub(crate) enum OnStderr {
    /// Every one, in tests: a failing test's message is its panic's.
    #[cfg(test)]
    Every,
    /// [`STDERR_PANICS`] a minute, as the log lines of caught ones: in a node, one set off by an
    /// endpoint's data would come with every pack, into the node's console output.
    TenAMinute,
}

/// Installs, once (the first call decides `on_stderr`), a panic hook that notes where each
/// panic began, so that [`panic_message`] can say it: every panic here is caught and logged
/// where it is caught, and that log line, in the node's log, is what an operator reports. The
/// default hook still writes to stderr: for a panic nothing catches (at load, before the
/// logger; one that aborts) that is the only trace.
pub(crate) fn note_panics(on_stderr: OnStderr) {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let at = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()));
            // Not on a thread whose locals are being destroyed: the default hook still runs.
            let _ = PANICKED_AT.try_with(|noted| *noted.borrow_mut() = at);
            match (on_stderr, panics_on_stderr()) {
                #[cfg(test)]
                (OnStderr::Every, _) => default(info),
                (OnStderr::TenAMinute, n) if n < STDERR_PANICS => default(info),
                // Not eprintln!: it panics when stderr is gone, and a panic in the hook aborts.
                (OnStderr::TenAMinute, n) if n == STDERR_PANICS => {
                    let _ = writeln!(
                        std::io::stderr(),
                        "kaa-mqtt-appender: more than {STDERR_PANICS} panics this minute; the \
                         rest of the minute's are left off stderr (the node's log has each \
                         caught one, ten a minute)"
                    );
                }
                _ => {}
            }
        }));
    });
}

/// Panics the hook writes to stderr per minute.
const STDERR_PANICS: u32 = 10;

/// How many panics the hook met this minute before this one.
fn panics_on_stderr() -> u32 {
    static MET: PerMinute = PerMinute::new();
    MET.count(crate::utc::unix_now() / 60)
}

/// Events counted by the minute. Atomics, not a lock: a panic while the lock was held would
/// wait on it for ever.
struct PerMinute {
    minute: AtomicI64,
    met: AtomicU32,
}

impl PerMinute {
    const fn new() -> Self {
        PerMinute {
            minute: AtomicI64::new(0),
            met: AtomicU32::new(0),
        }
    }

    /// How many were met in `minute` before this one.
    fn count(&self, minute: i64) -> u32 {
        if self.minute.swap(minute, Ordering::Relaxed) != minute {
            self.met.store(0, Ordering::Relaxed);
        }
        self.met.fetch_add(1, Ordering::Relaxed)
    }
}

/// The text of a panic's payload (`panic!("...")` gives a `&str` or a `String`), with where
/// it began when the hook noted it on this thread.
pub(crate) fn panic_message(payload: Box<dyn Any + Send>) -> String {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string());
    match PANICKED_AT.with(|noted| noted.borrow_mut().take()) {
        Some(at) => format!("{message} (at {at})"),
        None => message,
    }
}

/// A future whose panics come out as `Err(message)`. It holds the future pinned elsewhere
/// (`Pin<&mut F>` from `std::pin::pin!`, or `Pin<Box<F>>`), so it needs no pin projection of its own,
/// and a panic leaves whatever the future borrowed with its owner.
pub(crate) struct CatchUnwind<P>(pub(crate) Pin<P>);

impl<P> Future for CatchUnwind<P>
where
    P: DerefMut + Unpin,
    P::Target: Future,
{
    type Output = Result<<P::Target as Future>::Output, String>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.get_mut().0;
        match catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(panic_message(payload))),
        }
    }
}

/// Runs the task `start` makes until it ends; after a panic, logs it and starts it again
/// after `pause` (so a panic that repeats at every run costs a log line per pause, not a
/// busy loop).
pub(crate) async fn restarting<F, Fut>(what: String, pause: Duration, mut start: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        match CatchUnwind(Box::pin(start())).await {
            Ok(()) => return,
            Err(message) => {
                log::error!("panic in {what}: {message}; it goes on");
                tokio::time::sleep(pause).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    /// Set in the copy of this test binary that [`panics_reach_stderr_ten_a_minute`] runs.
    const FLOOD: &str = "KAA_MQTT_TEST_PANIC_FLOOD";

    /// Panics as fast as a bad endpoint could set them off reach stderr ten a minute, and a
    /// line says the rest are left off. Run in a process of its own, as the counts are global.
    #[test]
    fn panics_reach_stderr_ten_a_minute() {
        if std::env::var_os(FLOOD).is_some() {
            note_panics(OnStderr::TenAMinute);
            for i in 0..30 {
                let _ = std::panic::catch_unwind(|| panic!("injected: flood {i}"));
            }
            return;
        }
        let exe = std::env::current_exe().expect("this test binary");
        let out = std::process::Command::new(exe)
            .args([
                "--exact",
                "supervise::tests::panics_reach_stderr_ten_a_minute",
            ])
            .args(["--nocapture", "--test-threads=1"])
            .env(FLOOD, "1")
            .output()
            .expect("runs");
        assert!(out.status.success(), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let written = stderr.matches("injected: flood").count();
        let said = stderr
            .matches("the rest of the minute's are left off stderr")
            .count();
        // Ten, unless the minute turned during the flood.
        assert!((10..=20).contains(&written), "{written}:\n{stderr}");
        assert!((1..=2).contains(&said), "{stderr}");
    }

    /// Each minute starts its count again: else, after ten in the process's life, no panic
    /// would reach stderr.
    #[test]
    fn panics_are_counted_by_the_minute() {
        let met = PerMinute::new();
        assert_eq!([met.count(5), met.count(5), met.count(5)], [0, 1, 2]);
        assert_eq!([met.count(6), met.count(6)], [0, 1]);
    }

    #[test]
    fn a_panicking_future_is_an_error_and_its_borrow_comes_back() {
        note_panics(OnStderr::Every);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let mut state = vec![1];
        let caught = rt.block_on(async {
            let step = std::pin::pin!(async {
                state.push(2);
                tokio::task::yield_now().await;
                panic!("injected: step failed");
            });
            CatchUnwind(step).await
        });
        let caught = caught.expect_err("caught");
        assert!(
            caught.starts_with("injected: step failed (at src/supervise.rs:"),
            "the message and where the panic began: {caught}"
        );
        state.push(3);
        assert_eq!(state, [1, 2, 3]);
    }

    /// After each panic, the pause (on tokio's paused clock: a minute costs no wall time).
    #[test]
    fn a_task_that_panics_is_started_again_after_a_pause_until_it_ends() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&runs);
        let pause = Duration::from_secs(60);
        let started = rt.block_on(async { tokio::time::Instant::now() });
        rt.block_on(restarting("a test task".into(), pause, move || {
            let runs = Arc::clone(&counted);
            async move {
                if runs.fetch_add(1, Ordering::SeqCst) < 2 {
                    panic!("injected: run {}", runs.load(Ordering::SeqCst));
                }
            }
        }));
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        let paused = rt.block_on(async { started.elapsed() });
        assert!(paused >= 2 * pause, "a pause after each panic: {paused:?}");
    }
}
