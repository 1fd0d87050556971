//! Who may call what through the gateway: the one table of public and admin-only
//! operations, and the middleware that answers 401 and 403 before anything is forwarded.
//!
//! The services check every token again (their ports are reachable too): this is the
//! first line, which keeps refused requests off the services. What is not in the table
//! needs a signed-in caller, so an operation added later is protected until it is listed.

use axum::extract::{FromRequestParts, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use platform::auth::{Admin, Caller};
use platform::problem::Problem;

/// What a request needs to be let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, with or without a token.
    Public,
    /// A valid token of any role.
    SignedIn,
    /// A valid token of an admin.
    Admin,
}

/// Which methods a rule is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Methods {
    /// Only this one (`GET` also covers `HEAD`, as the services' routers do).
    Only(&'static str),
    /// Every method.
    Any,
}

/// One line of the table: a method, a path pattern, and what it needs. In a pattern, a
/// `{name}` segment stands for any one non-empty segment, and a last segment `**` for the
/// path itself and anything under it.
type Rule = (Methods, &'static str, Access);

/// The operations that are not "signed in": the contract's public and admin-only ones.
/// The first line that matches decides.
const RULES: &[Rule] = &[
    (Methods::Only("POST"), "/api/users", Access::Public),
    (Methods::Only("POST"), "/api/auth/token", Access::Public),
    (Methods::Only("GET"), "/api/products", Access::Public),
    (Methods::Only("GET"), "/api/products/{sku}", Access::Public),
    (Methods::Only("GET"), platform::auth::JWKS_PATH, Access::Public),
    // The gateway's own: its operational paths, Swagger UI and the documents behind it.
    (Methods::Only("GET"), "/health", Access::Public),
    (Methods::Only("GET"), "/ready", Access::Public),
    (Methods::Only("GET"), "/metrics", Access::Public),
    (Methods::Only("GET"), platform::openapi::PATH, Access::Public),
    (Methods::Only("GET"), "/docs/**", Access::Public),
    (Methods::Only("GET"), "/openapi/**", Access::Public),
    // The saga board's page and its files: no data in them, the API behind is admin-only.
    (Methods::Only("GET"), "/board/**", Access::Public),
    (Methods::Only("PUT"), "/api/products/{sku}", Access::Admin),
    (Methods::Only("POST"), "/api/emails/send", Access::Admin),
    (Methods::Only("POST"), "/api/sms/send", Access::Admin),
    (Methods::Only("GET"), "/api/notifications/failed", Access::Admin),
    (Methods::Only("POST"), "/api/notifications/failed/{id}/retry", Access::Admin),
    // The saga board: every operation of it, whatever it turns out to have.
    (Methods::Any, "/api/board/**", Access::Admin),
];

/// What `method path` needs: the table's answer, [`Access::SignedIn`] for anything else.
pub fn required(method: &Method, path: &str) -> Access {
    RULES
        .iter()
        .find(|(methods, pattern, _)| covers(*methods, method) && matches(pattern, path))
        .map_or(Access::SignedIn, |(_, _, access)| *access)
}

fn covers(methods: Methods, method: &Method) -> bool {
    match methods {
        Methods::Any => true,
        Methods::Only("GET") => method == Method::GET || method == Method::HEAD,
        Methods::Only(only) => method.as_str() == only,
    }
}

fn matches(pattern: &str, path: &str) -> bool {
    let mut wanted = pattern.split('/');
    let mut given = path.split('/');
    loop {
        match (wanted.next(), given.next()) {
            (Some("**"), _) => return true,
            (None, None) => return true,
            (Some(w), Some(g)) if w.starts_with('{') && w.ends_with('}') => {
                if g.is_empty() {
                    return false;
                }
            }
            (Some(w), Some(g)) if w == g => {}
            _ => return false,
        }
    }
}

/// Whether `path` has a `.` or `..` segment, plain or percent-encoded. The HTTP client
/// removes those before it sends, so the service would be asked for another path than
/// the one the table was read for.
fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|segment| {
        let segment = segment.to_ascii_lowercase().replace("%2e", ".");
        segment == "." || segment == ".."
    })
}

/// The middleware: lets a request through when [`required`] says its caller may make it,
/// and otherwise answers itself (401 with a `WWW-Authenticate` challenge, or 403). The
/// token is checked with the verifier the platform installs (an `Arc<Verifier>`
/// extension), the one every service uses.
pub async fn check(request: Request, next: Next) -> Response {
    if has_dot_segment(request.uri().path()) {
        let detail = "a path with a . or .. segment is not forwarded".to_owned();
        return Problem::new(StatusCode::BAD_REQUEST, Some(detail)).into_response();
    }
    let access = required(request.method(), request.uri().path());
    let (mut parts, body) = request.into_parts();
    let allowed = match access {
        Access::Public => Ok(()),
        Access::SignedIn => Caller::from_request_parts(&mut parts, &()).await.map(drop),
        Access::Admin => Admin::from_request_parts(&mut parts, &()).await.map(drop),
    };
    match allowed {
        Ok(()) => next.run(Request::from_parts(parts, body)).await,
        Err(refused) => refused.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(method: &str, path: &str) -> Access {
        required(&method.parse().expect("a method"), path)
    }

    #[test]
    fn the_contracts_public_operations_need_no_token() {
        for (method, path) in [
            ("POST", "/api/users"),
            ("POST", "/api/auth/token"),
            ("GET", "/api/products"),
            ("GET", "/api/products/BOOK-1"),
            ("HEAD", "/api/products/BOOK-1"),
            ("GET", "/.well-known/jwks.json"),
            ("GET", "/health"),
            ("GET", "/ready"),
            ("GET", "/metrics"),
            ("GET", "/openapi.json"),
            ("GET", "/docs"),
            ("GET", "/docs/"),
            ("GET", "/docs/swagger-ui.css"),
            ("GET", "/openapi/order-service.json"),
            ("GET", "/board"),
            ("GET", "/board/board.js"),
            ("HEAD", "/board/board.css"),
        ] {
            assert_eq!(access(method, path), Access::Public, "{method} {path}");
        }
    }

    #[test]
    fn the_admin_operations_need_an_admin_whatever_the_ids() {
        let id = "0190d5e4-7c2a-7b3e-9f1a-2b3c4d5e6f70";
        for (method, path) in [
            ("PUT", "/api/products/BOOK-1"),
            ("PUT", "/api/products/a%2Fb"),
            ("POST", "/api/emails/send"),
            ("POST", "/api/sms/send"),
            ("GET", "/api/notifications/failed"),
            ("POST", &format!("/api/notifications/failed/{id}/retry")),
            ("POST", "/api/notifications/failed/not-a-uuid/retry"),
            ("GET", "/api/board"),
            ("GET", "/api/board/"),
            ("GET", &format!("/api/board/sagas/{id}")),
            ("GET", "/api/board/stream"),
            ("DELETE", "/api/board/anything/else"),
        ] {
            assert_eq!(access(method, path), Access::Admin, "{method} {path}");
        }
    }

    #[test]
    fn everything_else_under_api_needs_a_signed_in_caller() {
        let id = "0190d5e4-7c2a-7b3e-9f1a-2b3c4d5e6f70";
        for (method, path) in [
            ("GET", "/api/users"),
            ("GET", &format!("/api/users/{id}")),
            ("GET", "/api/auth/token"),
            ("POST", "/api/orders"),
            ("GET", &format!("/api/orders/{id}")),
            ("POST", &format!("/api/orders/{id}/cancel")),
            ("GET", &format!("/api/wallets/{id}")),
            ("POST", &format!("/api/wallets/{id}/deposit")),
            ("GET", "/api/payments"),
            ("GET", "/api/notifications"),
            ("POST", "/api/products"),
            ("DELETE", "/api/products/BOOK-1"),
            ("GET", "/api/products/BOOK-1/stock"),
            // Close to a listed one, but not it.
            ("GET", "/api/products/"),
            ("POST", "/api/users/"),
            ("POST", "/api/users/x"),
            ("GET", "/api/boardgames"),
            ("POST", "/board"),
            ("GET", "/boards"),
            ("GET", "/api/unknown"),
            ("GET", "/.well-known/other.json"),
        ] {
            assert_eq!(access(method, path), Access::SignedIn, "{method} {path}");
        }
    }

    #[test]
    fn patterns_match_whole_segments() {
        assert!(matches("/api/products/{sku}", "/api/products/X"));
        assert!(!matches("/api/products/{sku}", "/api/products"));
        assert!(!matches("/api/products/{sku}", "/api/products/X/Y"));
        assert!(!matches("/api/products/{sku}", "/api/products/"));
        assert!(matches("/api/board/**", "/api/board"));
        assert!(matches("/api/board/**", "/api/board/x/y"));
        assert!(!matches("/api/board/**", "/api/boards"));
        assert!(!matches("/api/users", "/api/users/"));
    }

    #[test]
    fn dot_segments_are_found_plain_or_encoded() {
        for path in ["/api/products/..", "/api/products/%2E%2e/orders", "/api/./orders", "/api/products/%2e"]
        {
            assert!(has_dot_segment(path), "{path}");
        }
        for path in ["/api/products/a.b", "/api/products/...", "/.well-known/jwks.json", "/api/orders"] {
            assert!(!has_dot_segment(path), "{path}");
        }
    }
}
