# health-sweeper: every minute, discover the backends (EC2 tags, target groups, static list),
# probe them from inside the VPC, alert on degraded / down / recovered. A heartbeat alarm says
# when sweeps stop.

data "aws_caller_identity" "current" {}

locals {
  name = "health-sweeper"
  # A sweep of a few targets waits for at most two probe timeouts; a large fleet takes longer
  # (10,000 targets: about 8.5 s at 128 MB). News is a sweep using half of its 40 s budget, or
  # more than two timeouts and a second when the timeout is long.
  duration_alarm_ms = max(var.common.duration_alarm_ms, 2 * var.timeout_ms + 1000, 20000)
}

# --- Network --------------------------------------------------------------------------------------

resource "aws_security_group" "sweeper" {
  name_prefix = "${var.common.prefix}-${local.name}-"
  description = "health-sweeper: to the backends' health port and to AWS APIs over HTTPS"
  vpc_id      = var.vpc_id

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_egress_rule" "backends" {
  for_each = toset(var.backend_cidr_blocks)

  security_group_id = aws_security_group.sweeper.id
  description       = "Backends' health port"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = var.port
  to_port           = var.port
}

# The other ports probes go to: those target groups and static targets name (probe_ports, a port
# or a range such as ECS's dynamic host ports 32768-65535). A probe to a port not allowed here is
# dropped and times out: the sweeper would page its own wiring as an outage.
locals {
  probe_port_rules = {
    for pair in setproduct(var.backend_cidr_blocks, var.probe_ports) :
    "${pair[0]}:${pair[1]}" => {
      cidr = pair[0]
      from = tonumber(split("-", pair[1])[0])
      to   = tonumber(reverse(split("-", pair[1]))[0])
    }
  }
}

resource "aws_vpc_security_group_egress_rule" "probe_ports" {
  for_each = local.probe_port_rules

  security_group_id = aws_security_group.sweeper.id
  description       = "Backends' ports named by target groups or static targets"
  cidr_ipv4         = each.value.cidr
  ip_protocol       = "tcp"
  from_port         = each.value.from
  to_port           = each.value.to
}

resource "aws_vpc_security_group_egress_rule" "https" {
  security_group_id = aws_security_group.sweeper.id
  description       = "EC2, ELB, S3, SNS (through VPC endpoints or a NAT gateway)"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

# --- IAM ------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "function" {
  # Describe calls have no resource-level permissions.
  statement {
    sid       = "Discovery"
    actions   = ["ec2:DescribeInstances"]
    resources = ["*"]
  }

  dynamic "statement" {
    for_each = length(var.target_group_arns) > 0 ? [1] : []

    content {
      sid       = "TargetGroups"
      actions   = ["elasticloadbalancing:DescribeTargetHealth", "elasticloadbalancing:DescribeTargetGroups"]
      resources = ["*"]
    }
  }
}

# --- The function ---------------------------------------------------------------------------------

module "function" {
  source = "../lambda"

  name                  = local.name
  description           = "Every minute: discover backends, probe them, alert on degraded/down/recovered"
  prefix                = var.common.prefix
  artifact              = "${var.common.artifacts_dir}/${local.name}/bootstrap.zip"
  architecture          = var.common.architecture
  timeout               = 60
  state_bucket          = var.common.state_bucket
  notify                = var.common.notify
  log_retention_days    = var.common.log_retention_days
  log_level             = var.common.log_level
  alarm_topic_arn       = var.common.alarm_topic_arn
  duration_alarm_ms     = local.duration_alarm_ms
  max_retry_attempts    = 0
  max_event_age_seconds = 60
  # A failed sweep's event is worth nothing after the next minute's sweep (an undelivered alert
  # waits in the state document, not in the event): kept an hour, so one blip does not hold the
  # failed-events alarm red for two weeks. The errors alarm tells of failures that last.
  failed_event_retention_seconds = 3600
  policy_json                    = data.aws_iam_policy_document.function.json
  subnet_ids                     = var.subnet_ids
  security_group_ids             = [aws_security_group.sweeper.id]

  environment = {
    SWEEP_PROJECT             = var.project
    SWEEP_ROLE                = var.role
    SWEEP_TARGET_GROUP_ARNS   = join(",", var.target_group_arns)
    SWEEP_STATIC_TARGETS      = join(",", var.static_targets)
    SWEEP_PORT                = tostring(var.port)
    SWEEP_PATH                = var.path
    SWEEP_HOST_HEADER         = var.host_header
    SWEEP_TARGET_GROUP_CHECK  = var.target_group_check
    SWEEP_HEALTHY_CODES       = "200,302"
    SWEEP_TIMEOUT_MS          = tostring(var.timeout_ms)
    SWEEP_CONCURRENCY         = "" # empty: from the open-file limit (896 probes at once on Lambda)
    SWEEP_DEADLINE_MS         = "40000"
    SWEEP_HEALTHY_THRESHOLD   = "2"
    SWEEP_UNHEALTHY_THRESHOLD = "3"
    SWEEP_START_GRACE_SWEEPS  = "2" # failures of a new target in its first 2 sweeps leave it unknown
    SWEEP_QUORUM              = ""
    SWEEP_REMINDER_HOURS      = tostring(var.reminder_hours)
    SWEEP_MAINTENANCE         = tostring(var.maintenance)
    SWEEP_ALLOWED_NETWORKS    = join(",", var.allowed_networks)
    SWEEP_SYSTEM_NAME         = var.project
    SWEEP_STALE_SWEEPS        = tostring(var.stale_sweeps)
  }
}

# --- Schedule -------------------------------------------------------------------------------------

resource "aws_cloudwatch_event_rule" "schedule" {
  name                = "${var.common.prefix}-health-sweep"
  description         = "health-sweeper, every minute"
  schedule_expression = "rate(1 minute)"
}

resource "aws_cloudwatch_event_target" "schedule" {
  rule = aws_cloudwatch_event_rule.schedule.name
  arn  = module.function.function_arn

  # A sweep that could not start within a minute is replaced by the next one.
  retry_policy {
    maximum_event_age_in_seconds = 60
    maximum_retry_attempts       = 0
  }
}

resource "aws_lambda_permission" "schedule" {
  statement_id   = "EventBridgeSchedule"
  action         = "lambda:InvokeFunction"
  function_name  = module.function.function_name
  principal      = "events.amazonaws.com"
  source_arn     = aws_cloudwatch_event_rule.schedule.arn
  source_account = data.aws_caller_identity.current.account_id
}

# --- Heartbeat ------------------------------------------------------------------------------------

# Every completed sweep counts one `Sweeps` (EMF). No data for 5 minutes means sweeps stopped
# (schedule disabled, function failing at init, throttled): that is breaching, not "fine".
resource "aws_cloudwatch_metric_alarm" "heartbeat" {
  alarm_name          = "${var.common.prefix}-${local.name}-heartbeat"
  alarm_description   = "health-sweeper has not completed a sweep for 5 minutes: nobody is watching the backends."
  namespace           = "Watchkeeper"
  metric_name         = "Sweeps"
  dimensions          = { Function = local.name, FunctionName = module.function.function_name }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 5
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = [var.common.alarm_topic_arn]
  ok_actions          = [var.common.alarm_topic_arn]
}

# Most targets unknown for 15 minutes: probes cut short (a timeout too long for the sweep, a
# Lambda timeout too short) or targets that never settle. The sweeper then cannot tell up from
# down; it says so once itself ("Cannot judge"), and this alarm keeps it visible.
resource "aws_cloudwatch_metric_alarm" "unknown_targets" {
  alarm_name          = "${var.common.prefix}-${local.name}-unknown-targets"
  alarm_description   = "health-sweeper: most targets unknown for 15 minutes; it cannot judge the system's health."
  evaluation_periods  = 15
  datapoints_to_alarm = 13 # a missed minute or two does not reset it
  threshold           = 0.5
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.common.alarm_topic_arn]
  ok_actions          = [var.common.alarm_topic_arn]

  metric_query {
    id          = "share"
    expression  = "unknown / (unknown + healthy + unhealthy)"
    label       = "Share of targets unknown"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = { unknown = "UnknownTargets", healthy = "HealthyTargets", unhealthy = "UnhealthyTargets" }
    content {
      id = metric_query.key
      metric {
        namespace   = "Watchkeeper"
        metric_name = metric_query.value
        dimensions  = { Function = local.name, FunctionName = module.function.function_name }
        stat        = "Maximum"
        period      = 60
      }
    }
  }
}
