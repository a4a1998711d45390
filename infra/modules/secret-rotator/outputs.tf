output "security_group_id" {
  description = "The rotator's security group: allow it in the databases' security groups."
  value       = aws_security_group.rotator.id
}

output "failure_queue_url" {
  description = "The on-failure queue."
  value       = module.function.failure_queue_url
}
