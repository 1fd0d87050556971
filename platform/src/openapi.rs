//! Each service's OpenAPI document, served at `GET /openapi.json`: the service's own
//! paths (derived from its handlers with utoipa) plus the platform's operational ones.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi as _;
use utoipa::openapi::{InfoBuilder, OpenApi};

/// Where every service serves its document.
pub const PATH: &str = "/openapi.json";

/// The full document of service `name`: its `api` plus `/health`, `/ready` and `/metrics`.
pub fn document(name: &str, api: OpenApi) -> OpenApi {
    let mut document = api;
    document.merge(crate::ops::OpsApi::openapi());
    document.info = InfoBuilder::new()
        .title(name)
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(format!(
            "{name} of the order system. Errors are application/problem+json (RFC 9457). \
             Through the gateway every /api path is served on :8080."
        )))
        .build();
    document
}

/// An API with no paths: for a service whose routes are not its own (the gateway).
pub fn empty() -> OpenApi {
    OpenApi::default()
}

/// The route serving `document`.
pub fn router(document: OpenApi) -> Router {
    Router::new().route(PATH, get(move || async move { Json(document) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_document_has_the_operational_paths_and_the_service_name() {
        let document = document("order-service", empty());
        assert_eq!(document.info.title, "order-service");
        for path in ["/health", "/ready", "/metrics"] {
            assert!(document.paths.paths.contains_key(path), "{path} missing");
        }
    }
}
