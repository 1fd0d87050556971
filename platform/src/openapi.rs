//! Each service's OpenAPI document, served at `GET /openapi.json`: the service's own
//! paths (derived from its handlers with utoipa) plus the platform's operational ones.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, InfoBuilder, OpenApi, Ref, RefOr, Required, Response, ResponseBuilder,
};
use utoipa::{OpenApi as _, PartialSchema};

use crate::problem::Problem;

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
    for operation in operations_mut(&mut ops) {
        operation.security = Some(vec![SecurityRequirement::default()]);
    }
    document.merge(ops);
    document_extractor_answers(&mut document);
    require_path_parameters(&mut document);
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

/// The answers of the platform's extractors ([`crate::extract`]), documented here where
/// they come from rather than on each handler: 415 for a body without
/// `Content-Type: application/json` on every operation that takes a body, and 400 for a
/// query that does not parse on every operation with query parameters.
fn document_extractor_answers(document: &mut OpenApi) {
    let answer = |description: &str| -> RefOr<Response> {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/problem+json",
                ContentBuilder::new().schema(Some(Ref::from_schema_name(PROBLEM))).build(),
            )
            .build()
            .into()
    };
    let mut documented = false;
    for operation in operations_mut(document) {
        let responses = &mut operation.responses.responses;
        if operation.request_body.is_some() {
            responses
                .entry("415".to_owned())
                .or_insert_with(|| answer("The body is not sent as Content-Type: application/json"));
            documented = true;
        }
        let takes_query = operation
            .parameters
            .iter()
            .flatten()
            .any(|parameter| matches!(parameter, RefOr::T(p) if p.parameter_in == ParameterIn::Query));
        if takes_query {
            responses.entry("400".to_owned()).or_insert_with(|| answer("A query parameter does not parse"));
            documented = true;
        }
    }
    if documented {
        let components = document.components.get_or_insert_with(Default::default);
        components.schemas.entry(PROBLEM.to_owned()).or_insert_with(<Problem as PartialSchema>::schema);
    }
}

/// Marks every path parameter required, as OpenAPI demands: utoipa leaves `required` out
/// for a parameter whose schema comes from a rule (`#[param(schema_with = …)]`).
fn require_path_parameters(document: &mut OpenApi) {
    for operation in operations_mut(document) {
        for parameter in operation.parameters.iter_mut().flatten() {
            if let RefOr::T(parameter) = parameter
                && parameter.parameter_in == ParameterIn::Path
            {
                parameter.required = Required::True;
            }
        }
    }
}

/// Every operation of `document`, whatever its method.
fn operations_mut(document: &mut OpenApi) -> impl Iterator<Item = &mut Operation> {
    document.paths.paths.values_mut().flat_map(|item| {
        [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete]
            .into_iter()
            .flatten()
    })
}

/// The name of [`Problem`]'s schema in the documents.
const PROBLEM: &str = "Problem";

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

    #[test]
    fn the_extractors_answers_are_documented_where_they_can_come() {
        #[derive(serde::Deserialize, utoipa::ToSchema)]
        #[allow(dead_code)]
        struct Body {
            name: String,
        }
        #[utoipa::path(post, path = "/things", request_body = Body, responses((status = 201, description = "made")))]
        #[allow(dead_code)]
        fn make() {}
        #[utoipa::path(get, path = "/things", params(("limit" = Option<i64>, Query)),
            responses((status = 200, description = "listed")))]
        #[allow(dead_code)]
        fn list() {}
        #[derive(utoipa::IntoParams)]
        #[into_params(parameter_in = Path)]
        #[allow(dead_code)]
        struct ThingPath {
            #[param(schema_with = id_rule)]
            id: String,
        }
        fn id_rule() -> utoipa::openapi::schema::Object {
            crate::validate::SKU.schema()
        }
        #[utoipa::path(get, path = "/things/{id}", params(ThingPath),
            responses((status = 200, description = "found")))]
        #[allow(dead_code)]
        fn find() {}
        #[derive(utoipa::OpenApi)]
        #[openapi(paths(make, list, find))]
        struct Api;

        let json = serde_json::to_value(document("thing-service", Api::openapi())).expect("json");
        let answer = &json["paths"]["/things"]["post"]["responses"]["415"];
        assert_eq!(
            answer["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/Problem"
        );
        assert!(json["components"]["schemas"]["Problem"].is_object(), "the schema it refers to is there");
        assert!(json["paths"]["/things"]["get"]["responses"].get("415").is_none(), "no body, no 415");
        let malformed = &json["paths"]["/things"]["get"]["responses"]["400"];
        assert_eq!(
            malformed["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/Problem"
        );
        assert!(json["paths"]["/things"]["post"]["responses"].get("400").is_none(), "no query, no 400");
        assert!(
            json["paths"]["/things/{id}"]["get"]["responses"].get("400").is_none(),
            "a path parameter is not a query"
        );
        let id = &json["paths"]["/things/{id}"]["get"]["parameters"][0];
        assert_eq!(
            (&id["required"], &id["schema"]["maxLength"]),
            (&serde_json::json!(true), &serde_json::json!(64))
        );
    }
}
