output "function_name" {
  description = "The Lambda function's name."
  value       = aws_lambda_function.function.function_name
}

output "function_arn" {
  description = "The Lambda function's ARN."
  value       = aws_lambda_function.function.arn
}

output "role_arn" {
  description = "The function's execution role."
  value       = aws_iam_role.function.arn
}

output "failure_queue_url" {
  description = "Where asynchronous events the function gave up on wait."
  value       = aws_sqs_queue.failed.url
}
