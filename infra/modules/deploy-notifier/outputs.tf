output "function_url" {
  description = "The Function URL CI POSTs to."
  value       = aws_lambda_function_url.ci.function_url
}

output "signing_secret_arn" {
  description = "The secret holding the CI signing key (empty with ci_auth = iam)."
  value       = local.hmac ? local.signing_secret : ""
}

output "failure_queue_url" {
  description = "The on-failure queue."
  value       = module.function.failure_queue_url
}
