//! RabbitMQ through lapin: connecting, the declared topology, message headers, and publishing
//! with publisher confirms.

mod conflict;
mod dead_letter;
pub mod message;
mod seal;
mod tls;
mod topology;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::tcp::OwnedTLSConfig;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};

pub use conflict::DeclareError;
pub use seal::Seal;
pub use topology::Topology;

use crate::config::{BrokerConfig, TlsFileError};

/// A publish the broker did not take.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the broker refused the message (nack)")]
    Nacked,
    #[error("no queue is bound to exchange `{exchange}` with routing key `{routing_key}`")]
    Unroutable {
        exchange: String,
        routing_key: String,
    },
    #[error(transparent)]
    Amqp(#[from] lapin::Error),
}

/// Why the broker could not be reached: a `broker.tls` file, or the connection itself (a
/// refused port, a certificate the broker's name or CA does not match, bad credentials…).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    TlsFile(#[from] TlsFileError),
    /// Said once: lapin's text of an I/O error repeats its cause, which is all there is to say
    /// ("invalid peer certificate: UnknownIssuer", "Connection refused").
    #[error("{}", reason(.0))]
    Amqp(lapin::Error),
}

impl From<lapin::Error> for ConnectError {
    fn from(err: lapin::Error) -> Self {
        Self::Amqp(err)
    }
}

fn reason(err: &lapin::Error) -> String {
    match err.kind() {
        lapin::ErrorKind::IOError(io) => io.to_string(),
        _ => err.to_string(),
    }
}

/// Connects to the configured broker as `role` (`worker`, `cli`…); with `amqps://`, over TLS
/// with `broker.tls`'s files, read now so that renewed files count from the next connection.
/// The name shows in the management UI and `rabbitmqctl list_connections` as
/// `run-notifier <role> <pid>`.
pub async fn connect_to(broker: &BrokerConfig, role: &str) -> Result<Connection, ConnectError> {
    let tls = tls::lapin_config(broker.tls.read()?);
    Ok(connect_with(broker.url.expose(), tls, role).await?)
}

/// Connects to `url` as `role`, trusting the system roots only and with no client
/// certificate: for tests and tools, where no config is at hand.
pub async fn connect(url: &str, role: &str) -> Result<Connection, lapin::Error> {
    connect_with(url, OwnedTLSConfig::default(), role).await
}

async fn connect_with(
    url: &str,
    tls: OwnedTLSConfig,
    role: &str,
) -> Result<Connection, lapin::Error> {
    let name = format!("run-notifier {role} {}", std::process::id());
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect_with_config(url, properties, tls, lapin::runtime::default_runtime()?).await
}

/// A channel in confirm mode: every publish returns once the broker has taken responsibility.
#[derive(Clone)]
pub struct Publisher {
    channel: Channel,
}

impl Publisher {
    pub async fn open(connection: &Connection) -> Result<Self, lapin::Error> {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Self { channel })
    }

    /// Publishes `mandatory`, so an unroutable message is an error rather than silently lost,
    /// and waits for the broker's confirm.
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), PublishError> {
        let confirm = self
            .channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                body,
                properties,
            )
            .await?
            .await?;
        match confirm {
            Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
            Confirmation::Ack(Some(_)) => Err(PublishError::Unroutable {
                exchange: exchange.to_owned(),
                routing_key: routing_key.to_owned(),
            }),
            Confirmation::Nack(_) => Err(PublishError::Nacked),
        }
    }

    pub fn channel(&self) -> &Channel {
        &self.channel
    }
}
