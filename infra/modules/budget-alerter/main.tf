# budget-alerter: the account's monthly budget and per-service budgets (the example deployment), whose
# notifications reach the function through the budgets topic, and a daily check of every budget.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  name        = "budget-alerter"
  account_id  = data.aws_caller_identity.current.account_id
  monthly     = "${var.common.prefix}-monthly"
  thresholds  = [50, 80, 100]
  budget_arns = "arn:${data.aws_partition.current.partition}:budgets::${local.account_id}:budget/*"
}

# --- Budgets --------------------------------------------------------------------------------------

resource "aws_budgets_budget" "monthly" {
  name         = local.monthly
  budget_type  = "COST"
  limit_amount = tostring(var.monthly_budget_usd)
  limit_unit   = "USD"
  time_unit    = "MONTHLY"

  # 50 % warning, 80 % and 100 % critical (the function adds SMS at 100 %).
  dynamic "notification" {
    for_each = toset(local.thresholds)

    content {
      comparison_operator       = "GREATER_THAN"
      threshold                 = notification.value
      threshold_type            = "PERCENTAGE"
      notification_type         = "ACTUAL"
      subscriber_sns_topic_arns = [var.budgets_topic_arn]
    }
  }

  # The early warning: the month is forecast to end over budget.
  notification {
    comparison_operator       = "GREATER_THAN"
    threshold                 = 100
    threshold_type            = "PERCENTAGE"
    notification_type         = "FORECASTED"
    subscriber_sns_topic_arns = [var.budgets_topic_arn]
  }
}

resource "aws_budgets_budget" "service" {
  for_each = var.service_budgets

  name         = "${var.common.prefix}-${each.key}"
  budget_type  = "COST"
  limit_amount = tostring(each.value.limit_usd)
  limit_unit   = "USD"
  time_unit    = "MONTHLY"

  cost_filter {
    name   = "Service"
    values = [each.value.service]
  }

  dynamic "notification" {
    for_each = toset(local.thresholds)

    content {
      comparison_operator       = "GREATER_THAN"
      threshold                 = notification.value
      threshold_type            = "PERCENTAGE"
      notification_type         = "ACTUAL"
      subscriber_sns_topic_arns = [var.budgets_topic_arn]
    }
  }
}

# --- IAM ------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "function" {
  # DescribeBudgets and DescribeBudgetPerformanceHistory (the close-out of a period) are
  # authorized as budgets:ViewBudget on the account's budgets.
  statement {
    sid       = "ReadBudgets"
    actions   = ["budgets:ViewBudget"]
    resources = [local.budget_arns]
  }

  # Cost Explorer has no resource-level permissions.
  dynamic "statement" {
    for_each = var.cost_explorer ? [1] : []

    content {
      sid       = "TopServices"
      actions   = ["ce:GetCostAndUsage"]
      resources = ["*"]
    }
  }
}

# --- The function ---------------------------------------------------------------------------------

module "function" {
  source = "../lambda"

  name                  = local.name
  description           = "Budget thresholds and forecasts alerted once per period, with where the money goes"
  prefix                = var.common.prefix
  artifact              = "${var.common.artifacts_dir}/${local.name}/bootstrap.zip"
  architecture          = var.common.architecture
  timeout               = 60
  state_bucket          = var.common.state_bucket
  notify                = var.common.notify
  log_retention_days    = var.common.log_retention_days
  log_level             = var.common.log_level
  alarm_topic_arn       = var.common.alarm_topic_arn
  duration_alarm_ms     = var.common.duration_alarm_ms
  max_retry_attempts    = 2
  max_event_age_seconds = 21600
  policy_json           = data.aws_iam_policy_document.function.json

  environment = {
    BUDGET_NAMES            = join(",", concat([aws_budgets_budget.monthly.name], [for b in aws_budgets_budget.service : b.name]))
    BUDGET_ACCOUNT_ID       = local.account_id
    BUDGET_THRESHOLDS       = join(",", local.thresholds)
    BUDGET_CRITICAL_PERCENT = "80"
    BUDGET_SMS_PERCENT      = "100"
    BUDGET_FORECAST_PERCENT = "100"
    BUDGET_TOP_SERVICES     = "5"
    BUDGET_COST_EXPLORER    = tostring(var.cost_explorer)
  }
}

# --- Triggers -------------------------------------------------------------------------------------

resource "aws_sns_topic_subscription" "budgets" {
  topic_arn = var.budgets_topic_arn
  protocol  = "lambda"
  endpoint  = module.function.function_arn
}

resource "aws_lambda_permission" "budgets" {
  statement_id   = "BudgetsTopic"
  action         = "lambda:InvokeFunction"
  function_name  = module.function.function_name
  principal      = "sns.amazonaws.com"
  source_arn     = var.budgets_topic_arn
  source_account = local.account_id
}

resource "aws_cloudwatch_event_rule" "daily" {
  name                = "${var.common.prefix}-${local.name}-daily"
  description         = "budget-alerter daily check of every budget"
  schedule_expression = var.schedule
}

resource "aws_cloudwatch_event_target" "daily" {
  rule = aws_cloudwatch_event_rule.daily.name
  arn  = module.function.function_arn
}

resource "aws_lambda_permission" "daily" {
  statement_id   = "EventBridgeDaily"
  action         = "lambda:InvokeFunction"
  function_name  = module.function.function_name
  principal      = "events.amazonaws.com"
  source_arn     = aws_cloudwatch_event_rule.daily.arn
  source_account = local.account_id
}
