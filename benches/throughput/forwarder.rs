//! The bare forwarder: the fastest notifier that could exist on the same broker and receiver.
//! A lapin consumer with the worker's prefetch that POSTs each event body, unchanged, to every
//! target URL with one shared reqwest client, then acks. No ledger, signing, templates, logs or
//! metrics: what the worker costs on top of this is the price of its guarantees and features.
//!
//! It runs in a child process like the worker, and answers `/readyz` once it consumes, so the
//! benchmark measures both the same way; on SIGTERM it stops consuming, finishes what it holds
//! and exits, as the worker does (so that callgrind counts a whole run of each).

use std::sync::Arc;

use axum::body::Bytes;
use futures_util::StreamExt as _;
use futures_util::future::join_all;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use tokio_util::task::TaskTracker;

/// Set in the child's environment to the forwarder's spec (see [`Spec`]).
pub const CHILD_SPEC: &str = "THROUGHPUT_CHILD_FORWARDER";

/// What the forwarder does, written as lines: AMQP URL, queue, prefetch, then one target URL
/// per line.
pub struct Spec {
    pub amqp_url: String,
    pub queue: String,
    pub prefetch: u16,
    pub targets: Vec<String>,
}

impl Spec {
    pub fn encode(&self) -> String {
        let mut lines = vec![
            self.amqp_url.clone(),
            self.queue.clone(),
            self.prefetch.to_string(),
        ];
        lines.extend(self.targets.iter().cloned());
        lines.join("\n")
    }

    fn decode(text: &str) -> Self {
        let mut lines = text.lines().map(str::to_owned);
        let mut next = || lines.next().expect("a complete forwarder spec");
        let (amqp_url, queue, prefetch) = (next(), next(), next());
        Self {
            amqp_url,
            queue,
            prefetch: prefetch.parse().expect("a prefetch"),
            targets: lines.collect(),
        }
    }
}

/// In the child: forward until killed.
pub fn run(spec: &str) {
    let spec = Spec::decode(spec);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(forward(spec));
}

async fn forward(spec: Spec) {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
    let connection = lapin::Connection::connect(&spec.amqp_url, Default::default())
        .await
        .expect("RabbitMQ");
    let channel = connection.create_channel().await.unwrap();
    channel
        .basic_qos(spec.prefetch, BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = channel
        .basic_consume(
            spec.queue.as_str().into(),
            "bare-forwarder".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    serve_ready().await;
    let client = reqwest::Client::new();
    let targets: Arc<[String]> = spec.targets.into();
    let in_flight = TaskTracker::new();
    loop {
        let mut delivery = tokio::select! {
            next = consumer.next() => match next {
                Some(Ok(delivery)) => delivery,
                _ => break,
            },
            _ = terminate.recv() => break,
        };
        let (client, targets) = (client.clone(), Arc::clone(&targets));
        in_flight.spawn(async move {
            let body = Bytes::from(std::mem::take(&mut delivery.data));
            let sent = join_all(targets.iter().map(|url| {
                client
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
            }))
            .await;
            if sent
                .iter()
                .all(|r| r.as_ref().is_ok_and(|r| r.status().is_success()))
            {
                let _ = delivery.ack(BasicAckOptions::default()).await;
            } else {
                let options = BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                };
                let _ = delivery.nack(options).await;
            }
        });
    }
    in_flight.close();
    in_flight.wait().await;
}

/// `/readyz` answers 200 from now on, as the worker's does once it consumes (on the admin
/// address the child reports, as the worker child does).
async fn serve_ready() {
    let app = axum::Router::new().route("/readyz", axum::routing::get(|| async { "ready" }));
    let listener = crate::child::bind_admin().await;
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
}
