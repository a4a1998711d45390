variable "name" {
  type        = string
  description = "The function's crate name (deploy-notifier, ...): its state prefix, metric dimension and name suffix."
}

variable "state_name" {
  type        = string
  description = "The crate name whose state prefix the function uses, when it is a second function of one crate (deploy-notifier-ci keeps deploy-notifier/; empty: name)."
  default     = ""
}

variable "reserved_concurrency" {
  type        = number
  description = "Reserved concurrent executions: at most this many at once, and always this many available (null: unreserved, the account's pool)."
  default     = null
}

variable "throttle_alarm" {
  type        = bool
  description = "Alarm when invocations are throttled (with reserved_concurrency: the function is flooded)."
  default     = false
}

variable "prefix" {
  type        = string
  description = "Prefix of every name."
}

variable "description" {
  type        = string
  description = "What the function does."
}

variable "artifact" {
  type        = string
  description = "Path of the function's bootstrap.zip."
}

variable "architecture" {
  type        = string
  description = "arm64 or x86_64."
}

variable "memory_size" {
  type        = number
  description = "Memory in MB."
  default     = 128
}

variable "timeout" {
  type        = number
  description = "Timeout in seconds."
}

variable "environment" {
  type        = map(string)
  description = "The function's own variables (the common ones are set here)."
}

variable "policy_json" {
  type        = string
  description = "The function's own IAM policy (the common statements are added here)."
  default     = null
}

variable "own_policy" {
  type        = bool
  description = "Whether policy_json is attached (false when the function needs only the common statements)."
  default     = true
}

variable "layers" {
  type        = list(string)
  description = "Layer ARNs (files the function reads under /opt)."
  default     = []
}

variable "state_bucket" {
  type = object({
    name = string
    arn  = string
  })
  description = "The state bucket."
}

variable "notify" {
  type = object({
    topic_arn          = string
    topic_kms_key_arn  = string
    email_from         = string
    email_to           = string
    ses_identity_arns  = list(string)
    webhook_secret_arn = string
    webhook_format     = string
  })
  description = "Notification channels (empty strings: channel off)."
}

variable "log_retention_days" {
  type        = number
  description = "Days logs are kept."
}

variable "log_level" {
  type        = string
  description = "Application log level (AWS_LAMBDA_LOG_LEVEL)."
}

variable "alarm_topic_arn" {
  type        = string
  description = "Topic the alarms notify."
}

variable "duration_alarm_ms" {
  type        = number
  description = "Alarm above this invocation duration."
}

variable "max_retry_attempts" {
  type        = number
  description = "Retries of a failed asynchronous invocation (0-2)."
}

variable "max_event_age_seconds" {
  type        = number
  description = "Oldest asynchronous event still worth processing (60-21600 s)."
}

variable "failed_event_retention_seconds" {
  type        = number
  description = "How long the on-failure queue keeps an event (60-1209600 s); its alarm stays red while one is kept."
  default     = 1209600

  validation {
    condition     = var.failed_event_retention_seconds >= 60 && var.failed_event_retention_seconds <= 1209600
    error_message = "failed_event_retention_seconds must be within 60-1209600 (SQS's limits)."
  }
}

variable "subnet_ids" {
  type        = list(string)
  description = "VPC subnets (empty: not in a VPC)."
  default     = []
}

variable "security_group_ids" {
  type        = list(string)
  description = "Security groups, with subnet_ids."
  default     = []
}
