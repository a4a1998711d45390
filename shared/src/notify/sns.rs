//! An SNS topic: subject, text body with links, and message attributes (`severity`, `source`,
//! `resource`, plus any the notification adds) for subscription filter policies. Published with
//! one text per protocol: the full text for email, queues and HTTP (`default`), a short one for
//! SMS (`sms`): a 1,500-character page is ten billed SMS parts, and past 1,600 SNS refuses it.

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
            .message_structure("json")
            .message(structured_message(n));
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

/// The message for `MessageStructure=json`: the full text by default, the short one for SMS.
pub fn structured_message(n: &Notification) -> String {
    serde_json::json!({"default": n.text_with_links(), "sms": n.sms_text()}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::{MAX_SMS_CHARS, Severity};

    #[test]
    fn sms_subscribers_get_the_verdict_and_where_to_look_others_the_whole_text() {
        let long_text = "line of detail\n".repeat(120);
        let n = Notification::new(
            "health-sweeper",
            Severity::Critical,
            "[backends] System down: 0 of 3 backends up",
            long_text.clone(),
        )
        .with_link(
            "Instances",
            "https://us-east-1.console.aws.amazon.com/ec2/home",
        );
        let message: serde_json::Value = serde_json::from_str(&structured_message(&n)).unwrap();
        assert_eq!(
            message["default"].as_str(),
            Some(n.text_with_links().as_str())
        );
        assert_eq!(
            message["sms"],
            "[backends] System down: 0 of 3 backends up https://us-east-1.console.aws.amazon.com/ec2/home"
        );
        // Whatever the subject (non-ASCII, very long) and the link, one SMS part.
        let wordy = Notification::new(
            "budget-alerter",
            Severity::Critical,
            "Presupuesto des-mensual: 100 % alcanzado — €25,00 de €25,00 ".repeat(5),
            "x",
        )
        .with_link(
            "Budgets",
            format!("https://console.aws.amazon.com/billing/{}", "x".repeat(200)),
        );
        let sms = wordy.sms_text();
        assert!(sms.len() <= MAX_SMS_CHARS, "{sms}");
        assert!(
            sms.chars().all(|c| c.is_ascii_graphic() || c == ' '),
            "{sms}"
        );
        assert!(
            sms.starts_with("Presupuesto des-mensual: 100 % alcanzado"),
            "{sms}"
        );
    }
}
