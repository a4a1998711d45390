# One Watchkeeper function: its role and inline policy (what every function needs, plus the
# statements the function module passes in), log group, the function itself, asynchronous
# invocation settings with an on-failure queue, and its alarms.

data "aws_partition" "current" {}

locals {
  function_name = "${var.prefix}-${var.name}"
  # The prefix of its state objects: the crate's (two functions of one crate share it).
  state_name = var.state_name == "" ? var.name : var.state_name

  # The variables every function reads (shared config and notify). Empty values count as unset.
  common_environment = {
    STATE_BUCKET              = var.state_bucket.name
    NOTIFY_SNS_TOPIC_ARN      = var.notify.topic_arn
    NOTIFY_EMAIL_FROM         = var.notify.email_from
    NOTIFY_EMAIL_TO           = var.notify.email_to
    NOTIFY_WEBHOOK_SECRET_ARN = var.notify.webhook_secret_arn
    NOTIFY_WEBHOOK_FORMAT     = var.notify.webhook_format
  }
}

# --- Role -----------------------------------------------------------------------------------------

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "function" {
  name               = local.function_name
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

# What every function does: its own keys in the state bucket, its log group, the notification
# channels, and its on-failure queue.
data "aws_iam_policy_document" "common" {
  statement {
    sid       = "StateObjects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${var.state_bucket.arn}/${local.state_name}/*"]
  }

  # Listing lets a missing state document read as 404 (not there yet) instead of 403.
  statement {
    sid       = "StateListOwnPrefix"
    actions   = ["s3:ListBucket"]
    resources = [var.state_bucket.arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.state_name}/*"]
    }
  }

  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function.arn}:*"]
  }

  statement {
    sid       = "NotifyTopic"
    actions   = ["sns:Publish"]
    resources = [var.notify.topic_arn]
  }

  # The topic is encrypted with a customer-managed key: publishing needs it.
  statement {
    sid       = "NotifyTopicKey"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [var.notify.topic_kms_key_arn]

    # Only as SNS uses it for a publish (the key also encrypts the database exports). The topic
    # and its key share a region: the key ARN's.
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["sns.${split(":", var.notify.topic_kms_key_arn)[3]}.amazonaws.com"]
    }
  }

  dynamic "statement" {
    for_each = length(var.notify.ses_identity_arns) > 0 ? [1] : []

    content {
      sid       = "NotifyEmail"
      actions   = ["ses:SendEmail"]
      resources = var.notify.ses_identity_arns
    }
  }

  dynamic "statement" {
    for_each = var.notify.webhook_secret_arn == "" ? [] : [1]

    content {
      sid       = "NotifyWebhookUrl"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [var.notify.webhook_secret_arn]
    }
  }

  statement {
    sid       = "OnFailureQueue"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.failed.arn]
  }
}

resource "aws_iam_role_policy" "common" {
  name   = "watchkeeper-common"
  role   = aws_iam_role.function.id
  policy = data.aws_iam_policy_document.common.json
}

resource "aws_iam_role_policy" "function" {
  count = var.own_policy ? 1 : 0

  name   = var.name
  role   = aws_iam_role.function.id
  policy = var.policy_json
}

# Network interfaces in the VPC, for the functions placed there (AWS's managed policy for it).
resource "aws_iam_role_policy_attachment" "vpc" {
  count = length(var.subnet_ids) > 0 ? 1 : 0

  role       = aws_iam_role.function.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}

# --- Logs -----------------------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "function" {
  # checkov:skip=CKV_AWS_338:The example deployment keeps logs 7 days to stay inside a $25 budget; the functions log no secrets.
  # checkov:skip=CKV_AWS_158:The functions never log secrets (tested); a KMS key per log group costs more than the logs.
  name              = "/aws/lambda/${local.function_name}"
  retention_in_days = var.log_retention_days
}

# --- Function -------------------------------------------------------------------------------------

resource "aws_lambda_function" "function" {
  # checkov:skip=CKV_AWS_50:X-Ray adds a cost and a permission for traces of a few AWS calls; JSON logs carry the request id.
  # checkov:skip=CKV_AWS_115:Set where a public entry point needs a cap (deploy-notifier-ci's Function URL); elsewhere the event sources bound concurrency, and new accounts (10 concurrent executions) can reserve none.
  # checkov:skip=CKV_AWS_116:Asynchronous failures go to an on-failure destination (aws_lambda_function_event_invoke_config below), which keeps the error with the event.
  # checkov:skip=CKV_AWS_117:Placed in the VPC only where it must reach private addresses (secret-rotator, health-sweeper); the others call AWS APIs only.
  # checkov:skip=CKV_AWS_173:The environment holds names, ARNs and settings only; secrets stay in Secrets Manager.
  # checkov:skip=CKV_AWS_272:Artifacts are built and deployed by the same pipeline; code signing would need a signing profile the example deployment does not have.
  function_name    = local.function_name
  description      = var.description
  role             = aws_iam_role.function.arn
  filename         = var.artifact
  source_code_hash = filebase64sha256(var.artifact)
  handler          = "bootstrap"
  runtime          = "provided.al2023"
  architectures    = [var.architecture]
  memory_size      = var.memory_size
  timeout          = var.timeout
  layers           = var.layers

  reserved_concurrent_executions = var.reserved_concurrency

  environment {
    variables = merge(local.common_environment, var.environment)
  }

  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.function.name
    application_log_level = var.log_level
    system_log_level      = "WARN"
  }

  dynamic "vpc_config" {
    for_each = length(var.subnet_ids) > 0 ? [1] : []

    content {
      subnet_ids         = var.subnet_ids
      security_group_ids = var.security_group_ids
    }
  }

  # The role's own permissions exist before anything can invoke the function (a schedule firing
  # during the first apply must not meet AccessDenied).
  depends_on = [aws_iam_role_policy.common, aws_iam_role_policy.function, aws_iam_role_policy_attachment.vpc]
}

# --- Asynchronous invocations ---------------------------------------------------------------------

resource "aws_sqs_queue" "failed" {
  name                      = "${local.function_name}-failed"
  sqs_managed_sse_enabled   = true
  message_retention_seconds = var.failed_event_retention_seconds
}

resource "aws_lambda_function_event_invoke_config" "function" {
  function_name                = aws_lambda_function.function.function_name
  maximum_retry_attempts       = var.max_retry_attempts
  maximum_event_age_in_seconds = var.max_event_age_seconds

  destination_config {
    on_failure {
      destination = aws_sqs_queue.failed.arn
    }
  }
}

# --- Alarms ---------------------------------------------------------------------------------------

resource "aws_cloudwatch_metric_alarm" "errors" {
  alarm_name          = "${local.function_name}-errors"
  alarm_description   = "${local.function_name} returned errors (the error type says Retryable or Permanent; see its logs)."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.function.function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.alarm_topic_arn]
  ok_actions          = [var.alarm_topic_arn]
}

resource "aws_cloudwatch_metric_alarm" "duration" {
  alarm_name          = "${local.function_name}-duration"
  alarm_description   = "${local.function_name} took longer than ${var.duration_alarm_ms} ms."
  namespace           = "AWS/Lambda"
  metric_name         = "Duration"
  dimensions          = { FunctionName = aws_lambda_function.function.function_name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = var.duration_alarm_ms
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.alarm_topic_arn]
  ok_actions          = [var.alarm_topic_arn]
}

resource "aws_cloudwatch_metric_alarm" "failed_events" {
  alarm_name          = "${local.function_name}-failed-events"
  alarm_description   = "Events ${local.function_name} gave up on are waiting in ${aws_sqs_queue.failed.name}."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.failed.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.alarm_topic_arn]
  ok_actions          = [var.alarm_topic_arn]
}

resource "aws_cloudwatch_metric_alarm" "throttles" {
  count = var.throttle_alarm ? 1 : 0

  alarm_name          = "${local.function_name}-throttles"
  alarm_description   = "${local.function_name} was throttled more than 5 times in 5 minutes: more requests at once than its reserved concurrency (a flood on its URL; a burst of CI jobs retries its 429s and gets through)."
  namespace           = "AWS/Lambda"
  metric_name         = "Throttles"
  dimensions          = { FunctionName = aws_lambda_function.function.function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 5
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.alarm_topic_arn]
  ok_actions          = [var.alarm_topic_arn]
}
