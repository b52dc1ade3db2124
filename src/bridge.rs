//! The JNI bridge: the only module that knows JNI and the only one with `unsafe`.
//!
//! Every entry point runs inside [`guard`], which catches panics: a failure becomes a Java
//! exception (`open`, `close`) or the pack's failure callback (`append`), never a crashed
//! node. Handles are `Arc<Appender>` pointers in a `jlong`, created by `open` and freed
//! exactly once by `close`; the Java side never calls `append` after `close` (a read/write
//! lock in `NativeHandle`).
//!
//! Calls into Java (delivery callbacks, log records) are made from one dispatcher thread,
//! attached to the JVM once: tokio workers never touch JNI, and a slow callback delays other
//! callbacks but never the network.
#![deny(clippy::unwrap_used)]

use std::any::Any;
use std::cell::Cell;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, OnceLock};

use jni::objects::{
    GlobalRef, JByteArray, JClass, JIntArray, JLongArray, JObject, JObjectArray, JStaticMethodID,
    JString, JValue,
};
use jni::signature::{Primitive, ReturnType};
use jni::sys::{jint, jlong, JNI_ERR, JNI_VERSION_1_8};
use jni::{JNIEnv, JavaVM};
use log::{LevelFilter, Log, Metadata, Record};

use crate::appender::Appender;
use crate::config::AppenderConfig;
use crate::delivery::Outcome;
use crate::header::HeaderStructure;

const DISPATCH_CLASS: &str =
    "org/kaaproject/kaa/server/appenders/pahomqtt/appender/DeliveryDispatch";
const DISPATCH_SIG: &str =
    "(Lorg/kaaproject/kaa/server/common/log/shared/appender/LogDeliveryCallback;I)V";
const LOG_CLASS: &str = "org/kaaproject/kaa/server/appenders/pahomqtt/appender/NativeLog";
const LOG_SIG: &str = "(ILjava/lang/String;Ljava/lang/String;)V";

/// Work for the dispatcher thread.
enum Job {
    Deliver(GlobalRef, Outcome),
    Log(jint, String, String),
}

/// The Java side, resolved once in `JNI_OnLoad` with the loader that loaded our classes
/// (a bare `FindClass` on a native thread would see only the system class loader).
struct JavaSide {
    dispatch_class: GlobalRef,
    deliver: JStaticMethodID,
    log_class: GlobalRef,
    log: JStaticMethodID,
}

static DISPATCHER: OnceLock<Sender<Job>> = OnceLock::new();

fn dispatch(job: Job) {
    if let Some(tx) = DISPATCHER.get() {
        // The dispatcher lives as long as the process; a failed send means the JVM is going.
        let _ = tx.send(job);
    }
}

/// Errors that become Java exceptions, each mapped to its class in one place.
enum BridgeError {
    Config(String),
    Closed,
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
            BridgeError::Closed => (
                "java/lang/IllegalStateException",
                "the appender is closed".to_string(),
            ),
            BridgeError::Jni(e) => ("java/lang/IllegalStateException", format!("JNI: {e}")),
            BridgeError::Panic(m) => (
                "java/lang/RuntimeException",
                format!("panic in kaa-mqtt-appender native code: {m}"),
            ),
        };
        let _ = env.throw_new(class, message);
    }
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

/// Runs one entry point: a panic or an error becomes a Java exception and `fallback`.
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
            BridgeError::Panic(panic_message(payload)).throw(env);
            fallback
        }
    }
}

/// Borrows the appender behind a handle without taking ownership.
fn borrow(handle: jlong) -> Result<Arc<Appender>, BridgeError> {
    let ptr = handle as *const Appender;
    if ptr.is_null() {
        return Err(BridgeError::Closed);
    }
    // SAFETY: a non-zero handle comes from `Arc::into_raw` in `open` and is released only by
    // `close`, which the Java side never runs concurrently with or before another call on it.
    // Bumping the count first keeps the appender alive for this call.
    unsafe {
        Arc::increment_strong_count(ptr);
        Ok(Arc::from_raw(ptr))
    }
}

/// The Kaa callback of one pack. It answers exactly once: with the outcome, or with
/// `InternalError` if dropped unanswered (an error or panic on the way).
struct JavaCallback(Option<GlobalRef>);

impl JavaCallback {
    fn answer(mut self, outcome: Outcome) {
        if let Some(callback) = self.0.take() {
            dispatch(Job::Deliver(callback, outcome));
        }
    }
}

impl Drop for JavaCallback {
    fn drop(&mut self) {
        if let Some(callback) = self.0.take() {
            dispatch(Job::Deliver(callback, Outcome::InternalError));
        }
    }
}

fn outcome_code(outcome: Outcome) -> jint {
    // Must match DeliveryDispatch.deliver.
    match outcome {
        Outcome::Delivered => 0,
        Outcome::ConnectionError => 1,
        Outcome::RemoteError => 2,
        Outcome::InternalError => 3,
    }
}

/// The pack's records: one byte array holding them all, and where each ends.
fn read_records(
    env: &mut JNIEnv,
    data: &JByteArray,
    ends: &JIntArray,
) -> Result<(Vec<u8>, Vec<usize>), String> {
    let err = |e: jni::errors::Error| format!("cannot read the pack's events: {e}");
    let data = env.convert_byte_array(data).map_err(err)?;
    let mut raw = vec![0; env.get_array_length(ends).map_err(err)? as usize];
    env.get_int_array_region(ends, 0, &mut raw).map_err(err)?;
    let mut start = 0;
    let mut out = Vec::with_capacity(raw.len());
    for (i, &end) in raw.iter().enumerate() {
        match usize::try_from(end) {
            Ok(end) if end >= start && end <= data.len() => {
                out.push(end);
                start = end;
            }
            _ => return Err(format!("event {i} ends at {end}, outside the pack's data")),
        }
    }
    Ok((data, out))
}

#[no_mangle]
pub extern "system" fn Java_org_kaaproject_kaa_server_appenders_pahomqtt_appender_NativeAppender_open<
    'local,
>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    raw_config: JByteArray<'local>,
    name: JString<'local>,
    application_token: JString<'local>,
    header_fields: JObjectArray<'local>,
) -> jlong {
    guard(&mut env, 0, |env| {
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
        let config =
            AppenderConfig::from_avro(&raw).map_err(|e| BridgeError::Config(e.to_string()))?;
        Ok(Arc::into_raw(Appender::open(&name, &token, header, config)) as jlong)
    })
}

/// The records of a pack, as slices of its data.
fn split<'a>(data: &'a [u8], ends: &[usize]) -> Vec<&'a [u8]> {
    let mut start = 0;
    ends.iter()
        .map(|&end| {
            let record = &data[start..end];
            start = end;
            record
        })
        .collect()
}

#[no_mangle]
pub extern "system" fn Java_org_kaaproject_kaa_server_appenders_pahomqtt_appender_NativeAppender_append<
    'local,
>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    handle: jlong,
    schema: JString<'local>,
    schema_version: jint,
    records: JByteArray<'local>,
    record_ends: JIntArray<'local>,
    endpoint: JString<'local>,
    callback: JObject<'local>,
) {
    // Once the callback is held, every failure is answered through it, never thrown: the
    // node answers a thrown exception itself, and the endpoint must not get two answers.
    let callback = match env.new_global_ref(&callback) {
        Ok(global) => JavaCallback(Some(global)),
        Err(e) => return BridgeError::Jni(e).throw(&mut env),
    };
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let appender = match borrow(handle) {
            Ok(appender) => appender,
            Err(_) => return callback.answer(Outcome::InternalError),
        };
        let inputs = (|| -> Result<_, String> {
            let schema: String = env
                .get_string(&schema)
                .map_err(|e| format!("no log schema: {e}"))?
                .into();
            let endpoint: String = match env.get_string(&endpoint) {
                Ok(s) => s.into(),
                Err(_) => String::from("(unknown)"),
            };
            Ok((
                schema,
                read_records(&mut env, &records, &record_ends)?,
                endpoint,
            ))
        })();
        match inputs {
            Ok((schema, (data, ends), endpoint)) => appender.append(
                &schema,
                schema_version,
                &split(&data, &ends),
                &endpoint,
                Box::new(move |outcome| callback.answer(outcome)),
            ),
            Err(reason) => {
                log::warn!("pack not published: {reason}");
                callback.answer(Outcome::InternalError);
            }
        }
    }));
    // A pending Java exception from a failed JNI call must not escape: the pack is answered.
    if env.exception_check().unwrap_or(false) {
        let _ = env.exception_clear();
    }
}

#[no_mangle]
pub extern "system" fn Java_org_kaaproject_kaa_server_appenders_pahomqtt_appender_NativeAppender_close<
    'local,
>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    handle: jlong,
) {
    guard(&mut env, (), |_| {
        let ptr = handle as *const Appender;
        if ptr.is_null() {
            return Ok(());
        }
        // SAFETY: the handle came from `Arc::into_raw` in `open`; the Java side clears its copy
        // before calling here, so this reclaims the reference exactly once.
        let appender = unsafe { Arc::from_raw(ptr) };
        appender.close();
        Ok(())
    })
}

#[no_mangle]
pub extern "system" fn Java_org_kaaproject_kaa_server_appenders_pahomqtt_appender_NativeAppender_metrics<
    'local,
>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    handle: jlong,
) -> JLongArray<'local> {
    guard(&mut env, JLongArray::default(), |env| {
        let values = borrow(handle)?.metrics().to_array();
        let array = env.new_long_array(values.len() as i32)?;
        env.set_long_array_region(&array, 0, &values)?;
        Ok(array)
    })
}

/// Must equal `NativeAppender.ABI_VERSION`; bump both when a native signature changes.
const ABI_VERSION: jint = 3;

#[no_mangle]
pub extern "system" fn Java_org_kaaproject_kaa_server_appenders_pahomqtt_appender_NativeAppender_abiVersion<
    'local,
>(
    _env: JNIEnv<'local>,
    _class: JClass<'local>,
) -> jint {
    ABI_VERSION
}

#[no_mangle]
pub extern "system" fn Java_org_kaaproject_kaa_server_appenders_pahomqtt_appender_NativeAppender_setLogLevel<
    'local,
>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    level: jint,
) {
    guard(&mut env, (), |_| {
        log::set_max_level(level_filter(level));
        Ok(())
    })
}

/// 0 off, 1 error, 2 warn, 3 info, 4 debug, 5 trace (NativeLog's numbering).
fn level_filter(level: jint) -> LevelFilter {
    match level {
        i32::MIN..=0 => LevelFilter::Off,
        1 => LevelFilter::Error,
        2 => LevelFilter::Warn,
        3 => LevelFilter::Info,
        4 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

/// Forwards `log` records to SLF4J through the dispatcher; disabled levels are filtered by
/// `log::max_level` before any formatting, so they cost no JNI call.
struct JavaLogger;

thread_local! {
    /// Set on the dispatcher thread: what it logs (jni-rs traces its own calls) would be
    /// dispatched to itself again, without end.
    static ON_DISPATCHER: Cell<bool> = const { Cell::new(false) };
}

impl Log for JavaLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        let max = log::max_level();
        // Other crates' records (rumqttc warns once per refused message) pass at ERROR only,
        // unless native DEBUG is on: then an operator asked for everything.
        let ours = metadata.target().starts_with("kaa_mqtt_appender");
        metadata.level() <= max
            && (ours || max >= LevelFilter::Debug || metadata.level() == log::Level::Error)
            && !metadata.target().starts_with("jni")
            && !ON_DISPATCHER.with(Cell::get)
    }

    fn log(&self, record: &Record) {
        if self.enabled(record.metadata()) {
            dispatch(Job::Log(
                record.level() as jint,
                record.target().to_string(),
                record.args().to_string(),
            ));
        }
    }

    fn flush(&self) {}
}

fn resolve(env: &mut JNIEnv) -> Result<JavaSide, jni::errors::Error> {
    let dispatch_class = env.find_class(DISPATCH_CLASS)?;
    let deliver = env.get_static_method_id(&dispatch_class, "deliver", DISPATCH_SIG)?;
    let log_class = env.find_class(LOG_CLASS)?;
    let log = env.get_static_method_id(&log_class, "log", LOG_SIG)?;
    Ok(JavaSide {
        dispatch_class: env.new_global_ref(dispatch_class)?,
        deliver,
        log_class: env.new_global_ref(log_class)?,
        log,
    })
}

impl JavaSide {
    fn run(&self, env: &mut JNIEnv, job: Job) -> Result<(), jni::errors::Error> {
        env.with_local_frame(4, |env| {
            let void = ReturnType::Primitive(Primitive::Void);
            match job {
                Job::Deliver(callback, outcome) => {
                    let args = [
                        JValue::Object(callback.as_obj()).as_jni(),
                        JValue::Int(outcome_code(outcome)).as_jni(),
                    ];
                    // SAFETY: `deliver` was resolved on this class with DISPATCH_SIG, which
                    // these two arguments match.
                    unsafe {
                        env.call_static_method_unchecked(
                            <&JClass>::from(self.dispatch_class.as_obj()),
                            self.deliver,
                            void,
                            &args,
                        )
                    }?;
                }
                Job::Log(level, target, message) => {
                    let target = env.new_string(target)?;
                    let message = env.new_string(message)?;
                    let args = [
                        JValue::Int(level).as_jni(),
                        JValue::Object(&target).as_jni(),
                        JValue::Object(&message).as_jni(),
                    ];
                    // SAFETY: `log` was resolved on this class with LOG_SIG, which these
                    // three arguments match.
                    unsafe {
                        env.call_static_method_unchecked(
                            <&JClass>::from(self.log_class.as_obj()),
                            self.log,
                            void,
                            &args,
                        )
                    }?;
                }
            }
            Ok(())
        })
    }
}

/// The dispatcher: one thread, attached once as a daemon (it must not keep the JVM from
/// exiting), draining jobs until the process ends.
fn start_dispatcher(vm: JavaVM, side: JavaSide) -> std::io::Result<Sender<Job>> {
    let (tx, rx) = channel::<Job>();
    std::thread::Builder::new()
        .name("kaa-mqtt-callbacks".into())
        .spawn(move || {
            let Ok(mut env) = vm.attach_current_thread_as_daemon() else {
                return;
            };
            ON_DISPATCHER.with(|on| on.set(true));
            for job in rx {
                // Our Java methods catch everything; anything pending here is a JNI failure.
                if side.run(&mut env, job).is_err() || env.exception_check().unwrap_or(false) {
                    let _ = env.exception_describe();
                    let _ = env.exception_clear();
                }
            }
        })?;
    Ok(tx)
}

#[no_mangle]
pub extern "system" fn JNI_OnLoad(vm: JavaVM, _reserved: *mut c_void) -> jint {
    let loaded = catch_unwind(AssertUnwindSafe(|| -> Result<(), String> {
        let side =
            resolve(&mut vm.get_env().map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        let tx = start_dispatcher(vm, side).map_err(|e| e.to_string())?;
        if DISPATCHER.set(tx).is_ok() {
            let _ = log::set_boxed_logger(Box::new(JavaLogger));
            log::set_max_level(LevelFilter::Info);
        }
        Ok(())
    }));
    match loaded {
        Ok(Ok(())) => JNI_VERSION_1_8,
        _ => JNI_ERR,
    }
}
