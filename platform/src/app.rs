//! Start-up and shutdown of a service: what every `main.rs` calls.
//!
//! [`Application::build`] does everything that can fail at start (database, migrations,
//! Kafka topics, binding the port) and returns a server that has not started yet;
//! [`Application::run_until_stopped`] serves until the shutdown future completes.
//! Tests build it on port 0 with a fresh database and run it in the background.

use std::future::{Future, IntoFuture as _};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, StatusCode};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;

use crate::auth::Verifier;
use crate::background::{BackgroundTasks, TaskDied};
use crate::config::{ConfigError, KafkaConfig, ServiceConfig, ServiceDefaults};
use crate::consumer::{EventConsumer, Subscriptions};
use crate::db::{Db, DbError, Migrations};
use crate::kafka::{self, KafkaProbe, KafkaSetupError};
use crate::ops::{self, Dependencies};
use crate::outbox::{Relay, RelayConfig};
use crate::problem::Problem;
use crate::{error_chain, openapi, registry, telemetry};

/// The longest a request may take before the service answers 503 itself.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a stopping service waits for open connections before it closes them: a
/// request in flight normally finishes within it (the gateway gives up on a service after
/// 10 s), while a response that never ends by itself would hold the stop forever. Event
/// streams end on [`Context::stopping`]; this is the bound for any other.
const GRACE: Duration = Duration::from_secs(10);

/// How a service builds the table of events it consumes, once its context exists.
pub type SubscriptionsFn = Arc<dyn Fn(&Context) -> Subscriptions + Send + Sync>;

/// How a service names its consumer group from its database, once that is open.
pub type GroupFn =
    Arc<dyn Fn(&Context) -> futures::future::BoxFuture<'static, Result<String, sqlx::Error>> + Send + Sync>;

/// What one service plugs into the platform.
#[derive(Clone)]
pub struct ServiceSpec {
    /// Name and default port.
    pub defaults: ServiceDefaults,
    /// Schemas applied at start, in order; empty for a service without a database.
    pub migrations: Vec<Migrations>,
    /// Whether the service owns a database at all (the gateway does not).
    pub uses_database: bool,
    /// Whether the service talks to Kafka (the gateway does not).
    pub uses_kafka: bool,
    /// The topics it publishes to, created at start if missing. The topics it consumes
    /// come from its subscriptions, and the consumer creates those.
    pub publishes: Vec<&'static str>,
    /// The events it consumes and how it applies them.
    pub subscriptions: SubscriptionsFn,
    /// Its consumer group, when not its name (a read model names it after its store).
    pub consumer_group: Option<GroupFn>,
    /// Its HTTP API as OpenAPI, served with the platform's paths at `/openapi.json`.
    pub api_doc: fn() -> utoipa::openapi::OpenApi,
    /// What checks bearer tokens: the keys at the configured JWKS URL unless set
    /// (user-service checks its own tokens with its own key).
    pub verifier: Option<Arc<Verifier>>,
    /// How long the broker may hold its consumer's fetches to gather more messages
    /// (`KAFKA_FETCH_LINGER_MS` overrides it). None: each is answered at once.
    pub fetch_linger: Option<Duration>,
}

impl std::fmt::Debug for ServiceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceSpec")
            .field("defaults", &self.defaults)
            .field("uses_database", &self.uses_database)
            .field("uses_kafka", &self.uses_kafka)
            .field("publishes", &self.publishes)
            .field("fetch_linger", &self.fetch_linger)
            .finish_non_exhaustive()
    }
}

impl ServiceSpec {
    /// A service with a database and Kafka, no schema, topics or subscriptions yet.
    pub fn new(defaults: ServiceDefaults) -> Self {
        Self {
            defaults,
            migrations: Vec::new(),
            uses_database: true,
            uses_kafka: true,
            publishes: Vec::new(),
            subscriptions: Arc::new(|_| Subscriptions::new()),
            consumer_group: None,
            api_doc: crate::openapi::empty,
            verifier: None,
            fetch_linger: None,
        }
    }

    /// The service `name` of `services/registry.txt`, with its port. One without a
    /// database there has no outbox to relay and nothing to apply events to, so no Kafka
    /// either (the gateway).
    ///
    /// # Panics
    /// When the registry has no line for `name`: a service that is not registered is a
    /// mistake in the code, found by the first test that starts it.
    pub fn registered(name: &'static str) -> Self {
        let service =
            registry::service(name).unwrap_or_else(|| panic!("services/registry.txt has no line for {name}"));
        Self {
            uses_database: service.owns_database,
            uses_kafka: service.owns_database,
            ..Self::new(ServiceDefaults { name: service.name, port: service.port })
        }
    }

    /// Adds a schema, applied at start after the ones before it.
    pub fn migrations(mut self, migrations: Migrations) -> Self {
        self.migrations.push(migrations);
        self
    }

    /// The topics it publishes to.
    pub fn publishes(mut self, topics: &[&'static str]) -> Self {
        self.publishes = topics.to_vec();
        self
    }

    /// The events it consumes, built from the started service's context.
    pub fn subscriptions(
        mut self,
        subscriptions: impl Fn(&Context) -> Subscriptions + Send + Sync + 'static,
    ) -> Self {
        self.subscriptions = Arc::new(subscriptions);
        self
    }

    /// Names its consumer group with `group` rather than after the service. A read model
    /// that names it after its store (a new store, a new group) reads every topic from the
    /// beginning when its store is deleted, and so rebuilds itself.
    pub fn consumer_group<F>(mut self, group: impl Fn(&Context) -> F + Send + Sync + 'static) -> Self
    where
        F: Future<Output = Result<String, sqlx::Error>> + Send + 'static,
    {
        self.consumer_group = Some(Arc::new(move |context| Box::pin(group(context))));
        self
    }

    /// Lets the broker hold its consumer's fetches up to `linger` to gather more messages.
    /// For a service off the saga's path (the read model, notifications): fewer, larger
    /// batches, for the broker and for its own transactions, at that much latency. A
    /// saga step keeps the default, since every step's wait adds to every order's.
    pub fn fetch_linger(mut self, linger: Duration) -> Self {
        self.fetch_linger = Some(linger);
        self
    }

    /// Checks tokens with `verifier` rather than with the keys at the JWKS URL.
    pub fn verifier(mut self, verifier: Verifier) -> Self {
        self.verifier = Some(Arc::new(verifier));
        self
    }

    /// Its HTTP API's OpenAPI document.
    pub fn api_doc(mut self, api_doc: fn() -> utoipa::openapi::OpenApi) -> Self {
        self.api_doc = api_doc;
        self
    }
}

/// What a service's routes get to work with.
#[derive(Debug, Clone)]
pub struct Context {
    /// The configuration it started with.
    pub config: ServiceConfig,
    /// Its database, when [`ServiceSpec::uses_database`].
    pub db: Option<Db>,
    /// Cancelled when the service begins to stop: responses that never end by themselves
    /// (event streams) end on it, so that the stop need not wait for their clients.
    pub stopping: CancellationToken,
}

impl Context {
    /// The routes `router` builds on the service's database; none for a service that has
    /// no database.
    pub fn routes_on_db(&self, router: impl FnOnce(Db) -> Router) -> Router {
        self.db.clone().map_or_else(Router::new, router)
    }
}

/// Why a service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A configuration variable is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Kafka could not be reached or set up.
    #[error(transparent)]
    Kafka(#[from] KafkaSetupError),
    /// The HTTP address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Tracing could not be set up.
    #[error(transparent)]
    Telemetry(#[from] telemetry::TelemetryError),
    /// The consumer group could not be read from the database.
    #[error("cannot read the consumer group from the database")]
    ConsumerGroup(#[source] sqlx::Error),
}

/// Why a service that started stopped other than when told to.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The HTTP server stopped with an error.
    #[error("serving HTTP failed")]
    Serve(#[source] std::io::Error),
    /// The outbox relay or the consumer died.
    #[error(transparent)]
    TaskDied(TaskDied),
}

/// A built service, bound to its port, not yet serving.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: Router,
    context: Context,
    relay: Option<Relay>,
    consumer: Option<EventConsumer>,
    tasks: BackgroundTasks,
}

impl Application {
    /// Opens the database, creates the topics, joins the consumer group, binds the port
    /// and assembles the routes: the platform's (`/health`, `/ready`, `/metrics`) and the
    /// service's own from `routes`.
    pub async fn build(
        spec: &ServiceSpec,
        config: ServiceConfig,
        routes: impl FnOnce(&Context) -> Router,
    ) -> Result<Self, StartError> {
        let db = if spec.uses_database {
            let migrations: Vec<&Migrations> = spec.migrations.iter().collect();
            Some(Db::connect(&config.database_url, &migrations).await?)
        } else {
            None
        };
        let kafka = if spec.uses_kafka {
            let topics: Vec<String> = spec.publishes.iter().map(|t| config.kafka.topic(t)).collect();
            let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
            kafka::ensure_topics(&config.kafka, config.service_name, &topics).await?;
            Some(KafkaProbe::new(&config.kafka, config.service_name)?)
        } else {
            None
        };
        let listener = TcpListener::bind(config.http_addr)
            .await
            .map_err(|source| StartError::Bind { addr: config.http_addr, source })?;
        let context = Context { config, db: db.clone(), stopping: CancellationToken::new() };
        let (relay, consumer) = match (&db, spec.uses_kafka) {
            (Some(db), true) => {
                let config = &context.config;
                let relay =
                    Relay::new(db.clone(), &config.kafka, config.service_name, RelayConfig::default())
                        .map_err(|source| KafkaSetupError::Client {
                            bootstrap: config.kafka.bootstrap_servers.clone(),
                            source,
                        })?;
                let subscriptions = (spec.subscriptions)(&context);
                let consumer = if subscriptions.is_empty() {
                    None
                } else {
                    let group = match &spec.consumer_group {
                        Some(group) => group(&context).await.map_err(StartError::ConsumerGroup)?,
                        None => config.consumer_group(),
                    };
                    let kafka = KafkaConfig {
                        fetch_linger: config.kafka.fetch_linger.or(spec.fetch_linger),
                        ..config.kafka.clone()
                    };
                    Some(EventConsumer::start(db.clone(), &kafka, &group, config.retry, subscriptions).await?)
                };
                (Some(relay), consumer)
            }
            _ => (None, None),
        };
        let tasks = BackgroundTasks::new();
        let verifier = spec
            .verifier
            .clone()
            .unwrap_or_else(|| Arc::new(Verifier::remote(context.config.jwks_url.clone())));
        let router = routes(&context)
            .merge(ops::router(Dependencies { db, kafka, tasks: tasks.clone() }))
            .merge(openapi::router(openapi::document(spec.defaults.name, (spec.api_doc)())))
            .fallback(|| async { Problem::new(StatusCode::NOT_FOUND, Some("no such resource".to_owned())) })
            .layer(axum::Extension(verifier));
        Ok(Self { listener, router: with_standard_layers(router), context, relay, consumer, tasks })
    }

    /// The port it listens on (the OS picks one when `HTTP_ADDR` has port 0).
    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.context.config.http_addr)
    }

    /// What the routes were built with.
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// Serves until `shutdown` completes, then lets requests in flight finish and closes
    /// the database. Stops the same way, and returns [`RunError::TaskDied`], when the
    /// outbox relay or the consumer dies first.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), RunError> {
        let Self { listener, router, context, relay, consumer, tasks } = self;
        tracing::info!(service = context.config.service_name, addr = %listener.local_addr().map_err(RunError::Serve)?, "listening");
        let stop_consuming = CancellationToken::new();
        let stop_relaying = CancellationToken::new();
        let relaying = relay.map(|relay| {
            let stop = stop_relaying.clone();
            tasks.spawn("outbox-relay", &stop_relaying, async move {
                relay.run(stop).await;
                Ok::<(), std::convert::Infallible>(())
            })
        });
        let consuming = consumer
            .map(|consumer| tasks.spawn("consumer", &stop_consuming, consumer.run(stop_consuming.clone())));
        let watched = tasks.clone();
        let stopping = context.stopping.clone();
        let stop_serving = stopping.clone();
        let stopped = async move {
            tokio::select! {
                () = shutdown => {}
                () = watched.died() => {}
            }
            stop_serving.cancel();
        };
        let serving = axum::serve(listener, router).with_graceful_shutdown(stopped).into_future();
        let served = tokio::select! {
            served = serving => served,
            () = async { stopping.cancelled().await; tokio::time::sleep(GRACE).await } => {
                tracing::info!("connections still open {GRACE:?} after the stop (event streams): closed");
                Ok(())
            }
        };
        // Consumers first: a handler in flight finishes and its events reach the outbox;
        // the relay stops last (what it has not sent waits in the outbox for next start).
        // A task that died has said why already.
        stop_consuming.cancel();
        if let Some(consuming) = consuming {
            let _ = consuming.await;
        }
        stop_relaying.cancel();
        if let Some(relaying) = relaying {
            let _ = relaying.await;
        }
        if let Some(db) = &context.db {
            db.close().await;
        }
        served.map_err(RunError::Serve)?;
        tasks.first_death().map_or(Ok(()), |died| Err(RunError::TaskDied(died)))
    }
}

/// Request ids (kept from the client or made), trace context in and out, and a time limit.
fn with_standard_layers(router: Router) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    router
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, REQUEST_TIMEOUT))
        .layer(axum::middleware::from_fn(crate::http_trace::trace_request))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// Completes on Ctrl-C or SIGTERM. The handlers are installed when this is called, not
/// when the future is first polled: the server polls it from a task of its own, and a
/// SIGTERM that came after the first answered request but before that poll took the
/// default action and killed the process (seen in CI as "exited with signal 15").
#[cfg(unix)]
pub fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    async move {
        let (mut interrupt, mut terminate) = match (interrupt, terminate) {
            (Ok(interrupt), Ok(terminate)) => (interrupt, terminate),
            (Err(error), _) | (_, Err(error)) => {
                tracing::error!(%error, "cannot listen for Ctrl-C and SIGTERM");
                return std::future::pending().await;
            }
        };
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("Ctrl-C: shutting down"),
            _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
        }
    }
}

/// Completes on Ctrl-C.
#[cfg(not(unix))]
pub async fn shutdown_signal() {
    if let Err(error) = tokio::signal::ctrl_c().await {
        tracing::error!(%error, "cannot listen for Ctrl-C");
        std::future::pending::<()>().await;
    }
    tracing::info!("Ctrl-C: shutting down");
}

/// The whole life of a service process: read the configuration, set up tracing, build,
/// serve until Ctrl-C or SIGTERM. A bad configuration or a failed start is printed with
/// its cause and ends the process with a non-zero code.
pub fn run(spec: ServiceSpec, routes: impl FnOnce(&Context) -> Router) -> ExitCode {
    let name = spec.defaults.name;
    let config = match ServiceConfig::from_env(spec.defaults) {
        Ok(config) => config,
        Err(error) => return bad_config(name, &error),
    };
    // Before the runtime exists: see the telemetry module on why.
    let telemetry = match telemetry::init(name, config.zipkin_endpoint.as_deref(), config.trace_sampler) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("{name}: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{name}: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async move {
        let app = Application::build(&spec, config, routes).await.map_err(Failure::Start)?;
        let stop = shutdown_signal();
        app.run_until_stopped(stop).await.map_err(Failure::Run)
    });
    let code = match outcome {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        // Logged when it happened; the exit code tells the supervisor to start it again.
        Err(Failure::Run(RunError::TaskDied(_))) => ExitCode::FAILURE,
        Err(error) => {
            tracing::error!(error = %error_chain(&error), "{name} failed");
            eprintln!("{name}: {}", error_chain(&error));
            ExitCode::FAILURE
        }
    };
    runtime.shutdown_timeout(Duration::from_secs(10));
    telemetry.shutdown();
    code
}

/// Ends a process whose configuration is bad: the variable, its value and the rule on
/// stderr, exit code 2. For a service's own settings, read before [`run`].
pub fn bad_config(name: &str, error: &ConfigError) -> ExitCode {
    eprintln!("{name}: {error}");
    ExitCode::from(2)
}

/// A start that failed or a run that ended badly, for [`run`]'s exit code.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Start(StartError),
    #[error(transparent)]
    Run(RunError),
}
