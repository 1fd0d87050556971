//! The reverse proxy: `/api/...` to the service that owns it, with the caller's request
//! id, trace context and `Authorization` header, a time limit, and a clear problem when a
//! service is down. A service with several instances gets requests in turn; one that
//! refuses the connection (or does not take it within 2 s) is skipped for the next, which
//! is safe for any method, since nothing of the request reached it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry_http::HeaderInjector;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use platform::metrics;
use platform::problem::Problem;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use platform::upstreams::{self, Upstreams};

/// The largest request body forwarded.
const MAX_BODY: usize = 1024 * 1024;

/// What the proxy needs.
#[derive(Debug, Clone)]
pub struct Proxy {
    /// Where each service is.
    pub upstreams: Upstreams,
    /// The HTTP client (a connection pool per service).
    pub client: reqwest::Client,
    /// How long a service may take to answer.
    pub timeout: Duration,
    /// Whose turn it is, among the instances of each service.
    pub turns: Arc<HashMap<&'static str, AtomicUsize>>,
}

/// How long an instance may take to accept the connection before the next one is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

impl Proxy {
    /// A proxy in front of `upstreams`, with a fresh connection pool.
    pub fn new(upstreams: Upstreams, timeout: Duration) -> Self {
        let turns = upstreams.names().map(|name| (name, AtomicUsize::new(0))).collect();
        // A connection that times out counts as refused: the request never left.
        let client = reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT).build().unwrap_or_default();
        Self { upstreams, client, timeout, turns: Arc::new(turns) }
    }
}

/// Headers that belong to one hop and are not forwarded.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "host"
            | "content-length"
    )
}

fn forwardable(headers: &HeaderMap) -> HeaderMap {
    headers.iter().filter(|(name, _)| !hop_by_hop(name)).map(|(n, v)| (n.clone(), v.clone())).collect()
}

/// The service that serves `request` and the URL at each of its instances, the one
/// whose turn it is first; a 404 problem when no service does.
pub(crate) fn target(proxy: &Proxy, request: &Request) -> Result<(&'static str, Vec<String>), Problem> {
    let path = request.uri().path();
    let Some((service, bases)) = proxy.upstreams.for_path(path) else {
        return Err(Problem::not_found(format!("no service serves {path}")));
    };
    let path_and_query = request.uri().path_and_query().map_or(path, |pq| pq.as_str());
    let turn = proxy.turns.get(service).map_or(0, |turn| turn.fetch_add(1, Ordering::Relaxed));
    let first = turn % bases.len();
    let in_turn = bases[first..].iter().chain(&bases[..first]);
    Ok((service, in_turn.map(|base| format!("{base}{path_and_query}")).collect()))
}

/// Sends `request(url)` to the first of `urls` that takes the connection, counting each
/// instance that did not.
pub(crate) async fn send(
    service: &'static str,
    urls: &[String],
    request: impl Fn(&str) -> reqwest::RequestBuilder,
) -> Result<reqwest::Response, reqwest::Error> {
    upstreams::send_to_first_taker(urls, request, |url, error| {
        tracing::debug!(service, url, %error, "instance refused the connection: trying the next");
        metrics::upstream_failed(service, "instance_refused");
    })
    .await
}

/// Adds the trace context: the gateway's own server span is the parent of the service's.
pub(crate) fn with_trace_context(mut headers: HeaderMap) -> HeaderMap {
    TraceContextPropagator::new()
        .inject_context(&tracing::Span::current().context(), &mut HeaderInjector(&mut headers));
    headers
}

/// Forwards one request.
pub async fn forward(State(proxy): State<Proxy>, request: Request) -> Response {
    let (service, urls) = match target(&proxy, &request) {
        Ok(target) => target,
        Err(not_found) => return not_found.into_response(),
    };
    let method = request.method().clone();
    let headers = with_trace_context(forwardable(request.headers()));
    let body = match to_bytes(request.into_body(), MAX_BODY).await {
        Ok(body) => body,
        Err(_) => {
            return Problem::new(StatusCode::PAYLOAD_TOO_LARGE, Some("the body exceeds 1 MiB".to_owned()))
                .into_response();
        }
    };
    let started = std::time::Instant::now();
    let sent = send(service, &urls, |url| {
        proxy
            .client
            .request(method.clone(), url)
            .headers(headers.clone())
            .body(body.clone())
            .timeout(proxy.timeout)
    })
    .await;
    match sent {
        Ok(answer) => {
            let status = answer.status();
            let headers = forwardable(answer.headers());
            match answer.bytes().await {
                Ok(bytes) => {
                    metrics::upstream_answered(service, status.as_u16(), started.elapsed().as_secs_f64());
                    let mut response = Response::new(Body::from(bytes));
                    *response.status_mut() = status;
                    *response.headers_mut() = headers;
                    response
                }
                Err(error) => unavailable(service, &error, proxy.timeout),
            }
        }
        Err(error) => unavailable(service, &error, proxy.timeout),
    }
}

/// 504 when the service was too slow, 502 when it could not be reached or answered badly.
pub(crate) fn unavailable(service: &'static str, error: &reqwest::Error, timeout: Duration) -> Response {
    tracing::warn!(service, %error, "upstream failed");
    metrics::upstream_failed(service, if error.is_timeout() { "timeout" } else { "unavailable" });
    let problem = if error.is_timeout() {
        Problem::new(
            StatusCode::GATEWAY_TIMEOUT,
            Some(format!("{service} did not answer within {} ms", timeout.as_millis())),
        )
    } else {
        Problem::new(StatusCode::BAD_GATEWAY, Some(format!("{service} is unavailable")))
    };
    let mut response = problem.into_response();
    response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    response
}
