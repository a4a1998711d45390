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

variable "environment_label" {
  type        = string
  description = "DEPLOY_ENVIRONMENT: label in subjects (empty: none)."
}

variable "notify_in_progress" {
  type        = bool
  description = "DEPLOY_NOTIFY_IN_PROGRESS: also notify when a deployment starts."
}

variable "ci_auth" {
  type        = string
  description = "CI_AUTH: hmac (Function URL auth NONE, signed requests) or iam (AWS_IAM)."
}

variable "ci_signing_secret_arn" {
  type        = string
  description = "An existing signing key secret (empty: one is created)."
}

variable "ci_signing_key_version" {
  type        = number
  description = "Version of the generated signing key: raise it to draw a new key."
}

variable "ci_invoker_arns" {
  type        = list(string)
  description = "With iam: principals allowed to call the Function URL."
}

variable "ci_max_body_bytes" {
  type        = number
  description = "CI_MAX_BODY_BYTES: largest accepted CI body."
  default     = 65536
}

variable "ci_signature_window_seconds" {
  type        = number
  description = "CI_SIGNATURE_WINDOW_SECONDS: accepted clock difference of a signature's timestamp."
  default     = 300
}

variable "ci_signing_key_refresh_seconds" {
  type        = number
  description = "CI_SIGNING_KEY_REFRESH_SECONDS: a rotated signing key is picked up without a redeploy; an unknown signature makes the function read the secret again, at most this often."
  default     = 60
}

variable "ecs_events_topic_arn" {
  type        = string
  description = "An existing SNS topic EventBridge already sends ECS events to; the function subscribes to it (empty: none)."
  default     = ""
}

variable "alarm_topic_arns" {
  type        = list(string)
  description = "Existing SNS topics CloudWatch alarm actions publish to; the event function subscribes to each and tells every alarm on them as what it is. Never the suite's own alert topic."
  default     = []
}

variable "alarm_events" {
  type        = bool
  description = "Route the state changes of every CloudWatch alarm of the account but the suite's own (<prefix>-<function>-errors and the like) to the event function through EventBridge."
  default     = false
}

variable "health_events" {
  type        = bool
  description = "Route AWS Health events (issues, scheduled changes such as RDS maintenance, account notifications) to the event function."
  default     = true
}

variable "guardduty_min_severity" {
  type        = number
  description = "GuardDuty findings of at least this severity (1-10; 4 is medium) reach the event function; null routes none."
  default     = 4
}

variable "alarm_warning_names" {
  type        = list(string)
  description = "ALARM_WARNING_NAMES: alarm-name patterns (* for any run of characters) whose ALARM is a warning; every other ALARM is critical."
  default     = []
}

variable "alarm_flap_count" {
  type        = number
  description = "ALARM_FLAP_COUNT: an alarm that enters ALARM this many times within alarm_flap_minutes flaps, and its changes are folded into one message per window."
  default     = 3
}

variable "alarm_flap_minutes" {
  type        = number
  description = "ALARM_FLAP_MINUTES: the flapping window, in minutes."
  default     = 30
}

variable "ci_reserved_concurrency" {
  type        = number
  description = "Reserved concurrency of the CI function (its Function URL): CI reports at once; more are answered 429 and retried by the sender. null in an account whose Lambda concurrency quota is still 10 (none reservable there)."
  default     = 3
}
