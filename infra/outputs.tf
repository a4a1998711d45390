output "alert_topic_arn" {
  description = "The SNS topic every function and alarm notifies."
  value       = module.alerts.topic_arn
}

output "test_alert_command" {
  description = "Sends a test message through the alert topic (add --message-attributes '{\"sms\":{\"DataType\":\"String\",\"StringValue\":\"true\"}}' to page by SMS too)."
  value       = "aws sns publish --region ${var.region} --topic-arn ${module.alerts.topic_arn} --subject 'Watchkeeper test' --message 'Test message through the Watchkeeper alert topic.'"
}

output "deploy_notifier_url" {
  description = "The Function URL CI POSTs its signed \"apply finished\" report to."
  value       = module.deploy_notifier.function_url
}

output "ci_signing_secret_arn" {
  description = "The Secrets Manager secret holding the CI signing key (ci_auth = hmac)."
  value       = module.deploy_notifier.signing_secret_arn
}

output "state_bucket" {
  description = "The S3 bucket of claims and state documents."
  value       = module.state_bucket.bucket
}

output "export_bucket" {
  description = "Where RDS snapshots are exported."
  value       = module.snapshot_exporter.export_bucket
}

output "secret_rotator_security_group_id" {
  description = "Allow this security group in the databases' security groups, on their ports."
  value       = module.secret_rotator.security_group_id
}

output "health_sweeper_security_group_id" {
  description = "Allow this security group in the backends' security groups, on sweep_port."
  value       = module.health_sweeper.security_group_id
}

output "failure_queues" {
  description = "Per function, the SQS queue of asynchronous events it gave up on."
  value = {
    deploy-notifier   = module.deploy_notifier.failure_queue_url
    secret-rotator    = module.secret_rotator.failure_queue_url
    snapshot-exporter = module.snapshot_exporter.failure_queue_url
    budget-alerter    = module.budget_alerter.failure_queue_url
    health-sweeper    = module.health_sweeper.failure_queue_url
  }
}
