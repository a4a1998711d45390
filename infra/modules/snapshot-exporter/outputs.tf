output "export_bucket" {
  description = "The bucket exports go to."
  value       = aws_s3_bucket.export.id
}

output "failure_queue_url" {
  description = "The on-failure queue."
  value       = module.function.failure_queue_url
}
