//! An SNS topic: subject, text body with links, and message attributes (`severity`, `source`,
//! `resource`, plus any the notification adds) for subscription filter policies.

use aws_sdk_sns::types::MessageAttributeValue;

use super::{ChannelError, Notification};
use crate::error::AwsError;

#[derive(Debug, Clone)]
pub struct SnsChannel {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SnsChannel {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: String) -> Self {
        Self { client, topic_arn }
    }

    pub async fn send(&self, n: &Notification) -> Result<(), ChannelError> {
        let mut attributes = n.attributes.clone();
        attributes.insert("severity".into(), n.severity.as_str().into());
        attributes.insert("source".into(), n.source.clone());
        if let Some(resource) = &n.resource {
            attributes.insert("resource".into(), resource.clone());
        }
        let mut request = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(n.subject_line())
            .message(n.text_with_links());
        for (name, value) in attributes {
            if value.is_empty() {
                continue; // SNS rejects empty attribute values.
            }
            let attribute = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| ChannelError::permanent("sns", e.to_string()))?;
            request = request.message_attributes(name, attribute);
        }
        request
            .send()
            .await
            .map(|_| ())
            .map_err(|e| ChannelError::from_aws("sns", AwsError::from_sdk("sns:Publish", &e)))
    }
}
