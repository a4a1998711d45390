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

variable "vpc_id" {
  type        = string
  description = "The backends' VPC."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets the function runs in."
}

variable "backend_cidr_blocks" {
  type        = list(string)
  description = "Where the backends are (security group egress on port)."
}

variable "project" {
  type        = string
  description = "SWEEP_PROJECT: EC2 tag Project=<this>; also the system's name in alerts."
}

variable "role" {
  type        = string
  description = "SWEEP_ROLE: EC2 tag Role=<this>."
}

variable "port" {
  type        = number
  description = "SWEEP_PORT."
}

variable "probe_ports" {
  type        = list(string)
  description = "Other ports probes go to (target groups' registered ports, static targets' ports), each a port (\"8081\") or a range (\"32768-65535\"): the security group allows them too."
  default     = []
}

variable "path" {
  type        = string
  description = "SWEEP_PATH."
}

variable "target_group_check" {
  type        = string
  description = "SWEEP_TARGET_GROUP_CHECK."
}

variable "host_header" {
  type        = string
  description = "SWEEP_HOST_HEADER."
}

variable "target_group_arns" {
  type        = list(string)
  description = "SWEEP_TARGET_GROUP_ARNS."
}

variable "static_targets" {
  type        = list(string)
  description = "SWEEP_STATIC_TARGETS."
}

variable "timeout_ms" {
  type        = number
  description = "SWEEP_TIMEOUT_MS: one probe."
}

variable "reminder_hours" {
  type        = number
  description = "SWEEP_REMINDER_HOURS (0: never)."
}

variable "maintenance" {
  type        = bool
  description = "SWEEP_MAINTENANCE."
}

variable "allowed_networks" {
  type        = list(string)
  description = "SWEEP_ALLOWED_NETWORKS: targets must lie inside these."
  default     = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"]
}

variable "stale_sweeps" {
  type        = number
  description = "SWEEP_STALE_SWEEPS."
  default     = 3
}
