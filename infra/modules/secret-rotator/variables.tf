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

variable "rotated_secret_arns" {
  type        = list(string)
  description = "Secrets rotated every rotation_days."
}

variable "master_secret_arns" {
  type        = list(string)
  description = "Master secrets (alternating users), read only."
}

variable "master_secret_hosts" {
  type        = map(string)
  description = "ROTATION_MASTER_HOSTS: master secret without a host (as masterarn names it) => the \"host:port\" where it may be used."
  default     = {}
}

variable "secrets_kms_key_arns" {
  type        = list(string)
  description = "Customer-managed keys of those secrets."
}

variable "rotation_days" {
  type        = number
  description = "Days between rotations."
}

variable "vpc_id" {
  type        = string
  description = "The databases' VPC."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets the function runs in."
}

variable "database_cidr_blocks" {
  type        = list(string)
  description = "Where the databases are."
}

variable "database_ports" {
  type        = list(number)
  description = "Database ports."
}

variable "db_tls" {
  type        = string
  description = "DB_TLS: verify-full or disable."
}

variable "rds_ca_layer_zip" {
  type        = string
  description = "Local path of the RDS CA layer zip, holding rds-ca/global-bundle.pem (empty: none, only with db_tls = disable)."
}

variable "password_length" {
  type        = number
  description = "ROTATION_PASSWORD_LENGTH."
  default     = 32
}

variable "exclude_characters" {
  type        = string
  description = "ROTATION_EXCLUDE_CHARACTERS: characters generated passwords never contain."
  default     = ":/@\"'\\"
}
