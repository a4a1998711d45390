# deploy-notifier: ECS deployment, service-action and stopped-task events from EventBridge, and the
# signed "apply finished" POST from CI on its Function URL.

data "aws_caller_identity" "current" {}

locals {
  name          = "deploy-notifier"
  hmac          = var.ci_auth == "hmac"
  create_secret = local.hmac && var.ci_signing_secret_arn == ""
  # The version's ARN (the secret's) when the key is generated: the CI function is created after
  # the key is written, through this reference alone (a module-level depends_on would defer the
  # module's data sources to apply at every upstream change: plan noise).
  signing_secret = local.create_secret ? aws_secretsmanager_secret_version.signing[0].arn : var.ci_signing_secret_arn

  # The events the function acts on, as it filters them itself: every deployment state change (an
  # IN_PROGRESS is remembered for the duration), WARN/ERROR service actions, and stopped tasks of
  # a service that crashed, failed to start or failed its health checks.
  rules = {
    deployments = {
      description = "ECS deployment state changes"
      pattern = {
        source        = ["aws.ecs"]
        "detail-type" = ["ECS Deployment State Change"]
      }
    }
    service-actions = {
      description = "ECS service actions of type WARN or ERROR"
      pattern = {
        source        = ["aws.ecs"]
        "detail-type" = ["ECS Service Action"]
        detail = {
          eventType = ["WARN", "ERROR"]
        }
      }
    }
    stopped-tasks = {
      description = "Stopped ECS service tasks whose essential container exited or that failed to start"
      pattern = {
        source        = ["aws.ecs"]
        "detail-type" = ["ECS Task State Change"]
        detail = {
          lastStatus = ["STOPPED"]
          group      = [{ prefix = "service:" }]
          stopCode   = ["EssentialContainerExited", "TaskFailedToStart"]
        }
      }
    }
    # A task the service scheduler replaced because it failed its load balancer's or its own
    # container health checks: a crash the stop code alone does not show (a scale-in or a
    # deployment stops tasks with the same code, and those are not matched).
    health-check-kills = {
      description = "ECS service tasks stopped for failing ELB or container health checks"
      pattern = {
        source        = ["aws.ecs"]
        "detail-type" = ["ECS Task State Change"]
        detail = {
          lastStatus    = ["STOPPED"]
          group         = [{ prefix = "service:" }]
          stopCode      = ["ServiceSchedulerInitiated"]
          stoppedReason = [{ wildcard = "*health checks*" }]
        }
      }
    }
  }
}

# --- The CI signing key ---------------------------------------------------------------------------

# Drawn by Secrets Manager at apply and written write-only: the key never enters the Terraform
# state or plan. A new key: raise ci_signing_key_version (CI reads the secret, so both sides
# follow; the function picks it up within CI_SIGNING_KEY_REFRESH_SECONDS).
ephemeral "aws_secretsmanager_random_password" "signing" {
  count = local.create_secret ? 1 : 0

  password_length     = 48
  exclude_punctuation = true
}

resource "aws_secretsmanager_secret" "signing" {
  # checkov:skip=CKV2_AWS_57:The key is shared with CI; it is rotated by hand on both sides (raise ci_signing_key_version, CI reads the secret).
  # checkov:skip=CKV_AWS_149:The AWS managed key is enough for a key only this function and the deployer read; a CMK costs $1 a month.
  count = local.create_secret ? 1 : 0

  name_prefix             = "${var.common.prefix}/watchkeeper/ci-signing-key-"
  description             = "HMAC key CI signs its deploy-notifier reports with."
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "signing" {
  count = local.create_secret ? 1 : 0

  secret_id                = aws_secretsmanager_secret.signing[0].id
  secret_string_wo         = ephemeral.aws_secretsmanager_random_password.signing[0].random_password
  secret_string_wo_version = var.ci_signing_key_version
}

data "aws_iam_policy_document" "function" {
  statement {
    sid       = "SigningKey"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [local.signing_secret]
  }
}

# --- The functions ---------------------------------------------------------------------------------
# One binary, two functions. The event function takes ECS events (EventBridge, SNS) and has no URL
# (CI_AUTH = off). The CI function serves the public Function URL with its own reserved
# concurrency, role and alarms: a flood of requests on the URL is throttled there (429s, counted
# and alarmed) and can neither starve ECS notifications nor eat the account's concurrency. Both
# keep their state under deploy-notifier/.

module "function" {
  source = "../lambda"

  name                  = local.name
  description           = "ECS deployment events become one notification each"
  prefix                = var.common.prefix
  artifact              = "${var.common.artifacts_dir}/${local.name}/bootstrap.zip"
  architecture          = var.common.architecture
  timeout               = 30
  state_bucket          = var.common.state_bucket
  notify                = var.common.notify
  log_retention_days    = var.common.log_retention_days
  log_level             = var.common.log_level
  alarm_topic_arn       = var.common.alarm_topic_arn
  duration_alarm_ms     = var.common.duration_alarm_ms
  max_retry_attempts    = 2
  max_event_age_seconds = 3600
  # The common statements are all it needs (no signing key).
  own_policy = false

  environment = {
    DEPLOY_ENVIRONMENT        = var.environment_label
    DEPLOY_NOTIFY_IN_PROGRESS = tostring(var.notify_in_progress)
    CI_AUTH                   = "off"
    ALARM_WARNING_NAMES       = join(",", var.alarm_warning_names)
    ALARM_FLAP_COUNT          = tostring(var.alarm_flap_count)
    ALARM_FLAP_MINUTES        = tostring(var.alarm_flap_minutes)
  }
}

module "ci_function" {
  source = "../lambda"

  name                  = "${local.name}-ci"
  state_name            = local.name
  description           = "CI's signed apply-finished reports on the Function URL become one notification each"
  prefix                = var.common.prefix
  artifact              = "${var.common.artifacts_dir}/${local.name}/bootstrap.zip"
  architecture          = var.common.architecture
  timeout               = 30
  state_bucket          = var.common.state_bucket
  notify                = var.common.notify
  log_retention_days    = var.common.log_retention_days
  log_level             = var.common.log_level
  alarm_topic_arn       = var.common.alarm_topic_arn
  duration_alarm_ms     = var.common.duration_alarm_ms
  max_retry_attempts    = 0
  max_event_age_seconds = 3600
  reserved_concurrency  = var.ci_reserved_concurrency
  throttle_alarm        = true
  own_policy            = local.hmac
  policy_json           = local.hmac ? data.aws_iam_policy_document.function.json : null

  environment = {
    DEPLOY_ENVIRONMENT             = var.environment_label
    CI_AUTH                        = var.ci_auth
    CI_SIGNING_SECRET_ARN          = local.hmac ? local.signing_secret : ""
    CI_MAX_BODY_BYTES              = tostring(var.ci_max_body_bytes)
    CI_SIGNATURE_WINDOW_SECONDS    = tostring(var.ci_signature_window_seconds)
    CI_SIGNING_KEY_REFRESH_SECONDS = tostring(var.ci_signing_key_refresh_seconds)
  }
}

# --- Function URL (CI) ----------------------------------------------------------------------------

resource "aws_lambda_function_url" "ci" {
  # checkov:skip=CKV_AWS_258:With ci_auth = hmac every request is authenticated by the function (HMAC-SHA256 over timestamp and body, 5-minute window, replays refused); ci_auth = iam selects AWS_IAM.
  function_name      = module.ci_function.function_name
  authorization_type = local.hmac ? "NONE" : "AWS_IAM"
}

# With AWS_IAM, the callers named (CI's deploy role) may use the URL.
resource "aws_lambda_permission" "ci_url" {
  for_each = local.hmac ? toset([]) : toset(var.ci_invoker_arns)

  statement_id           = "CiUrl${substr(sha256(each.value), 0, 12)}"
  action                 = "lambda:InvokeFunctionUrl"
  function_name          = module.ci_function.function_name
  principal              = each.value
  function_url_auth_type = "AWS_IAM"
}

# With NONE, anyone may call the URL (the function checks the HMAC signature): the first of the
# two statements AWS requires of a public URL, declared rather than left to the provider's side
# effect (which it creates outside the state, in some provider versions only). The second, and
# IAM mode's invoke permission, are in function_url_v6.tf.
resource "aws_lambda_permission" "url_public" {
  # checkov:skip=CKV_AWS_301:The public Function URL is the CI endpoint; every request is authenticated by the function (HMAC).
  count = local.hmac ? 1 : 0

  statement_id           = "FunctionUrlPublic"
  action                 = "lambda:InvokeFunctionUrl"
  function_name          = module.ci_function.function_name
  principal              = "*"
  function_url_auth_type = "NONE"
}

# --- EventBridge rules ----------------------------------------------------------------------------

# The ECS rules and the enabled alert rules (below): one rule, target and permission each.
resource "aws_cloudwatch_event_rule" "events" {
  for_each = merge(local.rules, local.deployed_alert_rules)

  name          = "${var.common.prefix}-${local.name}-${each.key}"
  description   = each.value.description
  event_pattern = jsonencode(each.value.pattern)
}

resource "aws_cloudwatch_event_target" "events" {
  for_each = merge(local.rules, local.deployed_alert_rules)

  rule = aws_cloudwatch_event_rule.events[each.key].name
  arn  = module.function.function_arn

  retry_policy {
    maximum_event_age_in_seconds = 3600
    maximum_retry_attempts       = 8
  }
}

resource "aws_lambda_permission" "events" {
  for_each = merge(local.rules, local.deployed_alert_rules)

  statement_id   = "EventBridge-${each.key}"
  action         = "lambda:InvokeFunction"
  function_name  = module.function.function_name
  principal      = "events.amazonaws.com"
  source_arn     = aws_cloudwatch_event_rule.events[each.key].arn
  source_account = data.aws_caller_identity.current.account_id
}

# The ECS rules were named "ecs" before the alert rules joined them.
moved {
  from = aws_cloudwatch_event_rule.ecs
  to   = aws_cloudwatch_event_rule.events
}

moved {
  from = aws_cloudwatch_event_target.ecs
  to   = aws_cloudwatch_event_target.events
}

moved {
  from = aws_lambda_permission.ecs
  to   = aws_lambda_permission.events
}

# --- The alerts AWS already sends ----------------------------------------------------------------
# AWS Health events, GuardDuty findings, and (with alarm_events) every CloudWatch alarm of the
# account, through EventBridge; alarms on existing topics, through a subscription. An alarm that
# comes both ways is told once (one key: its ARN, state and change time). The suite's own alarms are not among them:
# they go to the alert topic directly, so that a broken notifier cannot silence the alarm that
# says so.

locals {
  # Every alert rule the module knows; the enabled ones are deployed.
  alert_rules = {
    health = {
      description = "AWS Health events: issues, scheduled changes (RDS maintenance), account notifications"
      pattern     = { source = ["aws.health"] }
    }
    guardduty = {
      description = "GuardDuty findings of at least the configured severity"
      pattern = {
        source        = ["aws.guardduty"]
        "detail-type" = ["GuardDuty Finding"]
        detail        = { severity = [{ numeric = [">=", local.guardduty_min_severity] }] }
      }
    }
    alarms = {
      description = "CloudWatch alarm state changes of every alarm but the suite's own (which go to the alert topic directly)"
      pattern = {
        source        = ["aws.cloudwatch"]
        "detail-type" = ["CloudWatch Alarm State Change"]
        detail        = { alarmName = [{ "anything-but" = local.suite_alarm_names }] }
      }
    }
  }
  enabled_alerts = compact([
    var.health_events ? "health" : "",
    var.guardduty_min_severity == null ? "" : "guardduty",
    var.alarm_events ? "alarms" : "",
  ])
  deployed_alert_rules   = { for key, rule in local.alert_rules : key => rule if contains(local.enabled_alerts, key) }
  guardduty_min_severity = coalesce(var.guardduty_min_severity, 4)
  # The suite's own alarms, by name: they go to the alert topic directly. Only these are left
  # out: the operator's alarms share the project prefix (des-api-5xx beside des-deploy-notifier-errors).
  suite_functions      = ["deploy-notifier", "deploy-notifier-ci", "secret-rotator", "snapshot-exporter", "budget-alerter", "health-sweeper"]
  suite_alarm_suffixes = ["errors", "duration", "failed-events", "throttles"]
  suite_alarm_specials = ["deploy-notifier-ci-failed", "health-sweeper-heartbeat", "health-sweeper-unknown-targets"]
  suite_alarm_names = concat(
    flatten([for f in local.suite_functions : [for s in local.suite_alarm_suffixes : "${var.common.prefix}-${f}-${s}"]]),
    [for n in local.suite_alarm_specials : "${var.common.prefix}-${n}"],
  )
  suite_topics = [var.common.alarm_topic_arn, var.common.notify.topic_arn]
}

resource "aws_sns_topic_subscription" "alarms" {
  for_each = toset(var.alarm_topic_arns)

  topic_arn = each.value
  protocol  = "lambda"
  endpoint  = module.function.function_arn

  lifecycle {
    # The function publishes to the suite's topic: subscribed to it, it would read its own
    # notifications (it ignores them, but the suite's alarms must not depend on it).
    precondition {
      condition     = !contains(local.suite_topics, each.value)
      error_message = "alarm_topic_arns: ${each.value} is the suite's own alert topic; name the topics your own alarms publish to."
    }
  }
}

resource "aws_lambda_permission" "alarms" {
  for_each = toset(var.alarm_topic_arns)

  statement_id  = "AlarmTopic-${substr(sha256(each.value), 0, 16)}"
  action        = "lambda:InvokeFunction"
  function_name = module.function.function_name
  principal     = "sns.amazonaws.com"
  source_arn    = each.value
  # For SNS the source account is the topic's owner, which may be another account's topic.
  source_account = split(":", each.value)[4]
}

# Every 5 minutes: each flapping alarm whose fold window is over is told the state it settled
# in (the flapping message said to treat it as in ALARM until then). Always deployed: alarms may
# reach the function on any topic it is subscribed to. When nothing is folded, the check is one
# S3 read.
resource "aws_cloudwatch_event_rule" "settle_folds" {
  name                = "${var.common.prefix}-${local.name}-settle-folds"
  description         = "deploy-notifier: the state each flapping alarm settled in, after its window"
  schedule_expression = "rate(5 minutes)"
}

resource "aws_cloudwatch_event_target" "settle_folds" {
  rule = aws_cloudwatch_event_rule.settle_folds.name
  arn  = module.function.function_arn

  # A check that could not run is replaced by the next one.
  retry_policy {
    maximum_event_age_in_seconds = 300
    maximum_retry_attempts       = 0
  }
}

resource "aws_lambda_permission" "settle_folds" {
  statement_id   = "EventBridge-settle-folds"
  action         = "lambda:InvokeFunction"
  function_name  = module.function.function_name
  principal      = "events.amazonaws.com"
  source_arn     = aws_cloudwatch_event_rule.settle_folds.arn
  source_account = data.aws_caller_identity.current.account_id
}

# --- ECS events already sent to an SNS topic (the example deployment's EventBridge -> SNS) ----------------------

resource "aws_sns_topic_subscription" "ecs_events" {
  count = var.ecs_events_topic_arn == "" ? 0 : 1

  topic_arn = var.ecs_events_topic_arn
  protocol  = "lambda"
  endpoint  = module.function.function_arn
}

resource "aws_lambda_permission" "ecs_events" {
  count = var.ecs_events_topic_arn == "" ? 0 : 1

  statement_id   = "EcsEventsTopic"
  action         = "lambda:InvokeFunction"
  function_name  = module.function.function_name
  principal      = "sns.amazonaws.com"
  source_arn     = var.ecs_events_topic_arn
  source_account = data.aws_caller_identity.current.account_id
}

# --- A CI report that could not be delivered -----------------------------------------------------
# The Function URL answers 503 and the invocation succeeds (an HTTP answer is the contract), so
# neither Errors nor the dead-letter queue would show it: the function counts it as CiFailed. A
# failed `terraform apply`'s report is exactly the one that must not vanish.

resource "aws_cloudwatch_metric_alarm" "ci_failed" {
  alarm_name          = "${var.common.prefix}-deploy-notifier-ci-failed"
  alarm_description   = "deploy-notifier could not deliver a CI report (answered 503): check its logs; the sender's retries may not have got through."
  namespace           = "Watchkeeper"
  metric_name         = "CiFailed"
  dimensions          = { Function = "deploy-notifier" }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.common.alarm_topic_arn]
  ok_actions          = [var.common.alarm_topic_arn]
}
