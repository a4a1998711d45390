output "bucket" {
  description = "The state bucket's name (STATE_BUCKET)."
  value       = aws_s3_bucket.state.id
}

output "arn" {
  description = "The state bucket's ARN."
  value       = aws_s3_bucket.state.arn
}
