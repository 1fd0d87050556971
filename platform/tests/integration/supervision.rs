//! A service whose consumer worker dies stops by itself with the reason, and the message
//! that killed it is applied after the restart: nothing is lost, nothing hangs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt as _;

use platform::app::RunError;
use platform::background::TaskDied;
use platform::consumer::{EventMeta, Handler, HandlerError, Subscriptions};
use platform::db::Tx;
use platform::{Application, ServiceDefaults, ServiceSpec};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use shared_events::{OrderCreated, OrderItem};
use testkit::{TestDatabase, kafka_config, service_config};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::support::{EFFECTS, effects, eventually};

const TOPIC: &str = "it.supervised";

/// Set while the handler is to panic, as a bug in a handler would.
static BROKEN: AtomicBool = AtomicBool::new(true);

struct Buggy;

#[async_trait::async_trait]
impl Handler<OrderCreated> for Buggy {
    async fn handle(&self, event: OrderCreated, _meta: &EventMeta, tx: &mut Tx) -> Result<(), HandlerError> {
        assert!(!BROKEN.load(Ordering::SeqCst), "a bug in the handler");
        crate::support::record_effect(tx, event.order_id.to_string()).await?;
        Ok(())
    }
}

fn spec() -> ServiceSpec {
    ServiceSpec::new(ServiceDefaults { name: "supervised", port: 0 })
        .migrations(EFFECTS)
        .subscriptions(|_| Subscriptions::new().on_topic::<OrderCreated>(TOPIC, Buggy))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_consumer_worker_stops_the_service_with_why_and_its_message_is_applied_after_restart() {
    let database = TestDatabase::create().await;
    let spec = spec();
    let config = service_config(&spec, &database.url);
    let topic = config.kafka.topic(TOPIC);

    let app = Application::build(&spec, config.clone(), |_| axum::Router::new()).await.expect("starts");
    let running = tokio::spawn(app.run_until_stopped(std::future::pending()));
    let order =
        OrderCreated::placed(Uuid::new_v4(), Uuid::nil(), vec![OrderItem { sku: "SKU".into(), quantity: 1 }]);
    let producer: FutureProducer =
        platform::kafka::client_config(&kafka_config(), "supervision-test").create().expect("producer");
    let id = Uuid::new_v4().to_string();
    let headers = OwnedHeaders::new()
        .insert(Header { key: "ce_id", value: Some(&id) })
        .insert(Header { key: "ce_type", value: Some("order.created.v1") });
    let payload = serde_json::to_string(&order).expect("json");
    let sent = producer
        .send(FutureRecord::to(&topic).key("k").payload(&payload).headers(headers), Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)
        .expect("produced");

    // It stops by itself, naming the task, the partition and the panic.
    let stopped = tokio::time::timeout(Duration::from_secs(60), running)
        .await
        .expect("the service stops by itself when its worker dies")
        .expect("the service task");
    match stopped {
        Err(RunError::TaskDied(TaskDied { task, reason })) => {
            assert_eq!(task, "consumer");
            assert_eq!(
                reason,
                format!("the worker of {topic}[{}] panicked: a bug in the handler", sent.partition)
            );
        }
        other => panic!("expected the consumer's death, got {other:?}"),
    }

    // Started again with the bug fixed, it applies the message it died on.
    BROKEN.store(false, Ordering::SeqCst);
    let app = Application::build(&spec, config, |_| axum::Router::new()).await.expect("starts again");
    let db = app.context().db.clone().expect("a database");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    eventually(Duration::from_secs(60), "the message applied after the restart", || async {
        effects(&db).await == [order.order_id.to_string()]
    })
    .await;
    let _ = stop.send(());
    running.await.expect("the service task").expect("a clean stop");
}

/// A service with no database and no Kafka, only HTTP, serving `/stream`: ticks forever,
/// or until the service begins to stop when `ends_on_stop`.
async fn streaming(ends_on_stop: bool) -> (Application, String) {
    let spec = ServiceSpec { uses_database: false, uses_kafka: false, ..spec() };
    let config = service_config(&spec, "sqlite::memory:");
    let app = Application::build(&spec, config, move |context| {
        let stopping = context.stopping.clone();
        let stream = move || {
            let stopping = stopping.clone();
            async move {
                let ticks = futures::stream::unfold((), |()| async {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Some((Ok::<_, std::convert::Infallible>(": tick\n"), ()))
                });
                let until = if ends_on_stop { stopping } else { CancellationToken::new() };
                axum::body::Body::from_stream(ticks.take_until(until.cancelled_owned()))
            }
        };
        axum::Router::new().route("/stream", axum::routing::get(stream))
    })
    .await
    .expect("starts");
    let url = format!("http://127.0.0.1:{}/stream", app.port());
    (app, url)
}

/// Stops `app` while a client holds its stream open; how long the stop took.
async fn stop_with_a_stream_open(app: Application, url: &str) -> (Duration, reqwest::Response) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let mut response = reqwest::get(url).await.expect("the stream opens");
    assert!(response.chunk().await.expect("a chunk").is_some(), "it streams");
    let started = std::time::Instant::now();
    stop.send(()).expect("still running");
    let outcome = tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("stopped within 30 s although a stream was open");
    outcome.expect("no panic").expect("a clean stop");
    (started.elapsed(), response)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_that_ends_on_stop_lets_the_service_stop_at_once_and_its_client_sees_the_end() {
    let (app, url) = streaming(true).await;
    let (took, mut response) = stop_with_a_stream_open(app, &url).await;
    assert!(took < Duration::from_secs(5), "stopped after {took:?}, not at once");
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = response.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the client saw its stream end");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_response_that_never_ends_holds_a_stop_only_for_the_grace_period() {
    let (app, url) = streaming(false).await;
    let (took, response) = stop_with_a_stream_open(app, &url).await;
    assert!(took >= Duration::from_secs(5), "it waited for the open response first ({took:?})");
    // The connection's task outlives the server here; in the process, the runtime's
    // shutdown that follows ends it, and the OS closes the socket.
    drop(response);
}
