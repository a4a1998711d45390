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

variable "export_sources" {
  type        = list(string)
  description = "EXPORT_SOURCES: instance or cluster identifiers."
}

variable "export_source_tag" {
  type        = string
  description = "EXPORT_SOURCE_TAG: key=value on the instances or clusters."
}

variable "export_tables" {
  type        = list(string)
  description = "EXPORT_TABLES: what to export (empty: everything)."
}

variable "export_prefix" {
  type        = string
  description = "EXPORT_PREFIX: put before <source>/<yyyy>/<mm>/<dd>/ (empty, or ending in /)."
  default     = ""
}

variable "max_active" {
  type        = number
  description = "EXPORT_MAX_ACTIVE: exports allowed to run at once in the account (RDS allows 5)."
  default     = 5
}

variable "backup_window_days" {
  type        = number
  description = "EXPORT_BACKUP_WINDOW_DAYS: alert when a source has no snapshot newer than this."
  default     = 8
}

variable "hung_hours" {
  type        = number
  description = "EXPORT_HUNG_HOURS: an export still running after this is reported as hung."
  default     = 24

  validation {
    condition     = var.hung_hours >= 1 && var.hung_hours <= 8760 && floor(var.hung_hours) == var.hung_hours
    error_message = "hung_hours must be a whole number of hours from 1 to 8760 (the function refuses more at init)."
  }
}

variable "glacier_days" {
  type        = number
  description = "Days before exports (objects over 128 KB) move to Glacier Instant Retrieval."
}

variable "expiry_days" {
  type        = number
  description = "Days before exports are deleted."
}

variable "schedule" {
  type        = string
  description = "When the weekly scan runs."
  default     = "cron(0 3 ? * SUN *)"
}

variable "force_destroy" {
  type        = bool
  description = "Let terraform destroy empty the export bucket first."
  default     = false
}

variable "export_automated_snapshots" {
  type        = string
  description = "weekly: the weekly run exports each source's newest automated snapshot (about 4 exports a month per source); every: each automated snapshot is exported when it is taken (about 30 a month). Manual snapshots are exported when taken either way."
  default     = "weekly"

  validation {
    condition     = contains(["weekly", "every"], var.export_automated_snapshots)
    error_message = "export_automated_snapshots must be weekly or every."
  }
}
