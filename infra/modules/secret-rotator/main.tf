# secret-rotator: the Secrets Manager rotation function, in the databases' VPC, with the RDS CA
# bundle beside it and a 90-day schedule on every configured secret.

data "aws_caller_identity" "current" {}

locals {
  name = "secret-rotator"
  # The RDS CA bundle travels in a layer (built by `cargo xtask build`): Lambda mounts it under
  # /opt, and the cargo-lambda artifact stays exactly as built.
  ca_file = "/opt/rds-ca/global-bundle.pem"
}

# --- Network --------------------------------------------------------------------------------------

resource "aws_security_group" "rotator" {
  name_prefix = "${var.common.prefix}-${local.name}-"
  description = "secret-rotator: to the databases and to AWS APIs over HTTPS"
  vpc_id      = var.vpc_id

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_egress_rule" "database" {
  for_each = { for pair in setproduct(var.database_cidr_blocks, var.database_ports) : "${pair[0]}:${pair[1]}" => pair }

  security_group_id = aws_security_group.rotator.id
  description       = "Database port"
  cidr_ipv4         = each.value[0]
  ip_protocol       = "tcp"
  from_port         = each.value[1]
  to_port           = each.value[1]
}

resource "aws_vpc_security_group_egress_rule" "https" {
  security_group_id = aws_security_group.rotator.id
  description       = "Secrets Manager, S3, SNS (through VPC endpoints or a NAT gateway)"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

# --- The CA bundle --------------------------------------------------------------------------------

resource "aws_lambda_layer_version" "ca" {
  count = var.rds_ca_layer_zip == "" ? 0 : 1

  layer_name               = "${var.common.prefix}-rds-ca-bundle"
  description              = "RDS CA bundle for verify-full TLS"
  filename                 = var.rds_ca_layer_zip
  source_code_hash         = filebase64sha256(var.rds_ca_layer_zip)
  compatible_runtimes      = ["provided.al2023"]
  compatible_architectures = [var.common.architecture]
}

# --- IAM ------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "function" {
  dynamic "statement" {
    for_each = length(var.rotated_secret_arns) > 0 ? [1] : []

    content {
      sid = "RotatedSecrets"
      actions = [
        "secretsmanager:DescribeSecret",
        "secretsmanager:GetSecretValue",
        "secretsmanager:PutSecretValue",
        "secretsmanager:UpdateSecretVersionStage",
        "secretsmanager:ListSecretVersionIds",
      ]
      resources = var.rotated_secret_arns
    }
  }

  dynamic "statement" {
    for_each = length(var.master_secret_arns) > 0 ? [1] : []

    content {
      sid       = "MasterSecrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = var.master_secret_arns
    }
  }

  # GetRandomPassword has no resource: it only generates a string.
  statement {
    sid       = "RandomPasswords"
    actions   = ["secretsmanager:GetRandomPassword"]
    resources = ["*"]
  }

  # Secrets encrypted with a customer-managed key: read and write them through Secrets Manager only.
  dynamic "statement" {
    for_each = length(var.secrets_kms_key_arns) > 0 ? [1] : []

    content {
      sid       = "SecretKeys"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = var.secrets_kms_key_arns

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${var.common.region}.amazonaws.com"]
      }
    }
  }
}

# --- The function ---------------------------------------------------------------------------------

module "function" {
  source = "../lambda"

  name               = local.name
  description        = "Secrets Manager rotation of RDS PostgreSQL/MySQL passwords and API keys"
  prefix             = var.common.prefix
  artifact           = "${var.common.artifacts_dir}/${local.name}/bootstrap.zip"
  architecture       = var.common.architecture
  timeout            = 60
  state_bucket       = var.common.state_bucket
  notify             = var.common.notify
  log_retention_days = var.common.log_retention_days
  log_level          = var.common.log_level
  alarm_topic_arn    = var.common.alarm_topic_arn
  duration_alarm_ms  = var.common.duration_alarm_ms
  # Secrets Manager retries a failed rotation itself; a Lambda retry would run a step twice at once.
  max_retry_attempts    = 0
  max_event_age_seconds = 3600
  policy_json           = data.aws_iam_policy_document.function.json
  layers                = aws_lambda_layer_version.ca[*].arn
  subnet_ids            = var.subnet_ids
  security_group_ids    = [aws_security_group.rotator.id]

  environment = {
    ROTATION_PASSWORD_LENGTH    = tostring(var.password_length)
    ROTATION_EXCLUDE_CHARACTERS = var.exclude_characters
    DB_TLS                      = var.db_tls
    DB_TLS_CA_FILE              = var.rds_ca_layer_zip == "" ? "" : local.ca_file
    ROTATION_MASTER_HOSTS       = join(",", [for arn, address in var.master_secret_hosts : "${arn}=${address}"])
    DB_CONNECT_TIMEOUT_MS       = "5000"
    DB_STATEMENT_TIMEOUT_MS     = "10000"
    DB_LOCK_TIMEOUT_MS          = "5000"
  }
}

# --- Rotation -------------------------------------------------------------------------------------

resource "aws_lambda_permission" "secrets_manager" {
  for_each = toset(var.rotated_secret_arns)

  statement_id   = "SecretsManager${substr(sha256(each.value), 0, 12)}"
  action         = "lambda:InvokeFunction"
  function_name  = module.function.function_name
  principal      = "secretsmanager.amazonaws.com"
  source_arn     = each.value
  source_account = data.aws_caller_identity.current.account_id
}

resource "aws_secretsmanager_secret_rotation" "rotated" {
  for_each = toset(var.rotated_secret_arns)

  secret_id           = each.value
  rotation_lambda_arn = module.function.function_arn
  # The first rotation waits for the schedule (or `aws secretsmanager rotate-secret`): at apply
  # time the databases do not let the rotator's security group in yet. Secrets Manager still
  # runs testSecret once now, on a pending version of its own making, to test the configuration:
  # the rotator recognises it and answers without logging in (no alert, nothing left pending).
  rotate_immediately = false

  rotation_rules {
    automatically_after_days = var.rotation_days
  }

  depends_on = [aws_lambda_permission.secrets_manager]
}
