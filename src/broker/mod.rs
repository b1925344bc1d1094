//! RabbitMQ through lapin: connecting, the declared topology, message headers, and publishing
//! with publisher confirms.

mod conflict;
mod dead_letter;
pub mod message;
mod topology;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};

pub use conflict::DeclareError;
pub use topology::Topology;

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

/// Connects as `role` (`worker`, `cli`…); the name shows in the management UI and
/// `rabbitmqctl list_connections` as `run-notifier <role> <pid>`.
pub async fn connect(url: &str, role: &str) -> Result<Connection, lapin::Error> {
    let name = format!("run-notifier {role} {}", std::process::id());
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect(url, properties).await
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
