output "security_group_id" {
  description = "The sweeper's security group: allow it in the backends' security groups on the probed port."
  value       = aws_security_group.sweeper.id
}

output "failure_queue_url" {
  description = "The on-failure queue."
  value       = module.function.failure_queue_url
}
