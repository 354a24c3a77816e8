//! SQS: the queue `follow` reads notifications from, with the AWS SDK.
//!
//! Owns the connection (the same credential chain and region resolution as
//! S3, through [`crate::aws`]; `--endpoint-url` serves both) and the five
//! calls `follow` makes: long-poll receive, batched delete, batched
//! visibility change, and the queue's attributes (depth, visibility
//! timeout, redrive policy). Errors are one line, with the queue's URL.
//!
//! Invariant: a message is only ever deleted by [`Queue::delete`], whose
//! caller has settled everything it names; batch calls report per message
//! what failed.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, MessageSystemAttributeName,
    QueueAttributeName,
};

/// At most this many messages per receive, delete or visibility call (SQS's limit).
pub const BATCH: usize = 10;

/// One message received.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub receipt: String,
    pub body: String,
    /// How many times SQS has handed it out (1 the first time).
    pub receive_count: u32,
    /// When it was sent to the queue (ms since 1970), when SQS says.
    pub sent_ms: Option<u64>,
}

/// What [`Queue::attributes`] tells.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// Messages waiting (approximate, as SQS counts).
    pub waiting: u64,
    /// Messages received by some worker and not yet deleted.
    pub in_flight: u64,
    pub visibility_timeout: Option<u32>,
    /// From the redrive policy, when the queue has one.
    pub max_receive_count: Option<u32>,
}

/// A connected queue.
#[derive(Clone)]
pub struct Queue {
    client: Client,
    pub url: String,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Queue({})", self.url)
    }
}

impl Queue {
    /// Resolves credentials and region (the queue URL's region unless
    /// --region says) and builds the client.
    pub async fn connect(url: &str, aws: &crate::aws::AwsOptions, endpoint_url: Option<&str>) -> Result<Queue> {
        let region = region_of(url);
        let config = crate::aws::load(aws, aws.region.is_none().then_some(region).flatten()).await?;
        let mut builder = aws_sdk_sqs::config::Builder::from(&config);
        if let Some(endpoint) = endpoint_url {
            builder = builder.endpoint_url(endpoint);
        }
        Ok(Queue {
            client: Client::from_conf(builder.build()),
            url: url.to_string(),
        })
    }

    /// Long-polls for up to `max` messages (at most [`BATCH`]), waiting up
    /// to `wait` seconds; hides them for `visibility` seconds.
    pub async fn receive(&self, max: usize, wait: u32, visibility: u32) -> Result<Vec<Received>> {
        let answer = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, BATCH) as i32)
            .wait_time_seconds(wait.min(20) as i32)
            .visibility_timeout(visibility as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(|e| self.error("receive messages from", &e))?;
        let mut out = Vec::new();
        for message in answer.messages() {
            let (Some(id), Some(receipt)) = (message.message_id(), message.receipt_handle()) else {
                continue;
            };
            let attribute = |name: MessageSystemAttributeName| message.attributes().and_then(|a| a.get(&name));
            out.push(Received {
                id: id.to_string(),
                receipt: receipt.to_string(),
                body: message.body().unwrap_or_default().to_string(),
                receive_count: attribute(MessageSystemAttributeName::ApproximateReceiveCount)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1),
                sent_ms: attribute(MessageSystemAttributeName::SentTimestamp).and_then(|n| n.parse().ok()),
            });
        }
        Ok(out)
    }

    /// Deletes messages by receipt handle; the receipts that could not be
    /// deleted, with why.
    pub async fn delete(&self, receipts: &[String]) -> Result<Vec<(String, String)>> {
        let mut failed = Vec::new();
        for chunk in receipts.chunks(BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(r)
                        .build()
                        .context("internal: a delete entry")
                })
                .collect::<Result<Vec<_>>>()?;
            let answer = self
                .client
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| self.error("delete messages from", &e))?;
            for entry in answer.failed() {
                if let Some(receipt) = entry.id().parse::<usize>().ok().and_then(|i| chunk.get(i)) {
                    failed.push((
                        receipt.clone(),
                        format!("{}: {}", entry.code(), entry.message().unwrap_or("")),
                    ));
                }
            }
        }
        Ok(failed)
    }

    /// Sets the visibility timeout of messages (0: visible again at once);
    /// how many could not be changed (e.g. already deleted elsewhere).
    pub async fn set_visibility(&self, receipts: &[String], seconds: u32) -> Result<usize> {
        let mut failed = 0;
        for chunk in receipts.chunks(BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(r)
                        .visibility_timeout(seconds as i32)
                        .build()
                        .context("internal: a visibility entry")
                })
                .collect::<Result<Vec<_>>>()?;
            let answer = self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| self.error("change the visibility of messages in", &e))?;
            failed += answer.failed().len();
        }
        Ok(failed)
    }

    /// The queue's depth, visibility timeout and redrive limit.
    pub async fn attributes(&self) -> Result<Attributes> {
        let answer = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::VisibilityTimeout)
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .map_err(|e| self.error("read the attributes of", &e))?;
        let empty = HashMap::new();
        let map = answer.attributes().unwrap_or(&empty);
        Ok(attributes_from(map))
    }

    fn error<E, R>(&self, action: &str, e: &aws_sdk_sqs::error::SdkError<E, R>) -> anyhow::Error
    where
        E: std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        let cause = crate::aws::innermost(e);
        anyhow::anyhow!(crate::aws::one_line(&format!(
            "cannot {action} the queue {}: {cause} (check --queue-url, --region and the permissions \
             sqs:ReceiveMessage, sqs:DeleteMessage, sqs:ChangeMessageVisibility, sqs:GetQueueAttributes)",
            self.url
        )))
    }
}

/// Reads the attributes SQS answers with.
fn attributes_from(map: &HashMap<QueueAttributeName, String>) -> Attributes {
    let number = |name: QueueAttributeName| map.get(&name).and_then(|v| v.parse::<u64>().ok());
    let max_receive_count = map
        .get(&QueueAttributeName::RedrivePolicy)
        .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
        .and_then(|p| match &p["maxReceiveCount"] {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        })
        .and_then(|n| u32::try_from(n).ok());
    Attributes {
        waiting: number(QueueAttributeName::ApproximateNumberOfMessages).unwrap_or(0),
        in_flight: number(QueueAttributeName::ApproximateNumberOfMessagesNotVisible).unwrap_or(0),
        visibility_timeout: number(QueueAttributeName::VisibilityTimeout).and_then(|n| u32::try_from(n).ok()),
        max_receive_count,
    }
}

/// The region in a queue URL (`https://sqs.eu-west-1.amazonaws.com/…`), if it says.
pub fn region_of(url: &str) -> Option<&str> {
    let host = url.split("://").nth(1)?.split('/').next()?;
    let mut parts = host.split('.');
    match (parts.next(), parts.next()) {
        (Some("sqs"), Some(region)) if region.contains('-') => Some(region),
        _ => None,
    }
}

/// How long ago `sent_ms` was.
pub fn age(sent_ms: u64) -> Duration {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Duration::from_millis(now.saturating_sub(sent_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_from_queue_urls() {
        assert_eq!(
            region_of("https://sqs.eu-west-1.amazonaws.com/111122223333/trail"),
            Some("eu-west-1")
        );
        assert_eq!(region_of("http://127.0.0.1:5000/123456789012/q"), None);
        assert_eq!(region_of("https://queue.amazonaws.com/1/q"), None);
    }

    #[test]
    fn attributes_with_a_redrive_policy() {
        let map = HashMap::from([
            (QueueAttributeName::ApproximateNumberOfMessages, "12".to_string()),
            (
                QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                "3".to_string(),
            ),
            (QueueAttributeName::VisibilityTimeout, "60".to_string()),
            (
                QueueAttributeName::RedrivePolicy,
                r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:111122223333:dlq","maxReceiveCount":"5"}"#.to_string(),
            ),
        ]);
        assert_eq!(
            attributes_from(&map),
            Attributes {
                waiting: 12,
                in_flight: 3,
                visibility_timeout: Some(60),
                max_receive_count: Some(5)
            }
        );
        assert_eq!(attributes_from(&HashMap::new()), Attributes::default());
    }
}
