//! The saga board's page at `/board`: one HTML page, its script and its style sheet,
//! compiled into the binary (nothing is fetched at build or run time). The page holds no
//! data, so it is public; everything it shows comes from the admin-only `/api/board/...`
//! operations, called with the token the admin signs in for on the page.

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;

/// Where the page is.
pub const PAGE_PATH: &str = "/board";

const INDEX_HTML: &str = include_str!("board/index.html");
const BOARD_JS: &str = include_str!("board/board.js");
const BOARD_CSS: &str = include_str!("board/board.css");

/// What the page may load and talk to: its own origin only. Nothing else is needed, and
/// it keeps a payload shown on the page from ever running as script.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// `GET /board` (the page), `GET /board/board.js` and `GET /board/board.css`.
pub fn router() -> Router {
    Router::new()
        .route(PAGE_PATH, get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }))
        .route("/board/board.js", get(|| async { asset("text/javascript; charset=utf-8", BOARD_JS) }))
        .route("/board/board.css", get(|| async { asset("text/css; charset=utf-8", BOARD_CSS) }))
}

/// One embedded file. `no-cache` (revalidate, not "never store"): a new gateway build
/// must not leave an old script in a browser beside a new page.
fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    let headers: [(HeaderName, HeaderValue); 4] = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY)),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
    ];
    (headers, body)
}
