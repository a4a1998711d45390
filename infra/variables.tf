# --- The example deployment's variables -------------------------------------------------------------------------

variable "region" {
  type        = string
  description = "AWS region to deploy into (the region of the backends, the database and the budgets' account)."
  default     = "us-east-1"
}

variable "project_prefix" {
  type        = string
  description = "Short prefix of every resource name, as in the example deployment (for example \"des\")."

  validation {
    # At most 16: S3 takes bucket_prefix values of at most 37 characters, and the longest is
    # "<prefix>-watchkeeper-exports-" (21 more).
    condition     = can(regex("^[a-z][a-z0-9-]{1,15}$", var.project_prefix))
    error_message = "project_prefix must be 2 to 16 lower-case letters, digits or hyphens, starting with a letter (the export bucket's name prefix is at most 37 characters)."
  }
}

variable "manager_email" {
  type        = string
  description = "Who is told: subscribed by email to the alert topic (confirm the subscription) and, with email_from, the SES recipient."

  validation {
    condition     = can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.manager_email))
    error_message = "manager_email must be an email address."
  }
}

# --- Artifacts ------------------------------------------------------------------------------------

variable "artifacts_dir" {
  type        = string
  description = "Folder holding <function>/bootstrap.zip as `cargo lambda build --release --arm64 --output-format zip` writes it (relative to infra/)."
  default     = "../target/lambda"
}

variable "architecture" {
  type        = string
  description = "Lambda architecture the artifacts were built for: arm64 (cargo lambda build --arm64), or x86_64 for those who cannot build arm64."
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture must be arm64 or x86_64."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Days CloudWatch keeps each function's logs (the example deployment: 7)."
  default     = 7
}

variable "log_level" {
  type        = string
  description = "Lambda application log level of every function (AWS_LAMBDA_LOG_LEVEL): TRACE, DEBUG, INFO, WARN, ERROR or FATAL."
  default     = "INFO"

  validation {
    condition     = contains(["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"], var.log_level)
    error_message = "log_level must be TRACE, DEBUG, INFO, WARN, ERROR or FATAL."
  }
}

variable "force_destroy_buckets" {
  type        = bool
  description = "Let terraform destroy delete the state and export buckets with everything in them (every version). Set to true, apply, then destroy."
  default     = false
}

variable "duration_alarm_ms" {
  type        = number
  description = "Alarm when an invocation takes longer than this (the example deployment: 1500 ms). health-sweeper's own threshold is 20 s (half its sweep's budget) or two probe timeouts and a second, whichever is more; snapshot-exporter's is 45 s."
  default     = 1500
}

# --- Notification channels ------------------------------------------------------------------------

variable "sms_phone_number" {
  type        = string
  description = "Optional E.164 phone number subscribed by SMS to the alert topic, filtered to what must page (message attribute sms = true: the 100 % budget alert, system down). Empty: no SMS."
  default     = ""

  validation {
    condition     = var.sms_phone_number == "" || can(regex("^\\+[1-9][0-9]{6,14}$", var.sms_phone_number))
    error_message = "sms_phone_number must be empty or an E.164 number such as +34600111222."
  }
}

variable "email_from" {
  type        = string
  description = "Optional sender address for SES email (text + HTML) to manager_email, besides the SNS topic. An SES identity is created for it (and, while the account is in the SES sandbox, for manager_email): confirm both. Empty: SNS only."
  default     = ""
}

variable "webhook_secret_arn" {
  type        = string
  description = "Optional ARN of a Secrets Manager secret holding a Slack or Teams webhook URL (plain, or JSON {\"url\": ...}), encrypted with the AWS managed key (the functions are granted no customer-managed one). Empty: no chat channel."
  default     = ""
}

variable "webhook_format" {
  type        = string
  description = "Format of the chat webhook: slack or teams."
  default     = "slack"

  validation {
    condition     = contains(["slack", "teams"], var.webhook_format)
    error_message = "webhook_format must be slack or teams."
  }
}

# --- deploy-notifier ------------------------------------------------------------------------------

variable "deploy_environment" {
  type        = string
  description = "Label in deploy-notifier's subjects, [prod] ... (empty: none)."
  default     = ""
}

variable "deploy_notify_in_progress" {
  type        = bool
  description = "Also notify when an ECS deployment starts (rollbacks always are)."
  default     = false
}

variable "ecs_events_topic_arn" {
  type        = string
  description = "Optional: an SNS topic that already receives ECS events (the example deployment's EventBridge -> SNS); deploy-notifier subscribes to it too. An event that arrives both ways is notified once (the dedupe key is the event's id)."
  default     = ""
}

variable "alarm_topic_arns" {
  type        = list(string)
  description = "Optional: existing SNS topics in var.region (this account's or another's) your CloudWatch alarm actions publish to. deploy-notifier subscribes to each and tells every alarm as what it is (state, condition, datapoints, how long it lasted), once per state change, on every channel. Never the suite's own alert topic."
  default     = []

  validation {
    condition     = alltrue([for arn in var.alarm_topic_arns : can(regex("^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$", arn)) && split(":", arn)[3] == var.region])
    error_message = "alarm_topic_arns: each must be an SNS topic ARN in var.region (the subscription is made there)."
  }
}

variable "alarm_events" {
  type        = bool
  description = "Route the state changes of every CloudWatch alarm in the account and region to deploy-notifier through EventBridge, with no topic needed: all but the suite's own alarms (<project_prefix>-<function>-errors and the like, which go to the alert topic directly) and Application Auto Scaling's target-tracking alarms. An alarm that also reaches it through alarm_topic_arns is told once."
  default     = false
}

variable "health_events" {
  type        = bool
  description = "Route AWS Health events (service issues, scheduled changes such as RDS maintenance, account notifications) to deploy-notifier."
  default     = true
}

variable "guardduty_min_severity" {
  type        = number
  description = "GuardDuty findings of at least this severity (1-10; 4 is medium, 7 high) reach deploy-notifier, each told once per severity band; null routes none. Costs nothing without GuardDuty enabled."
  default     = 4

  validation {
    condition     = var.guardduty_min_severity == null ? true : (var.guardduty_min_severity >= 1 && var.guardduty_min_severity <= 10)
    error_message = "guardduty_min_severity must be from 1 to 10, or null."
  }
}

variable "alarm_warning_names" {
  type        = list(string)
  description = "Alarm-name patterns (* matches any run of characters) whose ALARM is a warning rather than critical (a page). OK is always info, INSUFFICIENT_DATA a warning."
  default     = []

  validation {
    condition     = alltrue([for p in var.alarm_warning_names : length(p) > 0 && length(p) <= 255 && !strcontains(p, ",") && !can(regex("[[:cntrl:]]", p))])
    error_message = "alarm_warning_names: each pattern must be 1 to 255 characters, without commas or control characters."
  }
}

variable "alarm_flap_count" {
  type        = number
  description = "An alarm that enters ALARM this many times within alarm_flap_minutes is flapping: its changes in each window are one message with the count, not a page each."
  default     = 3

  validation {
    condition     = var.alarm_flap_count >= 2 && var.alarm_flap_count <= 100 && floor(var.alarm_flap_count) == var.alarm_flap_count
    error_message = "alarm_flap_count must be a whole number from 2 to 100."
  }
}

variable "alarm_flap_minutes" {
  type        = number
  description = "The flapping window, in minutes."
  default     = 30

  validation {
    condition     = var.alarm_flap_minutes >= 1 && var.alarm_flap_minutes <= 1440 && floor(var.alarm_flap_minutes) == var.alarm_flap_minutes
    error_message = "alarm_flap_minutes must be a whole number from 1 to 1440."
  }
}

variable "ci_auth" {
  type        = string
  description = "How the Function URL authenticates CI: hmac (auth type NONE, requests signed with the key kept in Secrets Manager) or iam (auth type AWS_IAM, SigV4)."
  default     = "hmac"

  validation {
    condition     = contains(["hmac", "iam"], var.ci_auth)
    error_message = "ci_auth must be hmac or iam."
  }
}

variable "ci_signing_secret_arn" {
  type        = string
  description = "With ci_auth = hmac: an existing Secrets Manager secret holding the CI signing key (at least 32 bytes), encrypted with the AWS managed key. Empty: one is created with a random key."
  default     = ""
}

variable "ci_signing_key_version" {
  type        = number
  description = "Version of the CI signing key Watchkeeper generates (with ci_auth = hmac and no ci_signing_secret_arn): raise it to draw a new key. The key is written write-only and never enters the state."
  default     = 1
}

variable "ci_invoker_arns" {
  type        = list(string)
  description = "With ci_auth = iam: IAM roles or users (ARNs) allowed to call the Function URL, such as the CI's deploy role."
  default     = []
}

variable "ci_reserved_concurrency" {
  type        = number
  description = "Reserved concurrency of deploy-notifier-ci, the function behind the public Function URL: CI reports handled at once (more get 429, which the documented curl retries). Keeps a flood on the URL from starving ECS notifications or the account. Set null in an account whose Lambda concurrency quota is still 10: Lambda keeps 10 unreserved, so none can be reserved there."
  default     = 3

  validation {
    condition     = var.ci_reserved_concurrency == null || try(var.ci_reserved_concurrency >= 1 && var.ci_reserved_concurrency <= 100, false)
    error_message = "ci_reserved_concurrency must be null or between 1 and 100."
  }
}

# --- secret-rotator -------------------------------------------------------------------------------

variable "rotated_secret_arns" {
  type        = list(string)
  description = "Secrets Manager secrets rotated by secret-rotator (RDS form or API keys). Empty: the rotator is deployed without rotating anything."
  default     = []
}

variable "master_secret_arns" {
  type        = list(string)
  description = "Master secrets named by masterarn in rotated secrets (alternating users): read-only for the rotator."
  default     = []
}

variable "master_secret_hosts" {
  type        = map(string)
  description = "ROTATION_MASTER_HOSTS: for each master secret without a host of its own (RDS-managed, username and password only), as rotated secrets write it in masterarn, the only \"host:port\" where secret-rotator uses it. Such a master not listed here is refused."
  default     = {}

  validation {
    condition = alltrue([
      for arn, address in var.master_secret_hosts :
      can(regex("^[^=,\\s]+$", arn)) && can(regex("^[^=,:/\\s]+:[0-9]{1,5}$", address))
    ])
    error_message = "master_secret_hosts maps a master secret ARN (no '=', ',' or spaces) to \"host:port\"."
  }
}

variable "secrets_kms_key_arns" {
  type        = list(string)
  description = "Customer-managed KMS keys that encrypt the rotated or master secrets (empty when they use the AWS managed key)."
  default     = []
}

variable "rotation_days" {
  type        = number
  description = "Rotate every this many days (the example deployment: 90)."
  default     = 90
}

variable "vpc_id" {
  type        = string
  description = "VPC of the database and the backends: secret-rotator and health-sweeper run in it."
}

variable "private_subnet_ids" {
  type        = list(string)
  description = "Private subnets (with a NAT gateway or VPC endpoints for Secrets Manager, S3, SNS, EC2) for secret-rotator and health-sweeper."
}

variable "database_cidr_blocks" {
  type        = list(string)
  description = "Where the databases are, for secret-rotator's security group egress."
}

variable "database_ports" {
  type        = list(number)
  description = "Ports secret-rotator connects to (PostgreSQL 5432, MySQL 3306)."
  default     = [5432]
}

variable "db_tls" {
  type        = string
  description = "secret-rotator's TLS to the databases: verify-full (against the RDS CA bundle in rds_ca_layer_zip) or disable (plaintext, explicitly)."
  default     = "verify-full"

  validation {
    condition     = contains(["verify-full", "disable"], var.db_tls)
    error_message = "db_tls must be verify-full or disable."
  }
}

variable "rds_ca_layer_zip" {
  type        = string
  description = "Path of the RDS CA layer zip that cargo xtask build makes from infra/rds-ca/global-bundle.pem (downloaded from https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem): a layer mounted beside secret-rotator and named by DB_TLS_CA_FILE. Required with db_tls = verify-full."
  default     = ""

  validation {
    condition     = var.db_tls == "disable" || var.rds_ca_layer_zip != ""
    error_message = "rds_ca_layer_zip is required while db_tls is verify-full (cargo xtask build makes it; plaintext needs db_tls = \"disable\" explicitly)."
  }
}

# --- snapshot-exporter ----------------------------------------------------------------------------

variable "export_sources" {
  type        = list(string)
  description = "RDS instance or cluster identifiers whose snapshots are exported to S3 (empty: use export_source_tag)."
  default     = []
}

variable "export_source_tag" {
  type        = string
  description = "Alternatively, export instances and clusters tagged with this key=value (empty with no export_sources: Project=<project_prefix>)."
  default     = ""
}

variable "export_tables" {
  type        = list(string)
  description = "Optional list of database tables to export (database.schema.table); empty: everything."
  default     = []
}

variable "export_automated_snapshots" {
  type        = string
  description = "weekly: the weekly run exports each source's newest automated snapshot (about 4 exports a month per source, $0.87 for 20 GB); every: each daily automated snapshot is exported when it is taken (about 30 a month, $6 for 20 GB, and 30 copies kept). Manual snapshots are exported when taken either way."
  default     = "weekly"

  validation {
    condition     = contains(["weekly", "every"], var.export_automated_snapshots)
    error_message = "export_automated_snapshots must be weekly or every."
  }
}

variable "export_glacier_days" {
  type        = number
  description = "Days after which exported snapshots (objects over 128 KB) move to S3 Glacier Instant Retrieval, which Athena still reads."
  default     = 30
}

variable "export_expiry_days" {
  type        = number
  description = "Days after which exported snapshots are deleted."
  default     = 365
}

# --- budget-alerter -------------------------------------------------------------------------------

variable "monthly_budget_usd" {
  type        = number
  description = "Monthly cost budget of the account (the example deployment: 25), alerted at 50 %, 80 % and 100 %."
  default     = 25
}

variable "service_budgets" {
  type = map(object({
    service   = string
    limit_usd = number
  }))
  description = "Per-service monthly budgets (the example deployment): key = short name, service = the Cost Explorer service name, limit in USD."
  default = {
    cloudwatch    = { service = "AmazonCloudWatch", limit_usd = 5 }
    s3            = { service = "Amazon Simple Storage Service", limit_usd = 2 }
    data-transfer = { service = "AWS Data Transfer", limit_usd = 3 }
  }
}

variable "budget_cost_explorer" {
  type        = bool
  description = "Show the top services in budget alerts (one Cost Explorer GetCostAndUsage call per run at most, $0.01 each)."
  default     = true
}

# --- health-sweeper -------------------------------------------------------------------------------

variable "sweep_project" {
  type        = string
  description = "Discover EC2 instances tagged Project=<this> (empty: project_prefix)."
  default     = ""
}

variable "sweep_role" {
  type        = string
  description = "... and Role=<this>."
  default     = "backend"
}

variable "sweep_port" {
  type        = number
  description = "Port probed on the backends."
  default     = 8080
}

variable "sweep_probe_ports" {
  type        = list(string)
  description = "Ports other than sweep_port that probes go to, each a port (\"8081\") or a range (\"32768-65535\", ECS on EC2's dynamic host ports): the ports your target groups register targets on (and their health checks' own ports) and those of sweep_static_targets. The sweeper's security group allows only these and sweep_port (one rule per range and backend CIDR block)."
  default     = []

  validation {
    condition = alltrue([
      for p in var.sweep_probe_ports : can(regex("^[0-9]{1,5}(-[0-9]{1,5})?$", p))
      && alltrue([for n in split("-", p) : tonumber(n) >= 1 && tonumber(n) <= 65535])
      && tonumber(split("-", p)[0]) <= tonumber(reverse(split("-", p))[0])
    ])
    error_message = "sweep_probe_ports entries must be a TCP port (\"8081\") or a range (\"32768-65535\") within 1-65535."
  }
}

variable "sweep_path" {
  type        = string
  description = "Path probed on every backend: a cheap endpoint that exercises the backend's dependencies."
  default     = "/health"
}

variable "sweep_target_group_check" {
  type        = string
  description = "How target groups' targets are asked: sweeper (sweep_path on each registered port, in the group's protocol: the deeper check) or group (the group's own health-check path and port too; open those ports with sweep_probe_ports)."
  default     = "sweeper"

  validation {
    condition     = contains(["sweeper", "group"], var.sweep_target_group_check)
    error_message = "sweep_target_group_check must be sweeper or group."
  }
}

variable "sweep_host_header" {
  type        = string
  description = "Host header of every probe (and the TLS server name), for backends that check it (Django's ALLOWED_HOSTS); empty: the target's address."
  default     = ""

  validation {
    condition     = can(regex("^[A-Za-z0-9.:\\[\\]-]{0,255}$", var.sweep_host_header))
    error_message = "sweep_host_header must be a host name, optionally with :port."
  }
}

variable "sweep_target_group_arns" {
  type        = list(string)
  description = "ALB/NLB target groups whose registered targets are probed too (over TLS when the group's protocol or health check is HTTPS; see sweep_target_group_check)."
  default     = []
}

variable "sweep_static_targets" {
  type        = list(string)
  description = "More targets, name=ip:port or ip:port (private addresses only)."
  default     = []
}

variable "sweep_backend_cidr_blocks" {
  type        = list(string)
  description = "Where the backends are, for health-sweeper's security group egress on sweep_port (empty: the VPC's CIDR)."
  default     = []
}

variable "sweep_timeout_ms" {
  type        = number
  description = "One probe's timeout. At most 13500: half of what the 40 s sweep leaves probes (the function refuses more at init)."
  default     = 2000

  validation {
    condition     = var.sweep_timeout_ms >= 1 && var.sweep_timeout_ms <= 13500
    error_message = "sweep_timeout_ms must be 1 to 13500: a longer probe cannot finish inside the sweep, and hanging backends would never be judged."
  }
}

variable "sweep_reminder_hours" {
  type        = number
  description = "Remind every N hours while the system is not ok (0: never)."
  default     = 0
}

variable "sweep_maintenance" {
  type        = bool
  description = "Silence health alerts, keep sweeping."
  default     = false
}
