output "topic_arn" {
  description = "The alert topic."
  value       = aws_sns_topic.alerts.arn
}

output "budgets_topic_arn" {
  description = "The topic AWS Budgets notifies."
  value       = aws_sns_topic.budgets.arn
}

output "kms_key_arn" {
  description = "The suite's KMS key (both topics, snapshot exports): publishers need kms:GenerateDataKey and kms:Decrypt on it."
  value       = aws_kms_key.suite.arn
}

output "ses_identity_arns" {
  description = "The SES identities ses:SendEmail is checked against: the sender and, in the sandbox, the recipient (empty without email_from)."
  value       = concat(aws_sesv2_email_identity.sender[*].arn, aws_sesv2_email_identity.recipient[*].arn)
}
