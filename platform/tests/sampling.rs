//! Trace sampling keeps an order whole: with a ratio of 0 for traces that start here, an
//! order that started untraced stays untraced through the outbox, Kafka and the consumer,
//! and one whose caller traced it is traced at every hop.
//!
//! Its own binary: it installs the process-wide subscriber with its own sampler.

#[path = "integration/support.rs"]
mod support;

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use platform::config::TraceSampler;
use platform::consumer::{EventMeta, Handler, HandlerError, Subscriptions};
use platform::db::Tx;
use platform::telemetry::{self, Telemetry};
use shared_events::{OrderCreated, OrderItem};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

use support::{consume, database, effects, eventually, record_effect, relay, topic};

fn telemetry() -> &'static Telemetry {
    static TELEMETRY: OnceLock<Telemetry> = OnceLock::new();
    TELEMETRY.get_or_init(|| {
        telemetry::init("sampling-test", None, TraceSampler::ParentBasedRatio(0.0)).expect("telemetry")
    })
}

/// Records, per order, whether the consumer's span is sampled and the flags it received.
struct RecordSampling;

#[async_trait::async_trait]
impl Handler<OrderCreated> for RecordSampling {
    async fn handle(&self, event: OrderCreated, meta: &EventMeta, tx: &mut Tx) -> Result<(), HandlerError> {
        let context = tracing::Span::current().context();
        let span = context.span();
        let sampled = span.span_context().is_sampled();
        let trace_id = span.span_context().trace_id();
        let flags = meta.headers.get("traceparent").map(|t| t.rsplit('-').next().unwrap_or("").to_owned());
        record_effect(
            tx,
            format!(
                "{} sampled={sampled} flags={} trace={trace_id}",
                event.order_id,
                flags.unwrap_or_default()
            ),
        )
        .await?;
        Ok(())
    }
}

fn order() -> OrderCreated {
    OrderCreated::placed(Uuid::new_v4(), Uuid::nil(), vec![OrderItem { sku: "S".into(), quantity: 1 }])
}

#[tokio::test(flavor = "multi_thread")]
async fn an_order_is_traced_whole_or_not_at_all() {
    telemetry();
    let (_database, db) = database().await;
    let topic = topic("it.sampling").await;
    let (stop, running) =
        consume(&db, Subscriptions::new().on_topic::<OrderCreated>(&topic, RecordSampling)).await;

    // Started here, at a ratio of 0: not traced.
    let untraced = order();
    let root = tracing::info_span!("place order", otel.kind = "server");
    async {
        let mut tx = db.begin_write().await.expect("begin");
        tx.publish_to(&topic, &untraced).await.expect("enqueue");
        tx.commit().await.expect("commit");
    }
    .instrument(root)
    .await;

    // Its caller traced it (sampled flag 01): traced at every hop.
    let traced = order();
    let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let joined = tracing::info_span!("place order", otel.kind = "server");
    let _ = joined.set_parent(
        TraceContextPropagator::new()
            .extract(&HashMap::from([("traceparent".to_owned(), caller.to_owned())])),
    );
    async {
        let mut tx = db.begin_write().await.expect("begin");
        tx.publish_to(&topic, &traced).await.expect("enqueue");
        tx.commit().await.expect("commit");
    }
    .instrument(joined)
    .await;

    assert_eq!(relay(&db).publish_pending().await.expect("relay"), 2);
    eventually(Duration::from_secs(30), "both applied", || async { effects(&db).await.len() == 2 }).await;
    stop.cancel();
    running.await.expect("consumer").expect("no worker died");

    let seen = effects(&db).await;
    let of = |id: Uuid| seen.iter().find(|e| e.starts_with(&id.to_string())).cloned().expect("recorded");
    let untraced = of(untraced.order_id);
    assert!(untraced.contains("sampled=false flags=00"), "{untraced}");
    let traced = of(traced.order_id);
    assert!(
        traced.contains("sampled=true flags=01 trace=4bf92f3577b34da6a3ce929d0e0e4736"),
        "the caller's trace, sampled at every hop: {traced}"
    );
}
