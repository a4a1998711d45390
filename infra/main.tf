# Watchkeeper: the five functions, their triggers and their channels, in one apply.

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Project   = var.project_prefix
      Component = "watchkeeper"
    }
  }
}

data "aws_vpc" "selected" {
  id = var.vpc_id
}

locals {
  functions = ["deploy-notifier", "secret-rotator", "snapshot-exporter", "budget-alerter", "health-sweeper"]

  # What every function module gets: names, artifacts, the state bucket, the channels, the alarms.
  common = {
    prefix             = var.project_prefix
    region             = var.region
    artifacts_dir      = var.artifacts_dir
    architecture       = var.architecture
    log_retention_days = var.log_retention_days
    log_level          = var.log_level
    duration_alarm_ms  = var.duration_alarm_ms
    alarm_topic_arn    = module.alerts.topic_arn
    kms_key_arn        = module.alerts.kms_key_arn
    state_bucket = {
      name = module.state_bucket.bucket
      arn  = module.state_bucket.arn
    }
    notify = {
      topic_arn          = module.alerts.topic_arn
      topic_kms_key_arn  = module.alerts.kms_key_arn
      email_from         = var.email_from
      email_to           = var.email_from == "" ? "" : var.manager_email
      ses_identity_arns  = module.alerts.ses_identity_arns
      webhook_secret_arn = var.webhook_secret_arn
      webhook_format     = var.webhook_format
    }
  }
}

module "alerts" {
  source = "./modules/alerts"

  prefix           = var.project_prefix
  manager_email    = var.manager_email
  sms_phone_number = var.sms_phone_number
  email_from       = var.email_from
}

module "state_bucket" {
  source = "./modules/state-bucket"

  prefix        = var.project_prefix
  functions     = local.functions
  force_destroy = var.force_destroy_buckets
}

module "deploy_notifier" {
  source = "./modules/deploy-notifier"

  common                  = local.common
  environment_label       = var.deploy_environment
  notify_in_progress      = var.deploy_notify_in_progress
  ci_auth                 = var.ci_auth
  ci_signing_secret_arn   = var.ci_signing_secret_arn
  ci_signing_key_version  = var.ci_signing_key_version
  ci_invoker_arns         = var.ci_invoker_arns
  ci_reserved_concurrency = var.ci_reserved_concurrency
  ecs_events_topic_arn    = var.ecs_events_topic_arn
  alarm_topic_arns        = var.alarm_topic_arns
  alarm_events            = var.alarm_events
  health_events           = var.health_events
  guardduty_min_severity  = var.guardduty_min_severity
  alarm_warning_names     = var.alarm_warning_names
  alarm_flap_count        = var.alarm_flap_count
  alarm_flap_minutes      = var.alarm_flap_minutes
}

module "secret_rotator" {
  source = "./modules/secret-rotator"

  common               = local.common
  rotated_secret_arns  = var.rotated_secret_arns
  master_secret_arns   = var.master_secret_arns
  master_secret_hosts  = var.master_secret_hosts
  secrets_kms_key_arns = var.secrets_kms_key_arns
  rotation_days        = var.rotation_days
  vpc_id               = var.vpc_id
  subnet_ids           = var.private_subnet_ids
  database_cidr_blocks = var.database_cidr_blocks
  database_ports       = var.database_ports
  db_tls               = var.db_tls
  rds_ca_layer_zip     = var.rds_ca_layer_zip
}

module "snapshot_exporter" {
  source = "./modules/snapshot-exporter"

  common            = local.common
  export_sources    = var.export_sources
  export_source_tag = var.export_source_tag == "" && length(var.export_sources) == 0 ? "Project=${var.project_prefix}" : var.export_source_tag
  export_tables     = var.export_tables

  export_automated_snapshots = var.export_automated_snapshots
  glacier_days               = var.export_glacier_days
  expiry_days                = var.export_expiry_days
  force_destroy              = var.force_destroy_buckets
}

module "budget_alerter" {
  source = "./modules/budget-alerter"

  common             = local.common
  budgets_topic_arn  = module.alerts.budgets_topic_arn
  monthly_budget_usd = var.monthly_budget_usd
  service_budgets    = var.service_budgets
  cost_explorer      = var.budget_cost_explorer
}

module "health_sweeper" {
  source = "./modules/health-sweeper"

  common              = local.common
  vpc_id              = var.vpc_id
  subnet_ids          = var.private_subnet_ids
  backend_cidr_blocks = length(var.sweep_backend_cidr_blocks) > 0 ? var.sweep_backend_cidr_blocks : [data.aws_vpc.selected.cidr_block]
  project             = var.sweep_project == "" ? var.project_prefix : var.sweep_project
  role                = var.sweep_role
  port                = var.sweep_port
  probe_ports         = var.sweep_probe_ports
  path                = var.sweep_path
  host_header         = var.sweep_host_header
  target_group_check  = var.sweep_target_group_check
  target_group_arns   = var.sweep_target_group_arns
  static_targets      = var.sweep_static_targets
  timeout_ms          = var.sweep_timeout_ms
  reminder_hours      = var.sweep_reminder_hours
  maintenance         = var.sweep_maintenance
}
