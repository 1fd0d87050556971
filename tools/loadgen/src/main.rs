//! `loadgen`: signs users up, creates products, then places orders through the API at a
//! fixed rate or a fixed concurrency, with a mix of outcomes; waits until every saga has
//! ended; prints completed sagas/s, end-to-end latency (HDR histogram) and per-hop
//! latency from the events' own times. See `loadgen --help`.

mod api;
mod args;
mod cost;
mod mix;
mod observer;
mod report;

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use hdrhistogram::Histogram;
use shared_events::topics;
use tokio::sync::{mpsc, oneshot};

use crate::api::Api;
use crate::args::{Args, Pace};
use crate::mix::Kind;
use crate::observer::SagaEvent;
use crate::report::Outcome;

/// Hops measured from the events' times: (name, from any of, to any of).
const HOPS: [(&str, &[&str], &[&str]); 5] = [
    (
        "reserve: order.created → inventory.*",
        &[topics::ORDER_CREATED],
        &[topics::INVENTORY_RESERVED, topics::INVENTORY_REJECTED],
    ),
    (
        "charge: inventory.reserved → payment.*",
        &[topics::INVENTORY_RESERVED],
        &[topics::PAYMENT_COMPLETED, topics::PAYMENT_FAILED],
    ),
    (
        "confirm: payment.completed → order.confirmed",
        &[topics::PAYMENT_COMPLETED],
        &[topics::ORDER_CONFIRMED],
    ),
    (
        "compensate: payment.failed → inventory.released",
        &[topics::PAYMENT_FAILED],
        &[topics::INVENTORY_RELEASED],
    ),
    (
        "cancel: inventory.rejected|released → order.cancelled",
        &[topics::INVENTORY_REJECTED, topics::INVENTORY_RELEASED],
        &[topics::ORDER_CANCELLED],
    ),
];

/// What the run set up: who orders and what.
struct World {
    users: Vec<User>,
    products: Vec<String>,
    scarce: String,
    luxury: String,
}

/// A signed-up user, and the client signed in as them.
struct User {
    id: String,
    api: Api,
}

/// An accepted order, as the placer hands it to the tracker.
struct Placed {
    id: String,
    kind: Kind,
    started: Instant,
    done: Option<oneshot::Sender<()>>,
}

/// An order in flight.
struct Flight {
    kind: Kind,
    started: Instant,
    saga_ended: bool,
    finished: Option<(String, Option<String>)>,
    done: Option<oneshot::Sender<()>>,
    times: HashMap<&'static str, i64>,
}

/// Follows every order from its POST to its last event.
struct Tracker {
    api: Api,
    flights: HashMap<String, Flight>,
    early: HashMap<String, Vec<SagaEvent>>,
    end_to_end: Histogram<u64>,
    /// When each saga's end was seen, in the order seen.
    ends: Vec<Instant>,
}

impl Tracker {
    fn place(&mut self, placed: Placed) {
        let flight = Flight {
            kind: placed.kind,
            started: placed.started,
            saga_ended: false,
            finished: None,
            done: placed.done,
            times: HashMap::new(),
        };
        self.flights.insert(placed.id.clone(), flight);
        for event in self.early.remove(&placed.id).unwrap_or_default() {
            self.event(event);
        }
    }

    fn event(&mut self, event: SagaEvent) {
        let Some(flight) = self.flights.get_mut(&event.order_id) else {
            // Its POST has not answered yet (or it is not ours).
            self.early.entry(event.order_id.clone()).or_default().push(event);
            return;
        };
        if let Some(at) = event.at_ms {
            flight.times.entry(event.topic).or_insert(at);
        }
        let terminal = event.topic == topics::ORDER_CONFIRMED || event.topic == topics::ORDER_CANCELLED;
        if !terminal || flight.finished.is_some() {
            return;
        }
        if !flight.saga_ended {
            flight.saga_ended = true;
            let micros = event.received.duration_since(flight.started).as_micros();
            let _ = self.end_to_end.record(u64::try_from(micros).unwrap_or(u64::MAX).max(1));
            self.ends.push(event.received);
            if event.topic == topics::ORDER_CONFIRMED && flight.kind == Kind::Cancel {
                let api = self.api.clone();
                let id = event.order_id.clone();
                tokio::spawn(async move {
                    if let Err(error) = api.cancel(&id).await {
                        eprintln!("loadgen: cancel {id}: {error}");
                    }
                });
                return;
            }
        }
        let status = if event.topic == topics::ORDER_CONFIRMED { "CONFIRMED" } else { "CANCELLED" };
        flight.finished = Some((status.to_owned(), event.reason));
        if let Some(done) = flight.done.take() {
            let _ = done.send(());
        }
    }

    fn unfinished(&self) -> usize {
        self.flights.values().filter(|f| f.finished.is_none()).count()
    }
}

async fn set_up(api: &Api, args: &Args, run: &str) -> Result<World, String> {
    // The first `undeliverable` users' mails fail every time (the `+fail` rule of the
    // contract): their order mails keep retries and dead letters busy during the run.
    let emails: Vec<String> = (0..args.users)
        .map(|i| {
            let fail = if i < args.undeliverable { "+fail" } else { "" };
            format!("loadgen-{run}-{i}{fail}@example.com")
        })
        .collect();
    // Each user signs up, signs in, and orders for themselves with their own token.
    let users: Vec<Result<User, api::ApiError>> = futures::stream::iter(emails.into_iter().enumerate())
        .map(|(i, email)| {
            // Spread over the gateways, when there are several.
            let api = api.starting_at(i);
            async move {
                let id = api.sign_up(&email).await?;
                let api = api.sign_in(&email, Api::PASSWORD).await?;
                Ok(User { id, api })
            }
        })
        .buffered(16)
        .collect()
        .await;
    let users: Vec<User> = users.into_iter().collect::<Result<_, _>>().map_err(|e| e.to_string())?;
    for user in &users {
        user.api.wait_for_wallet(&user.id, Duration::from_secs(60)).await.map_err(|e| e.to_string())?;
    }
    let products: Vec<String> = (0..args.products).map(|i| format!("LG-{run}-{i}")).collect();
    for (i, sku) in products.iter().enumerate() {
        api.put_product(sku, 1 + (i as i64 % 5), 1_000_000_000).await.map_err(|e| e.to_string())?;
    }
    let scarce = format!("LG-{run}-SCARCE");
    let luxury = format!("LG-{run}-LUXURY");
    api.put_product(&scarce, 100, 0).await.map_err(|e| e.to_string())?;
    api.put_product(&luxury, 1_000_000_000, 1_000_000_000).await.map_err(|e| e.to_string())?;
    Ok(World { users, products, scarce, luxury })
}

/// Shared by every placer.
struct Placer {
    world: World,
    next: AtomicU64,
    rejected: AtomicU64,
    post: std::sync::Mutex<Histogram<u64>>,
    placed: mpsc::UnboundedSender<Placed>,
}

impl Placer {
    /// Places the next order; returns a receiver fired when it has ended, if `wait`.
    async fn place_next(&self, wait: bool) -> Option<oneshot::Receiver<()>> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let kind = mix::kind(n);
        let items = mix::items(n, kind, &self.world.products, &self.world.scarce, &self.world.luxury);
        let user = &self.world.users[(mix::scramble(n ^ 0xABCD) % self.world.users.len() as u64) as usize];
        let started = Instant::now();
        match user.api.place(&user.id, &items).await {
            Ok(id) => {
                let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX).max(1);
                if let Ok(mut post) = self.post.lock() {
                    let _ = post.record(micros);
                }
                let (done, ended) = if wait {
                    let (send, receive) = oneshot::channel();
                    (Some(send), Some(receive))
                } else {
                    (None, None)
                };
                let _ = self.placed.send(Placed { id, kind, started, done });
                ended
            }
            Err(error) => {
                if self.rejected.fetch_add(1, Ordering::Relaxed) < 5 {
                    eprintln!("loadgen: {error}");
                }
                None
            }
        }
    }
}

async fn drive(placer: Arc<Placer>, pace: Pace, duration: Duration, settle: Duration) {
    let end = Instant::now() + duration;
    match pace {
        Pace::Rate(rate) => {
            let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            // Open loop: a late tick is made up at once, never skipped.
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut tasks = tokio::task::JoinSet::new();
            while Instant::now() < end {
                ticks.tick().await;
                let placer = Arc::clone(&placer);
                tasks.spawn(async move { placer.place_next(false).await });
                while tasks.try_join_next().is_some() {}
            }
            while tasks.join_next().await.is_some() {}
        }
        Pace::Concurrency(workers) => {
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..workers {
                let placer = Arc::clone(&placer);
                tasks.spawn(async move {
                    while Instant::now() < end {
                        if let Some(ended) = placer.place_next(true).await {
                            let _ = tokio::time::timeout(settle, ended).await;
                        }
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
        }
    }
}

async fn run(args: Args) -> Result<Outcome, String> {
    let api = Api::new(&args.base_urls)
        .sign_in(&args.admin_email, &args.admin_password)
        .await
        .map_err(|e| format!("{e} (is the admin account set? ADMIN_EMAIL / ADMIN_PASSWORD)"))?;
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    eprintln!(
        "loadgen: setting up {} users and {} products at {}",
        args.users,
        args.products,
        args.base_urls.join(", ")
    );
    let world = set_up(&api, &args, &run).await?;
    let mut events = observer::start(&args.kafka, &args.topic_prefix).await?;
    let (placed_tx, mut placed_rx) = mpsc::unbounded_channel();
    let placer = Arc::new(Placer {
        world,
        next: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
        post: std::sync::Mutex::new(report::histogram()),
        placed: placed_tx,
    });
    let cost = cost::Probe::new(&args.base_urls[0], args.broker_pid.or_else(local_broker_pid));
    // The set-up's last events settle, and the services' request counts catch up.
    tokio::time::sleep(cost::REQUESTS_LAG).await;
    let cost_before = cost.read().await;
    eprintln!("loadgen: {:?} for {:?}", args.pace, args.duration);
    let first = Instant::now();
    let driving = tokio::spawn(drive(Arc::clone(&placer), args.pace, args.duration, args.settle));
    let mut tracker = Tracker {
        api: api.clone(),
        flights: HashMap::new(),
        early: HashMap::new(),
        end_to_end: report::histogram(),
        ends: Vec::new(),
    };
    let mut deadline = None;
    loop {
        tokio::select! {
            Some(placed) = placed_rx.recv() => tracker.place(placed),
            Some(event) = events.recv() => tracker.event(event),
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        if deadline.is_none() && driving.is_finished() {
            // Every order has been placed and handed over; take the last ones in.
            while let Ok(placed) = placed_rx.try_recv() {
                tracker.place(placed);
            }
            deadline = Some(Instant::now() + args.settle);
            eprintln!(
                "loadgen: placed; waiting up to {:?} for {} sagas to end",
                args.settle,
                tracker.unfinished()
            );
        }
        if let Some(deadline) = deadline
            && (tracker.unfinished() == 0 || Instant::now() > deadline)
        {
            break;
        }
    }
    let post = placer.post.lock().map(|h| h.clone()).unwrap_or_else(|_| report::histogram());
    let rejected = placer.rejected.load(Ordering::Relaxed);
    let cost_after = cost.read().await;
    tokio::time::sleep(cost::REQUESTS_LAG).await;
    let cost_later = cost.read().await;
    outcome(tracker, &api, post, rejected, first, [cost_before, cost_after, cost_later]).await
}

/// Tallies the flights; an order whose end was not seen on Kafka is asked for by HTTP
/// before it is called lost.
async fn outcome(
    tracker: Tracker,
    api: &Api,
    post: Histogram<u64>,
    rejected: u64,
    first: Instant,
    [cost_before, cost_after, cost_later]: [cost::Reading; 3],
) -> Result<Outcome, String> {
    let mut hops: BTreeMap<&'static str, Histogram<u64>> = BTreeMap::new();
    let (mut confirmed, mut lost) = (0, 0);
    let mut cancelled: BTreeMap<String, u64> = BTreeMap::new();
    for (id, flight) in &tracker.flights {
        for (name, from, to) in HOPS {
            let start = from.iter().find_map(|t| flight.times.get(t));
            let end = to.iter().find_map(|t| flight.times.get(t));
            if let (Some(start), Some(end)) = (start, end) {
                let micros = u64::try_from((end - start).max(0) * 1000).unwrap_or(0).max(1);
                let _ = hops.entry(name).or_insert_with(report::histogram).record(micros);
            }
        }
        let finished = match &flight.finished {
            Some(finished) => Some(finished.clone()),
            None => match api.status(id).await {
                Ok((status, reason)) if status == "CONFIRMED" || status == "CANCELLED" => {
                    Some((status, reason))
                }
                Ok(_) | Err(_) => None,
            },
        };
        match finished {
            Some((status, _)) if status == "CONFIRMED" => confirmed += 1,
            Some((_, reason)) => *cancelled.entry(reason.unwrap_or_else(|| "?".to_owned())).or_default() += 1,
            None => lost += 1,
        }
    }
    let span = tracker.ends.last().map_or(Duration::ZERO, |last| last.duration_since(first));
    let longest_stall = report::longest_gap(first, &tracker.ends);
    let ended = tracker.end_to_end.len();
    let completed_per_s = if span.is_zero() { 0.0 } else { ended as f64 / span.as_secs_f64() };
    let cost = cost::per_saga(&cost_before, &cost_after, &cost_later, ended as usize);
    Ok(Outcome {
        orders: tracker.flights.len() as u64,
        rejected,
        confirmed,
        cancelled,
        lost,
        completed_per_s,
        longest_stall,
        end_to_end: tracker.end_to_end,
        post,
        hops,
        cost,
    })
}

/// The broker of the local stack (`stack/stack.sh`), when it runs from this directory.
fn local_broker_pid() -> Option<u32> {
    std::fs::read_to_string(".stack/kafka/1x9092/node-1/pid").ok()?.trim().parse().ok()
}

#[allow(clippy::print_stdout)]
fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.iter().any(|a| a == "--help" || a == "-h") {
        println!("{}", args::USAGE);
        return ExitCode::SUCCESS;
    }
    let args = match Args::parse(&argv, |name| std::env::var(name).ok()) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("loadgen: {error}");
            return ExitCode::FAILURE;
        }
    };
    let json = args.json;
    match runtime.block_on(run(args)) {
        Ok(outcome) => {
            println!("{}", outcome.text());
            if json {
                println!("{}", outcome.json());
            }
            if outcome.lost > 0 || outcome.rejected > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS }
        }
        Err(error) => {
            eprintln!("loadgen: {error}");
            ExitCode::FAILURE
        }
    }
}
