//! kinesin-server: HTTP/1.1 and cleartext HTTP/2 (prior knowledge) on one port, routing
//! `POST /` by `X-Amz-Target` to the engine through the wire codecs.
//!
//! Bounds: connections (a semaphore; further connections wait in the accept backlog), request
//! bodies (`max_body_bytes`, 413 beyond), header and body read time, HTTP/2 streams per
//! connection.

mod audit;
mod auth;
mod authz;
mod body;
mod dispatch;
mod idle;
mod ids;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use kinesin_engine::api::Scope;
use kinesin_engine::Engine;
use kinesin_wire::{Protocol, WireError};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use audit::AuditLog;
pub use auth::{AuthError, Credentials, User};

const TARGET_PREFIX: &str = "Kinesis_20131202.";

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The account every request acts as.
    pub account: String,
    /// The region used when a request's credential scope names none.
    pub region: String,
    pub max_connections: usize,
    /// Largest accepted request body; larger ones get 413.
    pub max_body_bytes: usize,
    /// How long a client may take to send a request's headers, and then its body.
    pub read_timeout: Duration,
    /// How long in-flight requests get to finish at shutdown.
    pub shutdown_grace: Duration,
    /// When set, API calls are written here.
    pub audit: Option<Arc<AuditLog>>,
    /// When set, the port speaks TLS (HTTP/1.1 and HTTP/2 by ALPN) instead of cleartext.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// When set, every request must be SigV4-signed by one of these users; when `None`, the
    /// server is in open development mode (a well-formed Authorization header suffices).
    pub credentials: Option<Arc<auth::Credentials>>,
    /// Request body bytes held in memory across all connections at once, counted twice (the
    /// body, then its decoded records); a request waits for room (up to 1 s, then 503) so many
    /// large bodies cannot exhaust memory.
    pub max_inflight_body_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            account: "000000000000".into(),
            region: "us-east-1".into(),
            max_connections: 10_000,
            // PutRecords: 5 MiB of data, base64 in JSON is 4/3 of that plus framing; large
            // records (10 MiB) need more.
            max_body_bytes: 16 << 20,
            read_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            max_inflight_body_bytes: 256 << 20,
            credentials: None,
            tls: None,
            audit: None,
        }
    }
}

struct Shared {
    engine: Engine,
    cfg: ServerConfig,
    /// Permits of [`BODY_UNIT`] bytes each, for request bodies in memory.
    body_budget: Semaphore,
    /// A separate pool for small bodies, so large ones can never crowd small requests out.
    small_body_budget: Semaphore,
    /// The configured account and region, shared by every request's scope that uses them.
    default_scope: Scope,
    /// Reused buffers for GetRecords bodies (see `kinesin_log::BufferPool`).
    response_buffers: Arc<kinesin_engine::BufferPool>,
}

/// Granularity of the body budget.
const BODY_UNIT: usize = 4096;
/// Bodies up to this size draw on the small-body pool.
const SMALL_BODY: usize = 64 << 10;
/// The small-body pool: 32 MiB, i.e. at least 512 small requests in flight at once.
const SMALL_BODY_POOL: usize = 32 << 20;
/// How long a body waits for room in the budget before the request gets 503.
const BODY_ROOM_WAIT: Duration = Duration::from_secs(1);

use body::Body;

/// Serves until `shutdown` resolves, then stops accepting and lets in-flight requests finish
/// (bounded by `shutdown_grace`).
pub async fn serve(
    listener: TcpListener,
    engine: Engine,
    cfg: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    // Room for at least one largest body, counted twice (body and decoded records), or such a
    // request could never be served.
    let budget = cfg.max_inflight_body_bytes.max(2 * cfg.max_body_bytes);
    let units = (budget / BODY_UNIT).clamp(1, Semaphore::MAX_PERMITS);
    let shared = Arc::new(Shared {
        engine,
        body_budget: Semaphore::new(units),
        small_body_budget: Semaphore::new(SMALL_BODY_POOL / BODY_UNIT),
        default_scope: Scope {
            account: cfg.account.as_str().into(),
            region: cfg.region.as_str().into(),
        },
        response_buffers: Arc::default(),
        cfg,
    });
    let slots = Arc::new(Semaphore::new(shared.cfg.max_connections));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.cfg.read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .max_header_list_size(64 << 10)
        .initial_stream_window_size(1 << 20)
        .initial_connection_window_size(8 << 20);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let builder = builder.clone();
        let tls = shared.cfg.tls.clone();
        let handshake_timeout = shared.cfg.read_timeout;
        let shared = shared.clone();
        let svc = service_fn(move |req| {
            let shared = shared.clone();
            async move { Ok::<_, std::convert::Infallible>(handle(&shared, req, peer).await) }
        });
        tokio::spawn(async move {
            // Every connection, whatever its protocol or state, closes after `idle` without
            // a byte moving.
            let activity = idle::Activity::new();
            let watchdog = activity.clone();
            let serve = async move {
                match tls {
                    None => {
                        let io = idle::IdleIo::new(stream, activity);
                        let conn = builder.serve_connection(TokioIo::new(io), svc);
                        let _ = watcher.watch(conn.into_owned()).await;
                    }
                    Some(tls) => {
                        let io = idle::IdleIo::new(stream, activity);
                        let accept = tokio_rustls::TlsAcceptor::from(tls).accept(io);
                        if let Ok(Ok(stream)) =
                            tokio::time::timeout(handshake_timeout, accept).await
                        {
                            let conn = builder.serve_connection(TokioIo::new(stream), svc);
                            let _ = watcher.watch(conn.into_owned()).await;
                        }
                    }
                }
            };
            tokio::select! {
                _ = serve => {}
                _ = watchdog.idle_for(handshake_timeout) => {}
            }
            drop(permit);
        });
    }
    drop(listener);
    shared.engine.end_subscriptions();
    let grace = shared.cfg.shutdown_grace;
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish within {grace:?}");
    }
    Ok(())
}

/// Why a certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {0}: {1}")]
    Read(String, std::io::Error),
    #[error("{0} holds no certificate")]
    NoCertificate(String),
    #[error("{0} holds no private key")]
    NoKey(String),
    #[error("certificate and key do not make a TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// A TLS configuration from PEM files, offering HTTP/2 and HTTP/1.1 by ALPN.
pub fn load_tls(
    cert_path: &std::path::Path,
    key_path: &std::path::Path,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| TlsError::Read(p.display().to_string(), e))
    };
    let cert_pem = read(cert_path)?;
    let key_pem = read(key_path)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Read(cert_path.display().to_string(), e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(cert_path.display().to_string()));
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| TlsError::Read(key_path.display().to_string(), e))?
        .ok_or_else(|| TlsError::NoKey(key_path.display().to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The address a `--listen` value names.
pub fn parse_listen(s: &str) -> Option<SocketAddr> {
    s.parse().ok()
}

/// What a request turned out to be, for the audit log.
#[derive(Default)]
struct Seen {
    operation: Option<String>,
    region: Option<String>,
    user: Option<(String, String)>,
    resource: Option<String>,
}

async fn handle(shared: &Shared, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    // What only the audit log needs is taken from the head only when there is an audit log.
    let audit_head = shared.cfg.audit.as_ref().map(|_| {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let access_key_id = header("authorization").and_then(|a| {
            a.split("Credential=")
                .nth(1)
                .and_then(|c| c.split('/').next())
                .map(str::to_owned)
        });
        (header("user-agent"), access_key_id)
    });
    let mut seen = Seen::default();
    let mut resp = route(shared, req, &mut seen).await;
    let id = ids::RequestId::new();
    if let (Some(audit), Some(op), Some((user_agent, access_key_id))) =
        (&shared.cfg.audit, &seen.operation, audit_head)
    {
        if audit.wants(op) {
            let record = kinesin_wire::audit::AuditRecord {
                time_secs: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0),
                operation: op.clone(),
                region: seen
                    .region
                    .clone()
                    .unwrap_or_else(|| shared.cfg.region.clone()),
                account: shared.cfg.account.clone(),
                source_ip: peer.ip().to_string(),
                user_agent,
                user: seen.user.clone(),
                access_key_id,
                resource_arn: seen.resource.clone(),
                request_id: id.as_str().to_owned(),
                http_status: resp.status().as_u16(),
                error_code: resp
                    .headers()
                    .get(X_AMZN_ERROR_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                read_only: audit::is_read_only(op),
            };
            audit.record(&record).await;
        }
    }
    let headers = resp.headers_mut();
    if let Some(v) = id.header() {
        headers.insert(X_AMZN_REQUEST_ID, v);
    }
    if let Some(v) = ids::extended_request_id() {
        headers.insert(X_AMZ_ID_2, v);
    }
    if let Some(v) = ids::date() {
        headers.insert(http::header::DATE, v);
    }
    resp
}

// Response header names as constants: a name given as a string is parsed, and a custom one
// allocated, on every insert.
const X_AMZN_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-amzn-requestid");
const X_AMZ_ID_2: http::HeaderName = http::HeaderName::from_static("x-amz-id-2");
const X_AMZN_ERROR_TYPE: http::HeaderName = http::HeaderName::from_static("x-amzn-errortype");

fn raw(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Body::full(body));
    *r.status_mut() = status;
    // Static: no copy per response (every caller passes one of a few constant types).
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    r
}

/// An error response: the body in the request's protocol, and the code in `x-amzn-ErrorType`
/// too (the Java SDK reads it first; the audit log reads it).
fn error_response(protocol: Protocol, code: &str, status: u16, body: Vec<u8>) -> Response<Body> {
    let mut r = raw(
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        protocol.content_type(),
        body,
    );
    if let Ok(v) = HeaderValue::from_str(code) {
        r.headers_mut().insert(X_AMZN_ERROR_TYPE, v);
    }
    r
}

pub(crate) fn wire_error(protocol: Protocol, e: &WireError) -> Response<Body> {
    let (status, body) = kinesin_wire::encode_wire_error(protocol, e);
    error_response(protocol, e.code(), status, body)
}

fn engine_error(protocol: Protocol, e: &kinesin_engine::Error) -> Response<Body> {
    let (status, body) = kinesin_wire::encode_engine_error(protocol, e);
    error_response(protocol, e.code(), status, body)
}

async fn route(shared: &Shared, req: Request<Incoming>, seen: &mut Seen) -> Response<Body> {
    if req.method() != Method::POST {
        return raw(
            StatusCode::FORBIDDEN,
            "application/xml",
            "<AccessDeniedException>\n  <Message>Unable to determine service/operation name to be authorized</Message>\n</AccessDeniedException>\n",
        );
    }
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(protocol) = Protocol::from_content_type(content_type) else {
        let base = content_type.split(';').next().unwrap_or("").trim();
        if base.eq_ignore_ascii_case("application/json") {
            return raw(
                StatusCode::NOT_FOUND,
                "application/json",
                r#"{"Output":{"__type":"com.amazon.coral.service#UnknownOperationException","message":null},"Version":"1.0"}"#,
            );
        }
        return raw(
            StatusCode::NOT_FOUND,
            "application/xml",
            "<UnknownOperationException/>\n",
        );
    };
    const X_AMZ_TARGET: http::HeaderName = http::HeaderName::from_static("x-amz-target");
    // A cheap clone (shared bytes) that outlives the request head, which the body consumes.
    let target = req.headers().get(X_AMZ_TARGET).cloned();
    let operation = target
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix(TARGET_PREFIX));
    let region = match auth::check(req.headers(), req.uri().query()) {
        Ok(Some(r)) if r != &*shared.default_scope.region => Some(Arc::<str>::from(r)),
        Ok(_) => None,
        Err(e) => return wire_error(protocol, &e.into_wire()),
    };
    // What SigV4 verification needs of the request head, kept before the body is consumed.
    let signed_head = shared
        .cfg
        .credentials
        .as_ref()
        .map(|_| auth::SignedHead::of(&req));
    let Some(operation) = operation else {
        return wire_error(protocol, &WireError::unknown_operation());
    };
    if shared.cfg.audit.is_some() {
        seen.operation = Some(operation.to_owned());
    }
    // Refuse oversized bodies up front when the client says how big they are.
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > shared.cfg.max_body_bytes as u64) {
        return too_large();
    }
    // `_room` keeps the body's share of the budget until the request is answered.
    let (body, _room) = match read_body(shared, req.into_body(), declared).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return too_large(),
        Err(BodyError::Malformed) => return wire_error(protocol, &WireError::serialization(None)),
        Err(BodyError::Timeout) => {
            return raw(StatusCode::REQUEST_TIMEOUT, "text/plain", "request timeout")
        }
        Err(BodyError::NoRoom) => {
            return wire_error(
                protocol,
                &WireError::new(
                    "ServiceUnavailableException",
                    503,
                    Some("Too many large requests in flight; retry.".into()),
                ),
            )
        }
    };
    let user = match (&shared.cfg.credentials, &signed_head) {
        (Some(creds), Some(head)) => match creds.verify(head, &body) {
            Ok((akid, user)) => {
                seen.user = Some((user.name.clone(), akid));
                Some(user)
            }
            Err(e) => return wire_error(protocol, &e),
        },
        _ => None,
    };
    let scope = Scope {
        account: shared.default_scope.account.clone(),
        region: region.unwrap_or_else(|| shared.default_scope.region.clone()),
    };
    if shared.cfg.audit.is_some() {
        seen.region = Some(scope.region.to_string());
    }
    let request = match kinesin_wire::decode_request(operation, protocol, &body) {
        Ok(r) => r,
        Err(e) => return wire_error(protocol, &e),
    };
    if user.is_some() || shared.cfg.audit.is_some() {
        seen.resource = Some(authz::resource(&shared.engine, &scope, &request));
    }
    if let Some(user) = user {
        {
            let identity = &user.policy;
            let resource = seen.resource.clone().unwrap_or_default();
            let principal = format!("arn:aws:iam::{}:user/{}", scope.account, user.name);
            let action = format!("kinesis:{}", request.operation());
            let resource_policy = shared.engine.resource_policy_for(&scope, &resource);
            if let Err(e) = kinesin_engine::iam::authorize(
                &principal,
                &scope.account,
                Some(identity),
                resource_policy.as_ref(),
                &action,
                &resource,
            ) {
                return engine_error(protocol, &e);
            }
        }
    }
    if let kinesin_wire::Request::SubscribeToShard(input) = request {
        return subscribe(shared, &scope, protocol, input).await;
    }
    if let kinesin_wire::Request::GetRecords(input) = request {
        return get_records(shared, scope, protocol, input).await;
    }
    match dispatch::dispatch(&shared.engine, &scope, request).await {
        Ok(response) => raw(
            StatusCode::OK,
            protocol.content_type(),
            Bytes::from(kinesin_wire::encode_response(protocol, &response)),
        ),
        Err(e) => engine_error(protocol, &e),
    }
}

/// GetRecords runs on the blocking pool ([`Engine::blocking_read`]): a reply of up to 10 MiB is
/// reads (from the disk, for older data), decryption and base64 for several milliseconds, which
/// on an async worker would stall every connection that worker serves; and with fewer workers
/// than CPUs (see `kinesin serve --worker-threads`) the reads still use every core.
async fn get_records(
    shared: &Shared,
    scope: Scope,
    protocol: Protocol,
    input: kinesin_engine::api::GetRecordsInput,
) -> Response<Body> {
    let engine = shared.engine.clone();
    let buffers = shared.response_buffers.clone();
    let read = shared.engine.blocking_read(move || {
        let mut body = kinesin_wire::GetRecordsWriter::begin(protocol, buffers.take_empty());
        let output = engine.get_records(&scope, input, &mut |piece| body.records(&piece))?;
        Ok(buffers.share(body.finish(&output)))
    });
    match read.await {
        Ok(body) => raw(StatusCode::OK, protocol.content_type(), body),
        Err(e) => engine_error(protocol, &e),
    }
}

/// Events buffered between a subscription and a slow client.
const SUBSCRIPTION_BUFFER: usize = 4;

/// SubscribeToShard: validate first (a plain error response), then stream the initial
/// response and the events.
async fn subscribe(
    shared: &Shared,
    scope: &Scope,
    protocol: Protocol,
    input: kinesin_engine::api_ops::SubscribeToShardInput,
) -> Response<Body> {
    use kinesin_wire::eventstream;
    let mut sub = match shared.engine.subscribe_to_shard(scope, input).await {
        Ok(s) => s,
        Err(e) => {
            return engine_error(protocol, &e);
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(SUBSCRIPTION_BUFFER);
    tokio::spawn(async move {
        if tx
            .send(Bytes::from(eventstream::initial_response(protocol)))
            .await
            .is_err()
        {
            return;
        }
        while let Some(item) = sub.next_event().await {
            let frame = match item {
                Ok(event) => eventstream::subscribe_event(protocol, &event),
                Err(e) => eventstream::exception(protocol, &e),
            };
            // The client went away: stop reading for it.
            if tx.send(Bytes::from(frame)).await.is_err() {
                return;
            }
        }
    });
    let mut r = Response::new(Body::Stream(rx));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(eventstream::CONTENT_TYPE),
    );
    r
}

enum BodyError {
    TooLarge,
    Malformed,
    Timeout,
    NoRoom,
}

/// Reads a request body within the read timeout and the size cap, taking room in the global
/// body budget as bytes arrive (not up front), so slow or stalled bodies hold only what they
/// have sent and cannot starve other requests of the budget.
async fn read_body<'s>(
    shared: &'s Shared,
    mut body: Incoming,
    declared: Option<u64>,
) -> Result<(Bytes, Option<tokio::sync::SemaphorePermit<'s>>), BodyError> {
    let deadline = tokio::time::Instant::now() + shared.cfg.read_timeout;
    // A body that arrives as one frame (most do) is kept as that frame, without a copy; from
    // the second frame on, the frames are gathered in `gathered`.
    let mut whole = Bytes::new();
    let mut gathered = bytes::BytesMut::new();
    let mut room: Option<tokio::sync::SemaphorePermit<'_>> = None;
    let mut held_units = 0usize;
    let mut held_small = true;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(BodyError::Timeout),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(BodyError::Malformed),
            Ok(Some(Ok(f))) => f,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let total = whole.len() + gathered.len() + data.len();
        if total > shared.cfg.max_body_bytes {
            return Err(BodyError::TooLarge);
        }
        // Small bodies (up to SMALL_BODY) come from their own pool; a body that grows past it
        // moves to the large pool, where it waits at most BODY_ROOM_WAIT for room.
        let (pool, small) = if total <= SMALL_BODY {
            (&shared.small_body_budget, true)
        } else {
            (&shared.body_budget, false)
        };
        if !small && held_small {
            room = None;
            held_units = 0;
            held_small = false;
        }
        let needed = total.div_ceil(BODY_UNIT).saturating_sub(held_units);
        if needed > 0 {
            let units = needed.min(u32::MAX as usize) as u32;
            merge_room(&mut room, take_room(pool, units, deadline).await?);
            held_units += needed;
            held_small = small;
        }
        if whole.is_empty() && gathered.is_empty() {
            whole = data;
        } else {
            if gathered.is_empty() {
                let expected = declared.map_or(0, |n| n.min(1 << 20) as usize);
                gathered.reserve(expected.max(whole.len() + data.len()));
                gathered.extend_from_slice(&whole);
                whole = Bytes::new();
            }
            gathered.extend_from_slice(&data);
        }
    }
    // Decoding keeps the records beside the body (base64 text decodes to 3/4 of its size) and
    // the log copies them into its write batch: take as much room again before decoding, so
    // the budget bounds what requests hold while they are served, not only their bodies.
    if held_units > 0 {
        let pool = if held_small {
            &shared.small_body_budget
        } else {
            &shared.body_budget
        };
        let units = held_units.min(u32::MAX as usize) as u32;
        merge_room(&mut room, take_room(pool, units, deadline).await?);
    }
    let body = if gathered.is_empty() {
        whole
    } else {
        gathered.freeze()
    };
    Ok((body, room))
}

/// Takes `units` of a body pool, waiting at most BODY_ROOM_WAIT (and not past `deadline`).
/// Most of the time there is room: then no clock is read and no timer is made.
async fn take_room(
    pool: &Semaphore,
    units: u32,
    deadline: tokio::time::Instant,
) -> Result<tokio::sync::SemaphorePermit<'_>, BodyError> {
    if let Ok(permit) = pool.try_acquire_many(units) {
        return Ok(permit);
    }
    let wait = tokio::time::Instant::now() + BODY_ROOM_WAIT;
    match tokio::time::timeout_at(wait.min(deadline), pool.acquire_many(units)).await {
        Ok(Ok(permit)) => Ok(permit),
        Ok(Err(_)) | Err(_) => Err(BodyError::NoRoom),
    }
}

/// Adds permits to the room a body holds (always from the same pool: the room is dropped when a
/// body moves to the large pool).
fn merge_room<'s>(
    room: &mut Option<tokio::sync::SemaphorePermit<'s>>,
    more: tokio::sync::SemaphorePermit<'s>,
) {
    match room {
        Some(held) => held.merge(more),
        None => *room = Some(more),
    }
}

fn too_large() -> Response<Body> {
    raw(
        StatusCode::PAYLOAD_TOO_LARGE,
        "text/plain",
        "Request Entity Too Large",
    )
}
