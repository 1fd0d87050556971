//! Server-sent events through the gateway. The proxy reads a whole answer before passing
//! it on, within its time limit: right for JSON, but an event stream never ends, so
//! through the proxy it would show nothing and then fail with a 504. Here the answer's
//! body is passed on chunk by chunk as the service writes it, with no time limit on it.
//!
//! Only the wait for the answer's head is limited (by the platform's request timeout).
//! The body is not: a stream that goes quiet is the client's to drop (the board page
//! reconnects when it hears nothing, not even a keep-alive), and dropping it here drops
//! the connection to the service too.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use platform::metrics;

use crate::proxy::{self, Proxy};

/// The saga board's event stream, the one stream behind the gateway.
pub const BOARD_STREAM: &str = "/api/board/stream";

/// The request headers a stream needs: who asks, what it accepts, where to resume, and
/// the request id for the logs. A `GET` without a body needs no others.
const REQUEST_HEADERS: &[&str] = &["authorization", "accept", "last-event-id", "x-request-id"];

/// The answer's headers passed back: the rest are the service's hop (length, encoding).
const ANSWER_HEADERS: &[&str] = &["content-type", "cache-control", "www-authenticate"];

/// Forwards one stream request to the service that owns its path.
pub async fn forward(State(proxy): State<Proxy>, request: Request) -> Response {
    let (service, urls) = match proxy::target(&proxy, &request) {
        Ok(target) => target,
        Err(not_found) => return not_found.into_response(),
    };
    let headers = proxy::with_trace_context(pick(request.headers(), REQUEST_HEADERS));
    let started = std::time::Instant::now();
    // No `.timeout(...)`: reqwest's would end the body too.
    match proxy::send(service, &urls, |url| proxy.client.get(url).headers(headers.clone())).await {
        Ok(answer) => {
            let status = answer.status();
            metrics::upstream_answered(service, status.as_u16(), started.elapsed().as_secs_f64());
            let headers = pick(answer.headers(), ANSWER_HEADERS);
            let mut response = Response::new(Body::new(reqwest::Body::from(answer)));
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            response
        }
        Err(error) => proxy::unavailable(service, &error, proxy.timeout),
    }
}

fn pick(headers: &HeaderMap, names: &[&str]) -> HeaderMap {
    headers
        .iter()
        .filter(|(name, _)| names.contains(&name.as_str()))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect()
}
