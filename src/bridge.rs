//! The JNI bridge: the only module that knows JNI and the only one with `unsafe`.
//!
//! Every entry point runs inside [`guard`], which catches panics: a failure becomes a Java
//! exception (`append` alone answers the pack's failure callback instead), never a crashed
//! node. A handle is a number that `open` gives and `close` forgets ([`appenders`]), so no
//! call through a stale or racing handle can reach freed memory. `append` takes a pack as Kaa
//! handed it (each record's array, null entries included, and the log schema's id, version and
//! text, nulls allowed): the checks and the framing are `appender`'s, so every pack is
//! answered, counted and logged in one place. The JMX bean's attributes are built and read
//! here, from `metrics::FIGURES`.
//!
//! Calls into Java go straight to Kaa's `LogDeliveryCallback` and to SLF4J's `Logger`, with no
//! Java code of ours between, from one dispatcher thread attached to the JVM once: tokio
//! workers never touch JNI, and a slow callback delays other callbacks but never the network
//! (while that thread's answers are more than 10 s late, `append` answers on the caller's
//! thread instead: [`answer_lag`]).
//! A callback that throws is logged with its exception. `JNI_OnLoad` reads the SLF4J levels
//! (the prefix's, each module's and each logging crate's), and the same thread reads them again
//! every few seconds, so a level changed at run time reaches native code. A panic in one of its jobs is logged and the thread goes on with the
//! next (see [`serve`]).
#![deny(clippy::unwrap_used)]

use std::any::Any;
use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, LazyLock, OnceLock, RwLock};
use std::time::{Duration, Instant};

use jni::objects::{
    GlobalRef, JByteArray, JClass, JMethodID, JObject, JObjectArray, JStaticMethodID, JString,
    JValue,
};
use jni::signature::{Primitive, ReturnType};
use jni::sys::{jboolean, jbyte, jint, jlong, JNI_ERR, JNI_FALSE, JNI_TRUE, JNI_VERSION_1_8};
use jni::{JNIEnv, JavaVM};
use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::answer_lag;
use crate::appender::{Appender, PackRecords, PackSchema};
use crate::config::{AppenderConfig, Layout};
use crate::delivery::{Outcome, Why};
use crate::fault;
use crate::header::HeaderStructure;
use crate::log_budget::LogBudget;
use crate::metrics::{Figure, Snapshot, Tally, FIGURES};
use crate::supervise::{panic_message, read, write};

const CALLBACK_CLASS: &str =
    "org/kaaproject/kaa/server/common/log/shared/appender/LogDeliveryCallback";
const LOGGER_FACTORY_CLASS: &str = "org/slf4j/LoggerFactory";
const GET_LOGGER_SIG: &str = "(Ljava/lang/String;)Lorg/slf4j/Logger;";
const LOGGER_CLASS: &str = "org/slf4j/Logger";
/// The SLF4J loggers the native side writes to: `kaa_mqtt_appender::connection` logs as
/// `org.kaaproject.kaa.server.appenders.pahomqtt.native.kaa_mqtt_appender.connection`.
const LOGGER_PREFIX: &str = "org.kaaproject.kaa.server.appenders.pahomqtt.native";
/// This crate's `log` target, the first part of each of its modules'.
const CRATE_TARGET: &str = "kaa_mqtt_appender";
/// The targets whose loggers are made at load, so that a level set on one of them holds
/// before it has logged: a logger is otherwise made by a record that passed its ancestor's
/// level. The crates that log (rumqttc's WebSocket transport among them), and this crate's
/// modules (`logged_targets_are_the_crates_and_modules`).
const KNOWN_TARGETS: [&str; 32] = [
    CRATE_TARGET,
    "apache_avro",
    "async_tungstenite",
    "rumqttc",
    "rustls",
    "tungstenite",
    "kaa_mqtt_appender::answer_lag",
    "kaa_mqtt_appender::appender",
    "kaa_mqtt_appender::binary",
    "kaa_mqtt_appender::bridge",
    "kaa_mqtt_appender::config",
    "kaa_mqtt_appender::connection",
    "kaa_mqtt_appender::decode",
    "kaa_mqtt_appender::delivery",
    "kaa_mqtt_appender::fair_queue",
    "kaa_mqtt_appender::fault",
    "kaa_mqtt_appender::header",
    "kaa_mqtt_appender::identity",
    "kaa_mqtt_appender::json_text",
    "kaa_mqtt_appender::log_budget",
    "kaa_mqtt_appender::metrics",
    "kaa_mqtt_appender::node_memory",
    "kaa_mqtt_appender::packet_limit",
    "kaa_mqtt_appender::payload",
    "kaa_mqtt_appender::protocol",
    "kaa_mqtt_appender::reason",
    "kaa_mqtt_appender::refused_topics",
    "kaa_mqtt_appender::status",
    "kaa_mqtt_appender::supervise",
    "kaa_mqtt_appender::tls",
    "kaa_mqtt_appender::topic",
    "kaa_mqtt_appender::utc",
];
/// How often the dispatcher reads the SLF4J level again: an operator who turns DEBUG on for
/// the native loggers at run time sees its lines within this.
const LEVEL_REFRESH: Duration = Duration::from_secs(3);

/// Work for the dispatcher thread. What it hands to Java is taken out of the job just before
/// the call, so a job run again after a panic never reaches Java twice.
enum Job {
    /// Kaa's callback, its answer, and the pack's tally, counted once the callback returned.
    Deliver(Option<GlobalRef>, Outcome, Option<Tally>),
    Log(Level, Option<(String, String)>),
}

/// A job and when it was queued ([`answer_lag::now`]).
struct Queued {
    at: u64,
    job: Job,
}

/// The Java side, resolved once in `JNI_OnLoad` with the loader that loaded our classes
/// (a bare `FindClass` on a native thread would see only the system class loader): Kaa's
/// callback and SLF4J, called directly, so no Java code of ours stands between.
struct JavaSide {
    /// [`ANSWER_METHODS`].
    answers: [JMethodID; Outcome::COUNT],
    factory: GlobalRef,
    get_logger: JStaticMethodID,
    /// `Logger.error(String)` ... `trace(String)` and `isErrorEnabled()` ..., by
    /// [`Level`]` as usize - 1`.
    write: [JMethodID; 5],
    enabled: [JMethodID; 5],
    /// `Logger.warn(String, Throwable)`, for a callback that threw.
    warn_thrown: JMethodID,
    /// Kaa's callbacks that threw are logged ten a minute: one that throws every time would
    /// otherwise log a stack trace per pack.
    thrown_lines: LogBudget,
    /// SLF4J's logger for each target so far (the empty target: [`LOGGER_PREFIX`] itself).
    loggers: HashMap<String, GlobalRef>,
}

/// `LogDeliveryCallback`'s four methods, by [`Outcome::code`] (named by its `Display`),
/// resolved in `JNI_OnLoad`: for the dispatcher, and for a pack answered at once
/// ([`answer_now`]), on a thread without the dispatcher's `JavaSide`.
static ANSWER_METHODS: OnceLock<[JMethodID; Outcome::COUNT]> = OnceLock::new();

static DISPATCHER: OnceLock<Sender<Queued>> = OnceLock::new();

/// Queues a job for the dispatcher; a log line is left out while answers are late (see
/// [`answer_lag`]).
fn dispatch(job: Job) {
    let at = answer_lag::now();
    if matches!(job, Job::Log(..)) && answer_lag::ANSWERS.behind(|| at).is_some() {
        return answer_lag::ANSWERS.dropped_line();
    }
    if let Some(tx) = DISPATCHER.get() {
        // The dispatcher lives as long as the process; a failed send means the JVM is going.
        let _ = tx.send(Queued { at, job });
    }
}

/// Answers a pack on the calling thread, as the original appender did, while the dispatcher
/// is held ([`answer_lag`]). What Kaa's callback throws is cleared: out of `doAppend`, the node
/// would answer the pack a second time. It is counted, not logged: the logging may be what
/// holds the dispatcher.
fn answer_now(env: &mut JNIEnv, mut callback: JavaCallback, outcome: Outcome, tally: Tally) {
    let Some(answers) = ANSWER_METHODS.get() else {
        return callback.answer(outcome, Some(tally));
    };
    let Some(global) = callback.0.take() else {
        return;
    };
    let _ = call_answer(env, answers, &global, outcome);
    tally.answered(outcome);
    if env.exception_check().unwrap_or(false) {
        let _ = env.exception_clear();
        answer_lag::ANSWERS.callback_threw();
    }
}

/// Calls Kaa's callback with `outcome`: the one call of it, on whichever thread answers.
fn call_answer(
    env: &mut JNIEnv,
    answers: &[JMethodID; Outcome::COUNT],
    callback: &GlobalRef,
    outcome: Outcome,
) -> jni::errors::Result<()> {
    // SAFETY: the answers were resolved on `LogDeliveryCallback` with `()V`, and Kaa's
    // callback implements it.
    unsafe {
        env.call_method_unchecked(
            callback,
            answers[usize::from(outcome.code())],
            ReturnType::Primitive(Primitive::Void),
            &[],
        )
    }
    .map(|_| ())
}

/// Errors that become Java exceptions, each mapped to its class in one place.
enum BridgeError {
    Config(String),
    Jni(jni::errors::Error),
    Panic(String),
}

impl From<jni::errors::Error> for BridgeError {
    fn from(e: jni::errors::Error) -> Self {
        BridgeError::Jni(e)
    }
}

impl BridgeError {
    fn throw(self, env: &mut JNIEnv) {
        if env.exception_check().unwrap_or(false) {
            return; // a Java exception is already on its way
        }
        let (class, message) = match self {
            BridgeError::Config(m) => ("java/lang/IllegalArgumentException", m),
            BridgeError::Jni(e) => ("java/lang/IllegalStateException", format!("JNI: {e}")),
            BridgeError::Panic(m) => (
                "java/lang/RuntimeException",
                format!("panic in kaa-mqtt-appender native code: {m}"),
            ),
        };
        let _ = env.throw_new(class, message);
    }
}

/// A panic caught at an entry point goes to the node's log with its message (the exception
/// or failure callback it becomes may never be logged by the caller), ten a minute: were an
/// endpoint's data to set one off, it would come with every pack. Returns the message.
fn log_panic(payload: Box<dyn Any + Send>) -> String {
    static PANIC_LINES: LazyLock<LogBudget> = LazyLock::new(LogBudget::default);
    let message = panic_message(payload);
    if let Some(note) = PANIC_LINES.take("panic", Instant::now()) {
        log::error!("panic in kaa-mqtt-appender native code: {message}{note}");
    }
    message
}

/// Runs one entry point: a panic or an error becomes a Java exception and `fallback`; a panic
/// is also logged with its message.
fn guard<'local, T>(
    env: &mut JNIEnv<'local>,
    fallback: T,
    f: impl FnOnce(&mut JNIEnv<'local>) -> Result<T, BridgeError>,
) -> T {
    match catch_unwind(AssertUnwindSafe(|| f(env))) {
        Ok(Ok(value)) => value,
        Ok(Err(error)) => {
            error.throw(env);
            fallback
        }
        Err(payload) => {
            BridgeError::Panic(log_panic(payload)).throw(env);
            fallback
        }
    }
}

/// [`JNIEnv::with_local_frame`], but the frame is popped when `f` panics too (jni 0.21 pops it
/// only when `f` returns): the dispatcher never returns to Java, and each panic caught there
/// would leave a frame, and what it refers to, for the thread's life.
fn in_local_frame<T, E: From<jni::errors::Error>>(
    env: &mut JNIEnv,
    capacity: i32,
    f: impl FnOnce(&mut JNIEnv) -> Result<T, E>,
) -> Result<T, E> {
    env.push_local_frame(capacity)?;
    let ran = catch_unwind(AssertUnwindSafe(|| f(env)));
    // SAFETY: pops the frame pushed above; nothing made in it is used after (`f` cannot return
    // a reference of its frame: its environment's lifetime is its own).
    unsafe { env.pop_local_frame(&JObject::null()) }?;
    ran.unwrap_or_else(|payload| std::panic::resume_unwind(payload))
}

/// The open appenders by handle. Java holds only the number: a handle used after `close`, or
/// while another thread closes it, finds nothing (or an appender that refuses packs), never
/// freed memory. Appends and JMX reads share the read side; only `open` and `close` write, and
/// neither holds the lock while it works.
fn appenders() -> &'static RwLock<HashMap<jlong, Arc<Appender>>> {
    static OPEN: LazyLock<RwLock<HashMap<jlong, Arc<Appender>>>> = LazyLock::new(Default::default);
    &OPEN
}

/// The appender behind a handle, if it is open.
fn borrow(handle: jlong) -> Option<Arc<Appender>> {
    let open = read(appenders());
    open.get(&handle).cloned()
}

/// The Kaa callback of one pack. It answers exactly once: with the outcome, or with
/// `InternalError` if dropped unanswered (an error or panic on the way).
struct JavaCallback(Option<GlobalRef>);

impl JavaCallback {
    /// `tally`: none for a pack no appender took (its handle was closed).
    fn answer(mut self, outcome: Outcome, tally: Option<Tally>) {
        if let Some(callback) = self.0.take() {
            dispatch(Job::Deliver(Some(callback), outcome, tally));
        }
    }
}

impl Drop for JavaCallback {
    fn drop(&mut self) {
        if let Some(callback) = self.0.take() {
            dispatch(Job::Deliver(Some(callback), Why::Abandoned.outcome(), None));
        }
    }
}

/// A Java string; `None` for null. One that cannot be read (the JVM is out of memory) is an
/// error, with the exception the failure left pending cleared: the entry point goes on with
/// more JNI calls, which must not run with one.
fn read_string(env: &mut JNIEnv, s: &JString) -> Result<Option<String>, jni::errors::Error> {
    if s.is_null() {
        return Ok(None);
    }
    // SAFETY: every string read here is a `String` parameter of a native method, an element
    // of a `String[]` one, or what a `()Ljava/lang/String;` method returned, which the JVM's
    // type checks keep a `java.lang.String`.
    // jni's checked `get_string` looks the class up and compares it, three JNI calls more
    // for each of a pack's strings.
    match unsafe { env.get_string_unchecked(s) } {
        Ok(text) => Ok(Some(String::from(text))),
        Err(e) => {
            let _ = env.exception_clear();
            Err(e)
        }
    }
}

/// Event arrays one local frame holds: HotSpot refuses a frame over `MaxJNILocalCapacity`
/// (65,536 by default), so a larger pack is read a chunk at a time.
const EVENTS_PER_FRAME: i32 = 4096;

/// The pack's records, each copied once out of its Java array into one buffer (sized for each
/// chunk of events first, so a pack of up to [`EVENTS_PER_FRAME`] never grows it by copying).
/// A null array is a null event; a null `events` a null list. A pack `fits` refuses for its
/// count is not read at all.
fn read_records(
    env: &mut JNIEnv,
    events: &JObjectArray,
    fits: impl Fn(usize) -> Result<(), String>,
) -> PackRecords {
    if events.is_null() {
        return PackRecords::unreadable(0, "its list of events is null".into());
    }
    let read = |env: &mut JNIEnv| -> Result<PackRecords, jni::errors::Error> {
        let count = env.get_array_length(events)?;
        if let Err(reason) = fits(count as usize) {
            return Ok(PackRecords::too_many(count as usize, reason));
        }
        let mut records = PackRecords::default();
        for start in (0..count).step_by(EVENTS_PER_FRAME as usize) {
            let end = count.min(start.saturating_add(EVENTS_PER_FRAME));
            // The frame holds the chunk's arrays while the buffer is sized, and frees them together.
            let unfit = in_local_frame(env, end - start + 1, |env| {
                let mut arrays = Vec::with_capacity((end - start) as usize);
                let mut bytes = 0;
                for i in start..end {
                    let array = JByteArray::from(env.get_object_array_element(events, i)?);
                    let len = if array.is_null() {
                        0
                    } else {
                        env.get_array_length(&array)? as usize
                    };
                    bytes += len;
                    arrays.push((array, len));
                }
                if let Err(e) = records.try_reserve(arrays.len(), bytes) {
                    return Ok(Some(format!(
                        "its records do not fit in the node's memory ({bytes} more bytes from \
                         event {start} on: {e})"
                    )));
                }
                for (array, len) in &arrays {
                    if array.is_null() {
                        records.next_missing();
                        continue;
                    }
                    let record = records.next_record(*len);
                    // SAFETY: u8 and jbyte (i8) have the same size and alignment, and every bit
                    // pattern is valid in both; the slice is the same memory, borrowed as before.
                    let record = unsafe {
                        std::slice::from_raw_parts_mut(
                            record.as_mut_ptr().cast::<jbyte>(),
                            record.len(),
                        )
                    };
                    env.get_byte_array_region(array, 0, record)?;
                }
                Ok::<_, jni::errors::Error>(None)
            })?;
            if let Some(reason) = unfit {
                return Ok(PackRecords::unreadable(count as usize, reason));
            }
        }
        Ok(records)
    };
    read(env).unwrap_or_else(|e| {
        // A failed read may have left a Java exception pending, and the entry point makes more
        // JNI calls (the endpoint key, the schema) that must not run with one.
        let _ = env.exception_clear();
        PackRecords::unreadable(0, format!("its events cannot be read: {e}"))
    })
}

#[no_mangle]
pub extern "system" fn Java_org_kaaproject_kaa_server_appenders_pahomqtt_appender_NativeAppender_open<
    'local,
>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    raw_config: JByteArray<'local>,
    generation: jint,
    name: JString<'local>,
    application_token: JString<'local>,
    header_fields: JObjectArray<'local>,
) -> jlong {
    guard(&mut env, 0, |env| {
        fault::point("open");
        let raw = env.convert_byte_array(&raw_config)?;
        let name: String = env.get_string(&name)?.into();
        let token: String = env.get_string(&application_token)?.into();
        let mut fields = Vec::new();
        for i in 0..env.get_array_length(&header_fields)? {
            let field = JString::from(env.get_object_array_element(&header_fields, i)?);
            fields.push(String::from(env.get_string(&field)?));
            env.delete_local_ref(field)?;
        }
        let header = HeaderStructure::from_names(&fields).map_err(BridgeError::Config)?;
        let config = Layout::of_generation(generation)
            .and_then(|layout| AppenderConfig::from_avro(&raw, layout))
            .map_err(|e| BridgeError::Config(e.to_string()))?;
        static NEXT_HANDLE: AtomicI64 = AtomicI64::new(1);
        let appender = Appender::open(&name, &token, header, config)
            .map_err(|e| BridgeError::Config(e.to_string()))?;
        let handle = NEXT_HANDLE.fetch_add(1, Ordering::Relaxed);
        let mut open = write(appenders());
        open.insert(handle, appender);
        Ok(handle)
    })
}

#[no_mangle]
pub extern "system" fn Java_org_kaaproject_kaa_server_appenders_pahomqtt_appender_NativeAppender_append<
    'local,
>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    handle: jlong,
    schema_id: JString<'local>,
    schema_version: jint,
    schema_text: JString<'local>,
    events: JObjectArray<'local>,
    endpoint: JString<'local>,
    callback: JObject<'local>,
) {
    // Once the callback is held, every failure is answered through it, never thrown: the
    // node answers a thrown exception itself, and the endpoint must not get two answers.
    let callback = match env.new_global_ref(&callback) {
        Ok(global) => JavaCallback(Some(global)),
        Err(e) => return BridgeError::Jni(e).throw(&mut env),
    };
    // A panic drops the callback on its way out, which answers the pack `onInternalError`.
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        let Some(appender) = borrow(handle) else {
            return callback.answer(Why::Closed.outcome(), None);
        };
        fault::point("append");
        if let Some(lag) = answer_lag::ANSWERS.behind(answer_lag::now) {
            let events = if events.is_null() {
                Ok(0)
            } else {
                env.get_array_length(&events)
            };
            let events = events.unwrap_or_else(|_| {
                let _ = env.exception_clear();
                0
            });
            answer_lag::ANSWERS.turned_away(lag);
            let (outcome, tally) = appender.turn_away(events as usize);
            return answer_now(&mut env, callback, outcome, tally);
        }
        let mut records = read_records(&mut env, &events, |n| appender.fits_in_flight(n));
        // As `String.valueOf` wrote a null key before the checks moved here. A key that cannot
        // be read fails the pack: published under another key, it would reach the wrong topic.
        let endpoint = read_string(&mut env, &endpoint).unwrap_or_else(|e| {
            records.refuse(format!("its endpoint key cannot be read: {e}"));
            None
        });
        let endpoint = endpoint.unwrap_or_else(|| "null".into());
        // An id or text that cannot be read is as none: a pack whose id and version are not
        // the last pack's has its schema found by its text, and without one is refused.
        let schema_id = read_string(&mut env, &schema_id).ok().flatten();
        let schema = PackSchema {
            id: schema_id.as_deref(),
            version: schema_version,
            text: || read_string(&mut env, &schema_text).ok().flatten(),
        };
        appender.append(
            schema,
            records.slices().as_deref(),
            &endpoint,
            Box::new(move |outcome, tally| callback.answer(outcome, Some(tally))),
        );
    }));
    if let Err(payload) = panicked {
        log_panic(payload);
    }
    // A pending Java exception from a failed JNI call must not escape: the pack is answered.
    if env.exception_check().unwrap_or(false) {
        let _ = env.exception_clear();
    }
}

/// Forgets the handle and closes its appender without waiting (packs in flight keep waiting
/// for the broker up to `closeTimeoutSeconds`); whether it was open, so exactly one caller of
/// many learns that it closed it.
#[no_mangle]
pub extern "system" fn Java_org_kaaproject_kaa_server_appenders_pahomqtt_appender_NativeAppender_close<
    'local,
>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    handle: jlong,
) -> jboolean {
    guard(&mut env, JNI_FALSE, |_| {
        let removed = write(appenders()).remove(&handle);
        let Some(appender) = removed else {
            return Ok(JNI_FALSE);
        };
        fault::point("close");
        appender.close();
        Ok(JNI_TRUE)
    })
}

const ATTRIBUTE_INFO_CLASS: &str = "javax/management/MBeanAttributeInfo";

/// The JMX bean's attributes: one read-only `MBeanAttributeInfo` for each of [`FIGURES`].
#[no_mangle]
pub extern "system" fn Java_org_kaaproject_kaa_server_appenders_pahomqtt_appender_NativeAppender_attributeInfo<
    'local,
>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
) -> JObjectArray<'local> {
    guard(&mut env, JObjectArray::default(), |env| {
        let types = Snapshot::default().figures();
        let array =
            env.new_object_array(FIGURES.len() as jint, ATTRIBUTE_INFO_CLASS, JObject::null())?;
        for (i, ((name, description), figure)) in FIGURES.iter().zip(types).enumerate() {
            in_local_frame(env, 8, |env| -> Result<(), BridgeError> {
                let name = env.new_string(name)?;
                let java_type = env.new_string(figure.java_type())?;
                let description = env.new_string(description)?;
                let is_flag = matches!(figure, Figure::Flag(_));
                let info = env.new_object(
                    ATTRIBUTE_INFO_CLASS,
                    "(Ljava/lang/String;Ljava/lang/String;Ljava/lang/String;ZZZ)V",
                    &[
                        JValue::Object(&name),
                        JValue::Object(&java_type),
                        JValue::Object(&description),
                        JValue::Bool(JNI_TRUE),
                        JValue::Bool(JNI_FALSE),
                        JValue::Bool(is_flag.into()),
                    ],
                )?;
                Ok(env.set_object_array_element(&array, i as jint, info)?)
            })?;
        }
        Ok(array)
    })
}

/// The named attributes of an open appender's JMX bean, boxed by their type (null for a name
/// it does not have); null once the appender is closed. One snapshot answers all of them.
#[no_mangle]
pub extern "system" fn Java_org_kaaproject_kaa_server_appenders_pahomqtt_appender_NativeAppender_attributes<
    'local,
>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    handle: jlong,
    names: JObjectArray<'local>,
) -> JObjectArray<'local> {
    guard(&mut env, JObjectArray::default(), |env| {
        let Some(appender) = borrow(handle) else {
            return Ok(JObjectArray::default());
        };
        fault::point("attributes");
        let figures = appender.metrics().figures();
        let count = env.get_array_length(&names)?;
        let array = env.new_object_array(count, "java/lang/Object", JObject::null())?;
        for i in 0..count {
            in_local_frame(env, 8, |env| -> Result<(), BridgeError> {
                let name = JString::from(env.get_object_array_element(&names, i)?);
                let Some(at) = read_string(env, &name)?
                    .and_then(|name| FIGURES.iter().position(|(n, _)| *n == name))
                else {
                    return Ok(());
                };
                let (class, signature, value) = match figures[at] {
                    Figure::Count(v) => ("java/lang/Long", "(J)Ljava/lang/Long;", JValue::Long(v)),
                    Figure::Flag(v) => (
                        "java/lang/Boolean",
                        "(Z)Ljava/lang/Boolean;",
                        JValue::Bool(v.into()),
                    ),
                    Figure::Millis(v) => (
                        "java/lang/Double",
                        "(D)Ljava/lang/Double;",
                        JValue::Double(v),
                    ),
                };
                let boxed = env
                    .call_static_method(class, "valueOf", signature, &[value])?
                    .l()?;
                Ok(env.set_object_array_element(&array, i, boxed)?)
            })?;
        }
        Ok(array)
    })
}

/// Must equal `NativeAppender.ABI_VERSION`; bump both when a native signature changes.
const ABI_VERSION: jint = 9;

#[no_mangle]
pub extern "system" fn Java_org_kaaproject_kaa_server_appenders_pahomqtt_appender_NativeAppender_abiVersion<
    'local,
>(
    _env: JNIEnv<'local>,
    _class: JClass<'local>,
) -> jint {
    ABI_VERSION
}

/// Each `log` level with SLF4J's methods for it (what writes at it, what tells whether it is
/// enabled), in the order of `Level`'s discriminants (`Error` is 1): the one mapping of levels.
const SLF4J_LEVELS: [(Level, &str, &str); 5] = [
    (Level::Error, "error", "isErrorEnabled"),
    (Level::Warn, "warn", "isWarnEnabled"),
    (Level::Info, "info", "isInfoEnabled"),
    (Level::Debug, "debug", "isDebugEnabled"),
    (Level::Trace, "trace", "isTraceEnabled"),
];

/// A level's place in [`SLF4J_LEVELS`].
fn slf4j_index(level: Level) -> usize {
    level as usize - 1
}

/// Forwards `log` records to SLF4J through the dispatcher; disabled levels are filtered by
/// `log::max_level` and [`LEVELS`] before any formatting, so they cost no JNI call.
struct JavaLogger;

/// What SLF4J enables for the native loggers, as the dispatcher last read it.
struct Levels {
    /// [`LOGGER_PREFIX`]'s.
    prefix: LevelFilter,
    /// Each target's logger made so far ([`KNOWN_TARGETS`] at load, others as they log), with
    /// its SLF4J ancestors' levels as SLF4J resolved them.
    by_target: Vec<(String, LevelFilter)>,
}

impl Levels {
    /// The most detailed of them: `log::max_level`.
    fn most(&self) -> LevelFilter {
        self.by_target
            .iter()
            .map(|&(_, l)| l)
            .fold(self.prefix, Ord::max)
    }

    /// The level of `target`'s logger: its own, else its nearest ancestor's made so far (a
    /// crate's for its submodules), else the prefix's.
    fn of(&self, target: &str) -> LevelFilter {
        self.by_target
            .iter()
            .filter(|(t, _)| {
                target
                    .strip_prefix(t.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
            })
            .max_by_key(|(t, _)| t.len())
            .map_or(self.prefix, |&(_, l)| l)
    }

    /// The budget of another crate's record, if it has one: its ERROR lines pass at any level
    /// (rumqttc writes one at a packet it did not expect, which a broker can send at every
    /// connection it accepts and ends), ten a minute for each crate, unless DEBUG is set on its
    /// logger, where an operator asked for everything.
    fn budget(&self, target: &str) -> Option<&'static str> {
        if target.starts_with(CRATE_TARGET) || self.of(target) >= LevelFilter::Debug {
            return None;
        }
        let of = |name: &str| {
            target
                .strip_prefix(name)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
        };
        Some(
            KNOWN_TARGETS
                .iter()
                .copied()
                .find(|name| !name.starts_with(CRATE_TARGET) && of(name))
                .unwrap_or("another crate"),
        )
    }

    /// Whether a record of `level` from `target` goes to SLF4J. Other crates' records
    /// (rumqttc warns once per refused message) pass at ERROR only, unless their logger is at
    /// DEBUG: then an operator asked for everything, but their TRACE records never pass:
    /// tungstenite's show each WebSocket frame's bytes, the CONNECT with its password among
    /// them, and every record's payload.
    fn passes(&self, level: log::Level, target: &str) -> bool {
        let allowed = self.of(target);
        level <= allowed
            && (target.starts_with(CRATE_TARGET)
                || (allowed >= LevelFilter::Debug && level <= log::Level::Debug)
                || level == log::Level::Error)
    }
}

static LEVELS: RwLock<Levels> = RwLock::new(Levels {
    prefix: LevelFilter::Info,
    by_target: Vec::new(),
});

/// Takes what the dispatcher read.
fn set_levels(levels: Levels) {
    log::set_max_level(levels.most());
    *LEVELS.write().unwrap_or_else(|p| p.into_inner()) = levels;
}

thread_local! {
    /// Set on the dispatcher thread: what it logs (jni-rs traces its own calls) would be
    /// dispatched to itself again, without end.
    static ON_DISPATCHER: Cell<bool> = const { Cell::new(false) };
}

impl Log for JavaLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        let (level, target) = (metadata.level(), metadata.target());
        level <= log::max_level()
            && !target.starts_with("jni")
            && !ON_DISPATCHER.with(Cell::get)
            && LEVELS
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .passes(level, target)
    }

    fn log(&self, record: &Record) {
        if self.enabled(record.metadata()) {
            let target = record.target();
            let mut text = record.args().to_string();
            let budget = LEVELS
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .budget(target);
            if let Some(kind) = budget {
                static FOREIGN_LINES: LazyLock<LogBudget> = LazyLock::new(LogBudget::default);
                match FOREIGN_LINES.take(kind, Instant::now()) {
                    Some(note) => text.push_str(&note),
                    None => return,
                }
            }
            dispatch(Job::Log(record.level(), Some((target.to_string(), text))));
        }
    }

    fn flush(&self) {}
}

fn resolve(env: &mut JNIEnv) -> Result<JavaSide, jni::errors::Error> {
    let callback = env.find_class(CALLBACK_CLASS)?;
    let outcomes = [
        Outcome::Delivered,
        Outcome::ConnectionError,
        Outcome::RemoteError,
        Outcome::InternalError,
    ];
    let mut answers = Vec::with_capacity(Outcome::COUNT);
    for outcome in outcomes {
        debug_assert_eq!(usize::from(outcome.code()), answers.len());
        answers.push(env.get_method_id(&callback, outcome.to_string(), "()V")?);
    }
    let resolved = methods(answers)?;
    let answers = *ANSWER_METHODS.get_or_init(|| resolved);
    let factory = env.find_class(LOGGER_FACTORY_CLASS)?;
    let get_logger = env.get_static_method_id(&factory, "getLogger", GET_LOGGER_SIG)?;
    let logger = env.find_class(LOGGER_CLASS)?;
    let mut write = Vec::with_capacity(SLF4J_LEVELS.len());
    let mut enabled = Vec::with_capacity(SLF4J_LEVELS.len());
    for (level, name, is_enabled) in SLF4J_LEVELS {
        debug_assert_eq!(slf4j_index(level), write.len());
        write.push(env.get_method_id(&logger, name, "(Ljava/lang/String;)V")?);
        enabled.push(env.get_method_id(&logger, is_enabled, "()Z")?);
    }
    let warn_thrown = env.get_method_id(
        &logger,
        "warn",
        "(Ljava/lang/String;Ljava/lang/Throwable;)V",
    )?;
    Ok(JavaSide {
        answers,
        factory: env.new_global_ref(factory)?,
        get_logger,
        write: methods(write)?,
        enabled: methods(enabled)?,
        warn_thrown,
        thrown_lines: LogBudget::default(),
        loggers: HashMap::new(),
    })
}

/// Resolved methods as the array their table's length gives.
fn methods<const N: usize>(found: Vec<JMethodID>) -> Result<[JMethodID; N], jni::errors::Error> {
    found
        .try_into()
        .map_err(|_| jni::errors::Error::NullPtr("a resolved method"))
}

impl JavaSide {
    /// SLF4J's logger for a `log` target, found once.
    fn logger(&mut self, env: &mut JNIEnv, target: &str) -> Result<GlobalRef, jni::errors::Error> {
        if let Some(logger) = self.loggers.get(target) {
            return Ok(logger.clone());
        }
        let name = if target.is_empty() {
            LOGGER_PREFIX.to_string()
        } else {
            format!("{LOGGER_PREFIX}.{}", target.replace("::", "."))
        };
        let name = env.new_string(name)?;
        // SAFETY: `get_logger` was resolved on this class with GET_LOGGER_SIG: one string, an
        // object.
        let logger = unsafe {
            env.call_static_method_unchecked(
                <&JClass>::from(self.factory.as_obj()),
                self.get_logger,
                ReturnType::Object,
                &[JValue::Object(&name).as_jni()],
            )
        }?
        .l()?;
        let logger = env.new_global_ref(logger)?;
        self.loggers.insert(target.to_string(), logger.clone());
        Ok(logger)
    }

    /// The levels SLF4J enables for the native loggers: the prefix's, and each target's made
    /// so far ([`KNOWN_TARGETS`] made here first).
    fn read_levels(&mut self, env: &mut JNIEnv) -> Result<Levels, jni::errors::Error> {
        in_local_frame(env, 2 * (KNOWN_TARGETS.len() as i32 + 1), |env| {
            let prefix = self.logger(env, "")?;
            let prefix = self.level_of(env, &prefix)?;
            for target in KNOWN_TARGETS {
                // A logger that cannot be made now is tried at the next refresh.
                if self.logger(env, target).is_err() {
                    let _ = env.exception_clear();
                }
            }
            let loggers: Vec<(String, GlobalRef)> = self
                .loggers
                .iter()
                .filter(|(target, _)| !target.is_empty())
                .map(|(target, logger)| (target.clone(), logger.clone()))
                .collect();
            let mut by_target = Vec::with_capacity(loggers.len());
            for (target, logger) in loggers {
                // One that cannot be read has its ancestors' level until it can.
                match self.level_of(env, &logger) {
                    Ok(level) => by_target.push((target, level)),
                    Err(_) => {
                        let _ = env.exception_clear();
                    }
                }
            }
            Ok(Levels { prefix, by_target })
        })
    }

    /// The most detailed level SLF4J enables for `logger`.
    fn level_of(
        &self,
        env: &mut JNIEnv,
        logger: &GlobalRef,
    ) -> Result<LevelFilter, jni::errors::Error> {
        for (level, _, _) in SLF4J_LEVELS.into_iter().rev() {
            // SAFETY: every `enabled` method was resolved on `Logger` with `()Z`.
            let on = unsafe {
                env.call_method_unchecked(
                    logger,
                    self.enabled[slf4j_index(level)],
                    ReturnType::Primitive(Primitive::Boolean),
                    &[],
                )
            }?
            .z()?;
            if on {
                return Ok(level.to_level_filter());
            }
        }
        Ok(LevelFilter::Off)
    }

    fn run(&mut self, env: &mut JNIEnv, job: &mut Job) -> Result<(), jni::errors::Error> {
        in_local_frame(env, 8, |env| {
            let void = || ReturnType::Primitive(Primitive::Void);
            match job {
                Job::Deliver(callback, outcome, tally) => {
                    fault::point("deliver");
                    let Some(callback) = callback.take() else {
                        return Ok(());
                    };
                    let outcome = *outcome;
                    let tally = tally.take();
                    let called = call_answer(env, &self.answers, &callback, outcome);
                    if let Some(tally) = tally {
                        tally.answered(outcome);
                    }
                    if let Err(jni::errors::Error::JavaException) = called {
                        // Kaa's callback threw: the node's log gets it, the next answer goes on.
                        let thrown = env.exception_occurred()?;
                        env.exception_clear()?;
                        let Some(note) = self.thrown_lines.take("thrown", Instant::now()) else {
                            return Ok(());
                        };
                        let logger = self.logger(env, module_path!())?;
                        let message =
                            env.new_string(format!("Kaa's {outcome} callback threw{note}"))?;
                        // SAFETY: `warn_thrown` was resolved on `Logger` with these arguments.
                        unsafe {
                            env.call_method_unchecked(
                                &logger,
                                self.warn_thrown,
                                void(),
                                &[
                                    JValue::Object(&message).as_jni(),
                                    JValue::Object(&thrown).as_jni(),
                                ],
                            )
                        }?;
                    } else {
                        called?;
                    }
                }
                Job::Log(level, text) => {
                    let Some((target, message)) = text.take() else {
                        return Ok(());
                    };
                    let logger = self.logger(env, &target)?;
                    let message = env.new_string(crate::log_budget::one_line(message))?;
                    // SAFETY: every `write` method was resolved on `Logger` with one string.
                    unsafe {
                        env.call_method_unchecked(
                            &logger,
                            self.write[slf4j_index(*level)],
                            void(),
                            &[JValue::Object(&message).as_jni()],
                        )
                    }?;
                }
            }
            Ok(())
        })
    }
}

/// What the dispatcher thread does, apart from how it waits: [`serve`] runs it and survives
/// its panics.
trait Dispatcher {
    type Job;
    /// Hands one job to Java.
    fn run(&mut self, job: &mut Self::Job);
    /// Reads the SLF4J level again.
    fn refresh_level(&mut self);
    /// Logs a panic of the above (the dispatcher's own log records would go to itself).
    fn report(&mut self, message: String);
    /// Hands over, the plainest way, what a job that failed still holds: a pack's answer, so
    /// that every pack is answered even when the usual way fails at every try.
    fn salvage(&mut self, job: &mut Self::Job);
}

/// Reports a panic of the dispatcher; one in the report itself (it logs through Java too) is
/// dropped, so that the loop, every later answer with it, goes on.
fn report<D: Dispatcher>(dispatcher: &mut D, message: String) {
    let _ = catch_unwind(AssertUnwindSafe(|| dispatcher.report(message)));
}

/// The dispatcher's loop: jobs in order until every sender is gone, and the level read again
/// every `refresh`, timed in `lag` as a job is: a logging backend stuck in the read holds
/// every answer behind it. A panic in a job or a refresh is reported with its message and the loop
/// goes on, so one bad job does not take every later answer with it. A job that panicked is
/// run once more: what it hands to Java is taken out just before the call, so the second run
/// delivers what the first did not reach, and never delivers twice. After a second panic,
/// [`Dispatcher::salvage`] hands over what is still in it, the plainest way.
fn serve<D: Dispatcher>(
    rx: &Receiver<D::Job>,
    refresh: Duration,
    lag: &answer_lag::AnswerLag,
    dispatcher: &mut D,
) {
    let mut next_refresh = Instant::now() + refresh;
    loop {
        match rx.recv_timeout(next_refresh.saturating_duration_since(Instant::now())) {
            Ok(mut job) => {
                let mut ran = false;
                for attempt in ["", " (run again)"] {
                    match catch_unwind(AssertUnwindSafe(|| dispatcher.run(&mut job))) {
                        Ok(()) => {
                            ran = true;
                            break;
                        }
                        Err(payload) => report(
                            dispatcher,
                            format!(
                                "panic in the callback dispatcher{attempt}: {}; it goes on",
                                panic_message(payload)
                            ),
                        ),
                    }
                }
                if !ran {
                    // Timed as a job is: a callback that blocks here holds every answer too.
                    let _serving = lag.serving(answer_lag::now());
                    if let Err(payload) =
                        catch_unwind(AssertUnwindSafe(|| dispatcher.salvage(&mut job)))
                    {
                        let message = panic_message(payload);
                        report(
                            dispatcher,
                            format!(
                                "panic in the callback dispatcher's last try: {message}; that \
                                 answer is lost, it goes on"
                            ),
                        );
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        // Also while jobs keep coming: a busy appender must follow the level too.
        if Instant::now() >= next_refresh {
            let _serving = lag.serving(answer_lag::now());
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| dispatcher.refresh_level())) {
                report(
                    dispatcher,
                    format!(
                        "panic while reading the log level: {}; it goes on",
                        panic_message(payload)
                    ),
                );
            }
            next_refresh = Instant::now() + refresh;
        }
    }
}

/// The dispatcher thread's side of the JVM.
struct Attached<'local> {
    env: JNIEnv<'local>,
    side: JavaSide,
}

impl Attached<'_> {
    /// Our Java methods catch everything; anything pending after a call is a JNI failure.
    fn clear_exception(&mut self) {
        if self.env.exception_check().unwrap_or(false) {
            let _ = self.env.exception_describe();
            let _ = self.env.exception_clear();
        }
    }

    /// Logs from the dispatcher itself, past the queue (its own records would go to itself).
    fn say(&mut self, level: Level, message: String) {
        let mut job = Job::Log(level, Some((module_path!().to_string(), message)));
        let _ = self.side.run(&mut self.env, &mut job);
        self.clear_exception();
    }
}

impl Dispatcher for Attached<'_> {
    type Job = Queued;

    fn run(&mut self, queued: &mut Queued) {
        {
            let _serving = answer_lag::ANSWERS.serving(queued.at);
            if self.side.run(&mut self.env, &mut queued.job).is_err() {
                // A JNI failure: if it came before the call (no room for a local frame, say),
                // the answer is still in the job.
                self.clear_exception();
                self.salvage(queued);
            }
            self.clear_exception();
        }
        let now = answer_lag::now();
        if let Some(report) = answer_lag::ANSWERS.caught_up(queued.at, now) {
            // The backend that held the answers may hold this line too: a job as any other.
            let _serving = answer_lag::ANSWERS.serving(now);
            self.say(Level::Warn, report);
        }
    }

    fn refresh_level(&mut self) {
        match self.side.read_levels(&mut self.env) {
            Ok(levels) => set_levels(levels),
            Err(_) => self.clear_exception(),
        }
    }

    fn report(&mut self, message: String) {
        self.say(Level::Error, message);
    }

    /// The answer alone: no local frame (the call makes no local reference), no logging.
    fn salvage(&mut self, queued: &mut Queued) {
        if let Job::Deliver(callback, outcome, tally) = &mut queued.job {
            if let Some(callback) = callback.take() {
                let _ = call_answer(&mut self.env, &self.side.answers, &callback, *outcome);
                if let Some(tally) = tally.take() {
                    tally.answered(*outcome);
                }
            }
        }
        self.clear_exception();
    }
}

/// The dispatcher's thread, to Rust and to Java.
const DISPATCHER_NAME: &str = "kaa-mqtt-callbacks";

/// Gives the attached thread its name on the Java side too.
fn name_java_thread(env: &mut JNIEnv, name: &str) -> jni::errors::Result<()> {
    let thread = env
        .call_static_method(
            "java/lang/Thread",
            "currentThread",
            "()Ljava/lang/Thread;",
            &[],
        )?
        .l()?;
    let name = env.new_string(name)?;
    env.call_method(
        &thread,
        "setName",
        "(Ljava/lang/String;)V",
        &[(&name).into()],
    )?;
    Ok(())
}

/// The dispatcher: one thread, attached once as a daemon (it must not keep the JVM from
/// exiting), draining jobs until the process ends. Returns once it is attached: a thread that
/// could not attach would leave every pack unanswered, and the library loaded as if well.
fn start_dispatcher(vm: JavaVM, side: JavaSide) -> Result<Sender<Queued>, String> {
    let (tx, rx) = channel::<Queued>();
    let (attached_tx, attached) = std::sync::mpsc::sync_channel(1);
    let thread = std::thread::Builder::new()
        .name(DISPATCHER_NAME.into())
        .spawn(move || {
            let mut env = match vm.attach_current_thread_as_daemon() {
                Ok(env) => env,
                Err(e) => {
                    let _ = attached_tx.send(Err(format!("{DISPATCHER_NAME} not attached: {e}")));
                    return;
                }
            };
            let _ = attached_tx.send(Ok(()));
            // jni attaches it nameless ("Thread-0" in thread dumps and every native log line).
            if name_java_thread(&mut env, DISPATCHER_NAME).is_err() {
                let _ = env.exception_clear();
            }
            ON_DISPATCHER.with(|on| on.set(true));
            let dispatcher = &mut Attached { env, side };
            serve(&rx, LEVEL_REFRESH, &answer_lag::ANSWERS, dispatcher);
        })
        .map_err(|e| format!("{DISPATCHER_NAME} not started: {e}"))?;
    // Bounded: should attaching hang, the library loads as before rather than hold the node.
    let why = match attached.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(())) | Err(RecvTimeoutError::Timeout) => return Ok(tx),
        Ok(Err(why)) => why,
        Err(RecvTimeoutError::Disconnected) => format!("{DISPATCHER_NAME} ended unattached"),
    };
    // The JDK unloads a library whose JNI_OnLoad fails: none of its code may still run.
    let _ = thread.join();
    Err(why)
}

#[no_mangle]
pub extern "system" fn JNI_OnLoad(vm: JavaVM, _reserved: *mut c_void) -> jint {
    crate::supervise::note_panics(crate::supervise::OnStderr::TenAMinute);
    let raw = vm.get_java_vm_pointer();
    let loaded = catch_unwind(AssertUnwindSafe(|| -> Result<(), String> {
        let (side, levels) = {
            let mut env = vm.get_env().map_err(|e| e.to_string())?;
            let mut side = resolve(&mut env).map_err(|e| e.to_string())?;
            // The node's levels from the first line on, not only from the first refresh.
            let levels = side.read_levels(&mut env).unwrap_or_else(|_| {
                let _ = env.exception_clear();
                Levels {
                    prefix: LevelFilter::Info,
                    by_target: Vec::new(),
                }
            });
            (side, levels)
        };
        let tx = start_dispatcher(vm, side)?;
        if DISPATCHER.set(tx).is_ok() {
            let _ = log::set_boxed_logger(Box::new(JavaLogger));
            set_levels(levels);
        }
        Ok(())
    }));
    let why = match loaded {
        Ok(Ok(())) => return JNI_VERSION_1_8,
        Ok(Err(why)) => why,
        Err(payload) => panic_message(payload),
    };
    // The JDK throws what `JNI_OnLoad` leaves pending from `System.load`: an error that says
    // why, as the loader's `UnsatisfiedLinkError`, not the `NoSuchMethodError` a lookup left,
    // which no caller expects, nor "unsupported JNI version".
    // SAFETY: the VM that called this function, alive while it runs.
    if let Ok(vm) = unsafe { JavaVM::from_raw(raw) } {
        if let Ok(mut env) = vm.get_env() {
            // jni says only "Java exception was thrown": the exception names the class or
            // method a lookup missed.
            let cause = pending_text(&mut env).map_or(String::new(), |t| format!(" ({t})"));
            let _ = env.throw_new(
                "java/lang/UnsatisfiedLinkError",
                format!("kaa-mqtt-appender native library could not start: {why}{cause}"),
            );
        }
    }
    JNI_ERR
}

/// The pending exception's `toString`, cleared with it; `None` when none is pending.
fn pending_text(env: &mut JNIEnv) -> Option<String> {
    let pending = env.exception_occurred().ok().filter(|e| !e.is_null());
    let _ = env.exception_clear();
    let text = env
        .call_method(pending?, "toString", "()Ljava/lang/String;", &[])
        .and_then(|t| t.l())
        .and_then(|t| read_string(env, &JString::from(t)));
    let _ = env.exception_clear();
    text.ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer_lag::AnswerLag;

    /// Every module of the crate, and every crate that logs (what depends on `log` in
    /// Cargo.lock, but jni, whose records never pass), has its logger made at load
    /// ([`KNOWN_TARGETS`]).
    #[test]
    fn logged_targets_are_the_crates_and_modules() {
        let root = env!("CARGO_MANIFEST_DIR");
        let modules = std::fs::read_dir(format!("{root}/src"))
            .expect("src")
            .map(|e| e.expect("entry").path())
            .filter_map(|p| {
                let name = p.file_stem()?.to_str()?.to_string();
                (p.is_dir() || p.extension()? == "rs").then_some(name)
            })
            .filter(|name| !["lib", "test_log"].contains(&name.as_str()))
            .map(|name| format!("{CRATE_TARGET}::{name}"));
        let lock = std::fs::read_to_string(format!("{root}/Cargo.lock")).expect("Cargo.lock");
        let crates = lock.split("[[package]]").filter_map(|package| {
            let name = package.lines().find_map(|l| l.strip_prefix("name = \""))?;
            let name = name.trim_end_matches('"').replace('-', "_");
            let logs = package.lines().map(str::trim).any(|l| {
                // `"log",`, or `"log 0.4.x",` where two versions are locked.
                l == "\"log\"," || l.starts_with("\"log ")
            });
            (logs && !["jni", "kaa_mqtt_appender"].contains(&name.as_str())).then_some(name)
        });
        let mut expected: Vec<String> = modules.chain(crates).collect();
        expected.push(CRATE_TARGET.into());
        expected.sort();
        expected.dedup();
        let mut known: Vec<String> = KNOWN_TARGETS.iter().map(|t| t.to_string()).collect();
        known.sort();
        assert_eq!(known, expected);
    }

    /// Which records go to SLF4J: ours at their logger's level, other crates' at ERROR unless
    /// theirs is at DEBUG. DEBUG on `connection` alone lets neither another module's DEBUG
    /// records through nor rumqttc's (one per publish), which SLF4J would only drop.
    #[test]
    fn records_pass_at_their_loggers_level_and_other_crates_at_error() {
        use log::Level::{Debug, Error, Info, Warn};
        let mut levels = Levels {
            prefix: LevelFilter::Info,
            by_target: vec![
                ("kaa_mqtt_appender::connection".into(), LevelFilter::Debug),
                ("rumqttc".into(), LevelFilter::Info),
            ],
        };
        for (level, target, passes) in [
            (Debug, "kaa_mqtt_appender::connection", true),
            (Debug, "kaa_mqtt_appender::delivery", false),
            (Info, "kaa_mqtt_appender::delivery", true),
            (Debug, "rumqttc::state", false),
            (Warn, "rumqttc::state", false),
            (Error, "rumqttc::state", true),
        ] {
            assert_eq!(levels.passes(level, target), passes, "{level} {target}");
        }
        levels.by_target[1].1 = LevelFilter::Debug;
        assert!(
            levels.passes(Debug, "rumqttc::state"),
            "asked for everything"
        );
        levels.by_target[1].1 = LevelFilter::Trace;
        assert!(
            !levels.passes(log::Level::Trace, "rumqttc::state"),
            "never another crate's TRACE: tungstenite's show the frames, passwords and all"
        );
        assert!(levels.passes(Debug, "rumqttc::state"));
    }

    /// A record's level is its module logger's, else its nearest ancestor's made so far, else
    /// the prefix's: DEBUG on `connection` alone lets that module's DEBUG records through, not
    /// its neighbours' nor other crates'.
    #[test]
    fn a_records_level_is_its_nearest_loggers() {
        let levels = Levels {
            prefix: LevelFilter::Info,
            by_target: vec![
                (CRATE_TARGET.into(), LevelFilter::Warn),
                ("kaa_mqtt_appender::connection".into(), LevelFilter::Debug),
            ],
        };
        assert_eq!(levels.most(), LevelFilter::Debug);
        for (target, level) in [
            ("kaa_mqtt_appender::connection", LevelFilter::Debug),
            ("kaa_mqtt_appender::connection::tests", LevelFilter::Debug),
            ("kaa_mqtt_appender::connections", LevelFilter::Warn),
            ("kaa_mqtt_appender::delivery", LevelFilter::Warn),
            ("kaa_mqtt_appender", LevelFilter::Warn),
            ("rumqttc::state", LevelFilter::Info),
        ] {
            assert_eq!(levels.of(target), level, "{target}");
        }
    }

    /// Other crates' records share a budget per crate (ten a minute), so that one crate's
    /// flood hides no other's; ours have none, nor a crate whose logger is at DEBUG.
    #[test]
    fn other_crates_records_have_a_budget_each() {
        let mut levels = Levels {
            prefix: LevelFilter::Info,
            by_target: vec![("rumqttc".into(), LevelFilter::Info)],
        };
        assert_eq!(levels.budget("kaa_mqtt_appender::connection"), None);
        assert_eq!(levels.budget("rumqttc::state"), Some("rumqttc"));
        assert_eq!(levels.budget("rustls"), Some("rustls"));
        assert_eq!(levels.budget("rumqttcx"), Some("another crate"));
        assert_eq!(levels.budget("hyper::client"), Some("another crate"));
        levels.by_target[0].1 = LevelFilter::Debug;
        assert_eq!(
            levels.budget("rumqttc::state"),
            None,
            "asked for everything"
        );
        assert_eq!(levels.budget("rustls"), Some("rustls"));
    }

    /// Jobs 1 to `n`, queued, their sender gone: the dispatcher ends after them.
    fn queued(n: u32) -> Receiver<Option<u32>> {
        let (tx, rx) = channel();
        for job in 1..=n {
            tx.send(Some(job)).expect("queued");
        }
        rx
    }

    /// Jobs are numbers; the dispatcher records what reached "Java".
    #[derive(Default)]
    struct Recording {
        delivered: Vec<u32>,
        /// This job panics at every run.
        always_panics: u32,
        /// This job panics at its first run, before it reaches Java.
        panics_once: u32,
        /// Jobs handed over by the last try, and the one whose last try panics.
        salvaged: Vec<u32>,
        salvage_panics: u32,
        panicked_once: bool,
        refreshes: usize,
        /// The first refresh panics.
        refresh_panics: bool,
        reports: Vec<String>,
        /// Reporting panics too (it logs through Java).
        report_panics: bool,
        /// At each refresh and last try, whether this shows the answers late were it to last
        /// 11 s.
        watched: Option<&'static AnswerLag>,
        late_while_refreshing: Vec<bool>,
        late_while_salvaging: Vec<bool>,
    }

    impl Recording {
        fn late_were_it_to_last(&self) -> Option<bool> {
            let later = answer_lag::now() + Duration::from_secs(11).as_nanos() as u64;
            Some(self.watched?.behind(|| later).is_some())
        }
    }

    impl Dispatcher for Recording {
        type Job = Option<u32>;

        fn run(&mut self, job: &mut Option<u32>) {
            let n = job.unwrap_or_default();
            if n == self.always_panics {
                panic!("injected: job {n} panics");
            }
            if n == self.panics_once && !self.panicked_once {
                self.panicked_once = true;
                panic!("injected: job {n} panics once");
            }
            if let Some(n) = job.take() {
                self.delivered.push(n);
            }
        }

        fn refresh_level(&mut self) {
            self.refreshes += 1;
            self.late_while_refreshing
                .extend(self.late_were_it_to_last());
            if std::mem::take(&mut self.refresh_panics) {
                panic!("injected: the level cannot be read");
            }
        }

        fn report(&mut self, message: String) {
            self.reports.push(message);
            if self.report_panics {
                panic!("injected: the report panics");
            }
        }

        fn salvage(&mut self, job: &mut Option<u32>) {
            self.late_while_salvaging
                .extend(self.late_were_it_to_last());
            if let Some(n) = job.take() {
                if n == self.salvage_panics {
                    panic!("injected: the last try of job {n} panics");
                }
                self.salvaged.push(n);
            }
        }
    }

    /// A job that panics no longer ends the dispatcher: the panic is reported with its
    /// message and the jobs after it are still delivered. (Before: the thread ended and every
    /// later answer was lost.) A job that panicked before reaching Java is run once more, and
    /// one that panics again is handed over by the last try. (Before: its pack was never
    /// answered.)
    #[test]
    fn a_panicking_job_is_reported_and_later_jobs_are_delivered() {
        let rx = queued(5);
        let mut d = Recording {
            always_panics: 2,
            panics_once: 4,
            ..Recording::default()
        };
        serve(&rx, Duration::from_secs(3600), &AnswerLag::new(), &mut d);
        assert_eq!(d.delivered, [1, 3, 4, 5]);
        assert_eq!(d.salvaged, [2]);
        assert_eq!(d.reports.len(), 3, "{:?}", d.reports);
        assert!(
            d.reports[0].contains("injected: job 2 panics"),
            "{:?}",
            d.reports
        );
        assert!(d.reports[1].contains("(run again): injected: job 2 panics"));
        assert!(d.reports[2].contains("injected: job 4 panics once"));
    }

    /// A panic in the last try is reported, and the jobs after it are delivered.
    #[test]
    fn a_last_try_that_panics_is_reported() {
        let rx = queued(3);
        let mut d = Recording {
            always_panics: 2,
            salvage_panics: 2,
            ..Recording::default()
        };
        serve(&rx, Duration::from_secs(3600), &AnswerLag::new(), &mut d);
        assert_eq!(d.delivered, [1, 3]);
        assert!(d.salvaged.is_empty());
        assert_eq!(d.reports.len(), 3, "{:?}", d.reports);
        assert!(
            d.reports[2]
                .contains("panic in the callback dispatcher's last try: injected: the last try"),
            "{:?}",
            d.reports
        );
    }

    /// A panic while a panic is reported (the report logs through Java) does not end the
    /// dispatcher either. (Before: the thread ended, and every later answer was lost.)
    #[test]
    fn a_report_that_panics_does_not_end_the_dispatcher() {
        let rx = queued(3);
        let mut d = Recording {
            always_panics: 1,
            report_panics: true,
            ..Recording::default()
        };
        serve(&rx, Duration::from_secs(3600), &AnswerLag::new(), &mut d);
        assert_eq!(d.delivered, [2, 3]);
        assert_eq!(d.salvaged, [1]);
        assert_eq!(d.reports.len(), 2, "{:?}", d.reports);
    }

    /// Not before `refresh` has passed: each read is JNI calls into the node's logging.
    #[test]
    fn the_level_is_not_read_before_its_time() {
        let rx = queued(3);
        let mut d = Recording::default();
        serve(&rx, Duration::from_secs(3600), &AnswerLag::new(), &mut d);
        assert_eq!(d.delivered, [1, 2, 3]);
        assert_eq!(d.refreshes, 0);
    }

    /// The level is read again at every `refresh` (here: after every job), also when a read
    /// panics once.
    #[test]
    fn the_level_is_read_again_while_jobs_come() {
        let rx = queued(3);
        let mut d = Recording {
            refresh_panics: true,
            ..Recording::default()
        };
        serve(&rx, Duration::ZERO, &AnswerLag::new(), &mut d);
        assert_eq!(d.delivered, [1, 2, 3]);
        assert_eq!(d.refreshes, 3);
        assert_eq!(d.reports.len(), 1, "{:?}", d.reports);
        assert!(d.reports[0].contains("injected: the level cannot be read"));
    }

    /// A level read that hangs (a logging backend stuck in `getLogger`) is timed as a job is,
    /// so that packs appended once it is 10 s late are answered at once on their own thread,
    /// and only while it runs. (Before: only jobs were timed, and answers queued behind a
    /// stuck read without bound.)
    #[test]
    fn a_level_read_is_timed_as_a_job() {
        static LAG: AnswerLag = AnswerLag::new();
        let rx = queued(1);
        let mut d = Recording {
            watched: Some(&LAG),
            ..Recording::default()
        };
        serve(&rx, Duration::ZERO, &LAG, &mut d);
        assert_eq!(d.late_while_refreshing, [true]);
        let later = answer_lag::now() + Duration::from_secs(11).as_nanos() as u64;
        assert_eq!(LAG.behind(|| later), None, "not once it returned");
    }

    /// So is the last try of a job (a callback that blocks there holds every answer too).
    #[test]
    fn a_last_try_is_timed_as_a_job() {
        static LAG: AnswerLag = AnswerLag::new();
        let rx = queued(1);
        let mut d = Recording {
            always_panics: 1,
            watched: Some(&LAG),
            ..Recording::default()
        };
        serve(&rx, Duration::from_secs(3600), &LAG, &mut d);
        assert_eq!(d.salvaged, [1]);
        assert_eq!(d.late_while_salvaging, [true]);
    }

    /// Each level finds its own SLF4J methods: the table's order is the index's.
    #[test]
    fn each_level_has_its_slf4j_methods() {
        for level in Level::iter() {
            let (at, write, enabled) = SLF4J_LEVELS[slf4j_index(level)];
            assert_eq!(at, level);
            let name = level.as_str().to_lowercase();
            assert_eq!(write, name);
            assert_eq!(enabled.to_lowercase(), format!("is{name}enabled"));
        }
    }

    /// The panic an entry point catches (`append`'s, `guard`'s) reaches the log with its
    /// message and where it began, not only the exception or failure callback it becomes.
    #[test]
    fn a_caught_panic_is_logged_with_its_message_and_place() {
        crate::test_log::capture();
        crate::supervise::note_panics(crate::supervise::OnStderr::Every);
        let line = line!() + 1;
        let payload = catch_unwind(|| panic!("injected: append panics on record {}", 7))
            .expect_err("it panics");
        let expected = format!("injected: append panics on record 7 (at src/bridge.rs:{line})");
        assert_eq!(log_panic(payload), expected);
        let captured = crate::test_log::lines_with("injected: append panics on record 7");
        assert!(
            captured
                .iter()
                .any(|l| *l == format!("ERROR panic in kaa-mqtt-appender native code: {expected}")),
            "{captured:?}"
        );
        // Ten lines a minute, this one included, the tenth saying so.
        for i in 0..11 {
            let payload = catch_unwind(|| panic!("injected: budget {i}")).expect_err("it panics");
            log_panic(payload);
        }
        let budget = crate::test_log::lines_with("injected: budget");
        assert_eq!(budget.len(), 9, "{budget:#?}");
        assert!(budget[8].contains("left out for the rest of the minute"));
    }
}
