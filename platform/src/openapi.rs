//! Each service's OpenAPI document, served at `GET /openapi.json`: the service's own
//! paths (derived from its handlers with utoipa) plus the platform's operational ones.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi as _;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi};

/// Where every service serves its document.
pub const PATH: &str = "/openapi.json";

/// The name of the bearer scheme: what Swagger UI's "Authorize" button fills in.
pub const BEARER: &str = "bearer";

/// The full document of service `name`: its `api` plus `/health`, `/ready` and `/metrics`.
/// Every operation needs a bearer token unless it says otherwise (`security(())` on a
/// public handler); the operational paths are public.
pub fn document(name: &str, api: OpenApi) -> OpenApi {
    let mut document = api;
    let mut ops = crate::ops::OpsApi::openapi();
    for item in ops.paths.paths.values_mut() {
        for operation in
            [&mut item.get, &mut item.post, &mut item.put, &mut item.delete].into_iter().flatten()
        {
            operation.security = Some(vec![SecurityRequirement::default()]);
        }
    }
    document.merge(ops);
    let scheme = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .bearer_format("JWT")
        .description(Some("POST /api/auth/token {email, password} gives the token"))
        .build();
    document
        .components
        .get_or_insert_with(Default::default)
        .add_security_scheme(BEARER, SecurityScheme::Http(scheme));
    document.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
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
        let json = serde_json::to_value(&document).expect("json");
        for path in ["/health", "/ready", "/metrics"] {
            assert_eq!(json["paths"][path]["get"]["security"], serde_json::json!([{}]), "{path} is public");
        }
        assert_eq!(json["components"]["securitySchemes"][BEARER]["scheme"], "bearer");
        assert_eq!(json["security"][0][BEARER], serde_json::json!([]));
    }
}
