//! The operational endpoints of every service: `GET /health` (the process runs),
//! `GET /ready` (its database and Kafka answer) and `GET /metrics` (Prometheus text).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::background::BackgroundTasks;
use crate::db::Db;
use crate::kafka::KafkaProbe;

/// What `/ready` checks: whichever of the two the service has.
#[derive(Debug, Clone, Default)]
pub struct Dependencies {
    /// The service's database, if it owns one.
    pub db: Option<Db>,
    /// The Kafka cluster, if the service talks to it.
    pub kafka: Option<KafkaProbe>,
    /// Its outbox relay and consumer, if it runs them.
    pub tasks: BackgroundTasks,
}

/// The routes `/health` and `/ready`.
pub fn router(dependencies: Dependencies) -> Router {
    crate::metrics::install();
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(dependencies)
}

/// The operational endpoints in the OpenAPI document of every service.
#[derive(utoipa::OpenApi)]
#[openapi(paths(health, ready, metrics), tags((name = "operations", description = "Liveness, readiness and metrics")))]
pub struct OpsApi;

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
async fn metrics(State(dependencies): State<Dependencies>) -> Response {
    let backlog = match &dependencies.db {
        Some(db) => match crate::outbox::backlog(db).await {
            Ok(pending) => crate::metrics::backlog_line(pending),
            Err(error) => {
                tracing::warn!(%error, "outbox backlog unknown");
                String::new()
            }
        },
        None => String::new(),
    };
    let body = crate::metrics::render(&(backlog + &crate::metrics::process_lines()));
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "The process runs", body = Object, example = json!({"status": "UP"}))))]
async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "UP" }))
}

/// The body of `/ready`: overall status and one entry per dependency.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Readiness {
    status: Status,
    checks: Vec<Check>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Check {
    name: &'static str,
    status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Serialize, PartialEq, Eq, Clone, Copy, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
enum Status {
    Up,
    Down,
}

impl Check {
    fn from_result<T, E: std::error::Error>(name: &'static str, result: Result<T, E>) -> Self {
        match result {
            Ok(_) => Self { name, status: Status::Up, error: None },
            Err(error) => Self { name, status: Status::Down, error: Some(crate::error_chain(&error)) },
        }
    }
}

#[utoipa::path(get, path = "/ready", tag = "operations", responses(
    (status = 200, description = "Its database and Kafka answer, its relay and consumer run", body = Readiness),
    (status = 503, description = "Something it needs is down or a task of its own died: the checks say what", body = Readiness)))]
async fn ready(State(dependencies): State<Dependencies>) -> Response {
    let database = async {
        match &dependencies.db {
            Some(db) => Some(Check::from_result("database", db.ping().await)),
            None => None,
        }
    };
    let kafka = async {
        match &dependencies.kafka {
            Some(kafka) => Some(Check::from_result("kafka", kafka.ping().await)),
            None => None,
        }
    };
    let (database, kafka) = tokio::join!(database, kafka);
    let tasks = dependencies.tasks.states().into_iter().map(|task| Check {
        name: task.name,
        status: if task.failure.is_some() { Status::Down } else { Status::Up },
        error: task.failure,
    });
    let checks: Vec<Check> = database.into_iter().chain(kafka).chain(tasks).collect();
    let status = if checks.iter().all(|c| c.status == Status::Up) { Status::Up } else { Status::Down };
    let code = if status == Status::Up { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(Readiness { status, checks })).into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;
    use crate::background::TaskDied;

    async fn ready_of(tasks: BackgroundTasks) -> (StatusCode, serde_json::Value) {
        let response = router(Dependencies { tasks, ..Dependencies::default() })
            .oneshot(Request::get("/ready").body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.expect("body");
        (status, serde_json::from_slice(&body).expect("json"))
    }

    #[tokio::test]
    async fn a_dead_task_turns_ready_503_naming_it_and_why() {
        let tasks = BackgroundTasks::new();
        let stop = tokio_util::sync::CancellationToken::new();
        let _relay = tasks.spawn("outbox-relay", &stop, std::future::pending::<Result<(), String>>());
        let (status, ready) = ready_of(tasks.clone()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ready["checks"], serde_json::json!([{"name": "outbox-relay", "status": "UP"}]));

        tasks.record(TaskDied { task: "consumer", reason: "the worker of t[1] panicked: boom".to_owned() });
        let (status, ready) = ready_of(tasks).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(ready["status"], "DOWN");
        assert_eq!(
            ready["checks"],
            serde_json::json!([
                {"name": "outbox-relay", "status": "UP"},
                {"name": "consumer", "status": "DOWN", "error": "the worker of t[1] panicked: boom"},
            ])
        );
    }
}
