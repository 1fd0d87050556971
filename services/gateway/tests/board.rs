//! The saga board through the gateway: its page and files need no token, and its event
//! stream is passed on as the service writes it rather than when it ends.

use std::io::{Read as _, Write as _};
use std::sync::mpsc;
use std::time::Duration;

use testkit::{TestService, service_config};

/// The gateway as the platform starts it, every service at `services_url`.
async fn gateway(services_url: &str) -> TestService {
    let mut upstreams = gateway::Upstreams::default();
    for name in gateway::Upstreams::default().names() {
        upstreams = upstreams.with(name, services_url);
    }
    let spec = gateway::spec();
    TestService::spawn(&spec, service_config(&spec, "sqlite::memory:"), move |_| {
        gateway::router(upstreams, Duration::from_secs(10))
    })
    .await
}

#[tokio::test]
async fn the_page_and_its_files_are_served_without_a_token() {
    let gateway = gateway("http://127.0.0.1:9").await;
    let client = reqwest::Client::new();
    for (path, content_type, contains) in [
        ("/board", "text/html; charset=utf-8", "<script type=\"module\" src=\"/board/board.js\">"),
        ("/board/board.js", "text/javascript; charset=utf-8", "/api/board/stream"),
        ("/board/board.css", "text/css; charset=utf-8", ".lane"),
    ] {
        let answer = client.get(format!("{}{path}", gateway.base_url)).send().await.expect(path);
        assert_eq!(answer.status(), 200, "{path}");
        assert_eq!(answer.headers()["content-type"], content_type, "{path}");
        assert_eq!(answer.headers()["cache-control"], "no-cache", "{path}");
        let body = answer.text().await.expect(path);
        assert!(body.contains(contains), "{path} has {contains}");
    }
}

/// A stand-in service that answers any request with the head of an event stream and one
/// event, then keeps the connection open until `done` is dropped. Plain `std::net`: the
/// point is a body that has not ended.
fn open_stream_service(done: mpsc::Receiver<()>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        let (mut connection, _) = listener.accept().expect("accept");
        let mut request = [0_u8; 4096];
        let _ = connection.read(&mut request).expect("read the request");
        let event = "event: order\ndata: {\"orderId\":\"x\"}\n\n";
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\
                    transfer-encoding: chunked\r\n\r\n";
        write!(connection, "{head}{:x}\r\n{event}\r\n", event.len()).expect("write");
        connection.flush().expect("flush");
        // Until the test is over: the stream has not ended when the event is read.
        let _ = done.recv();
    });
    url
}

#[tokio::test]
async fn the_event_stream_arrives_event_by_event() {
    let (_open, done) = mpsc::channel();
    let gateway = gateway(&open_stream_service(done)).await;
    let mut answer = reqwest::Client::new()
        .get(format!("{}/api/board/stream", gateway.base_url))
        .header("authorization", testkit::admin_bearer())
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("the stream's head");
    assert_eq!(answer.status(), 200, "a service owns /api/board in services/registry.txt");
    assert_eq!(answer.headers()["content-type"], "text/event-stream");
    // A bound, not a timing assertion: buffered, the event would never come.
    let first = tokio::time::timeout(Duration::from_secs(10), answer.chunk())
        .await
        .expect("the first event, while the stream is still open")
        .expect("a chunk")
        .expect("not the end");
    assert_eq!(String::from_utf8_lossy(&first), "event: order\ndata: {\"orderId\":\"x\"}\n\n");
}

#[tokio::test]
async fn the_event_stream_needs_an_admin() {
    let gateway = gateway("http://127.0.0.1:9").await;
    let client = reqwest::Client::new();
    let url = format!("{}/api/board/stream", gateway.base_url);
    assert_eq!(client.get(&url).send().await.expect("no token").status(), 401);
    let user = testkit::bearer(uuid::Uuid::now_v7());
    assert_eq!(client.get(&url).header("authorization", user).send().await.expect("user").status(), 403);
}
