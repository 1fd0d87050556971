//! Swagger UI over every service's API: the page is vendored into the binary (nothing is
//! downloaded at build or run time) and each service's document is fetched from it
//! through the gateway, so "Try it out" goes through the gateway too.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use platform::problem::Problem;
use platform::registry;
use utoipa_swagger_ui::{Config, SwaggerUi, Url};

use crate::proxy::Proxy;

/// Where the page is.
pub const UI_PATH: &str = "/docs";

/// Each service behind the gateway and the URL, on the gateway, of its OpenAPI document.
static DOCUMENTS: LazyLock<Vec<(&'static str, String)>> = LazyLock::new(|| {
    registry::api_services().map(|s| (s.name, format!("/openapi/{}.json", s.name))).collect()
});

/// Swagger UI at `/docs` and each service's document at `/openapi/{service}.json`.
pub fn router(proxy: Proxy) -> Router {
    let urls = DOCUMENTS.iter().map(|(service, url)| Url::new(service, url));
    let ui = SwaggerUi::new(UI_PATH).config(Config::new(urls).try_it_out_enabled(true));
    Router::new().route("/openapi/{document}", get(document)).with_state(proxy).merge(ui)
}

/// One service's `/openapi.json`, as the service serves it.
async fn document(State(proxy): State<Proxy>, Path(document): Path<String>) -> Response {
    let Some((service, base)) =
        document.strip_suffix(".json").and_then(|service| proxy.upstreams.by_name(service))
    else {
        return Problem::not_found(format!("no service has the document {document}")).into_response();
    };
    let fetched = proxy
        .client
        .get(format!("{base}{}", platform::openapi::PATH))
        .timeout(proxy.timeout)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status);
    match fetched {
        Ok(answer) => match answer.bytes().await {
            Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
            Err(error) => unavailable(service, &error),
        },
        Err(error) => unavailable(service, &error),
    }
}

fn unavailable(service: &str, error: &reqwest::Error) -> Response {
    tracing::warn!(service, %error, "cannot fetch the OpenAPI document");
    Problem::new(StatusCode::BAD_GATEWAY, Some(format!("{service} is unavailable"))).into_response()
}
