output "failure_queue_url" {
  description = "The on-failure queue."
  value       = module.function.failure_queue_url
}
