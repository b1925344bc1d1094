//! Names on the wire, kept in one place: AMQP headers, HTTP headers, user agent.

/// Why a message was dead-lettered (plain sentence).
pub const HEADER_ERROR: &str = "x-run-notifier-error";
/// The integration a retry or dead letter belongs to.
pub const HEADER_INTEGRATION: &str = "x-run-notifier-integration";
/// On a retry: the number of the attempt it will make. On a dead letter: attempts made.
pub const HEADER_ATTEMPT: &str = "x-run-notifier-attempt";
/// Exchange the event was first published to.
pub const HEADER_ORIGINAL_EXCHANGE: &str = "x-run-notifier-original-exchange";
/// Routing key the event was first published with.
pub const HEADER_ORIGINAL_ROUTING_KEY: &str = "x-run-notifier-original-routing-key";
/// Run id of a dead letter, when the event could be parsed.
pub const HEADER_RUN_ID: &str = "x-run-notifier-run-id";
/// Unix seconds at which the message was dead-lettered.
pub const HEADER_DEAD_AT: &str = "x-run-notifier-dead-at";
/// Unix milliseconds at which a delivery entered its integration's queue.
pub const HEADER_QUEUED_AT: &str = "x-run-notifier-queued-at";
/// On a dead letter: the size of the producer's headers, left off because they were too large to
/// publish again.
pub const HEADER_HEADERS_DROPPED: &str = "x-run-notifier-headers-dropped";
/// Dead-letter kind: `invalid` (bad input) or `delivery` (a target gave up).
pub const HEADER_DEAD_KIND: &str = "x-run-notifier-dead-kind";
/// HMAC-SHA256 (hex) over the headers above that steer a message (integration, attempt, queued
/// at, original exchange and routing key), its message id and its body, under the key the
/// workers sharing a ledger keep there: without it, those headers are a producer's and ignored.
pub const HEADER_SEAL: &str = "x-run-notifier-seal";

/// The CloudEvents type the worker consumed before it followed the whole run, still the
/// default routing key.
pub const EVENT_TYPE: &str = "run.canceled";

/// Standard Webhooks headers.
pub const WEBHOOK_ID: &str = "webhook-id";
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";
/// GitHub-style body signature, optional per webhook integration.
pub const HUB_SIGNATURE: &str = "x-hub-signature-256";
/// Version prefix of Standard Webhooks signatures.
pub const SIGNATURE_VERSION: &str = "v1";
/// Prefix of Standard Webhooks secrets.
pub const SECRET_PREFIX: &str = "whsec_";

/// Content type of published events.
pub const CLOUDEVENTS_CONTENT_TYPE: &str = "application/cloudevents+json";

/// `User-Agent` of every HTTP request.
pub const USER_AGENT: &str = concat!("run-notifier/", env!("CARGO_PKG_VERSION"));
