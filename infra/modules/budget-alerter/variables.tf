variable "common" {
  type = object({
    prefix             = string
    region             = string
    artifacts_dir      = string
    architecture       = string
    log_retention_days = number
    log_level          = string
    duration_alarm_ms  = number
    alarm_topic_arn    = string
    kms_key_arn        = string
    state_bucket       = object({ name = string, arn = string })
    notify = object({
      topic_arn          = string
      topic_kms_key_arn  = string
      email_from         = string
      email_to           = string
      ses_identity_arns  = list(string)
      webhook_secret_arn = string
      webhook_format     = string
    })
  })
  description = "What every function module gets from the root."
}

variable "budgets_topic_arn" {
  type        = string
  description = "The topic AWS Budgets notifies."
}

variable "monthly_budget_usd" {
  type        = number
  description = "The monthly cost budget."
}

variable "service_budgets" {
  type = map(object({
    service   = string
    limit_usd = number
  }))
  description = "Per-service monthly budgets."
}

variable "cost_explorer" {
  type        = bool
  description = "BUDGET_COST_EXPLORER: top services from Cost Explorer."
}

variable "schedule" {
  type        = string
  description = "When the daily check runs (UTC)."
  default     = "cron(0 7 * * ? *)"
}
