# snapshot-exporter: RDS snapshot events and a weekly reconciling scan start snapshot exports to
# S3 (Parquet), encrypted with the suite's KMS key (RDS export needs a customer-managed one: the
# function grants RDS its use for each export), in a bucket whose lifecycle moves them to Glacier
# and then deletes them.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  name       = "snapshot-exporter"
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = var.common.region

  # Manual snapshot created (0042, copy 0197; cluster 0075) and export finished (0159 failed, 0160
  # canceled, 0161 completed; cluster 0162-0164).
  rules = {
    snapshots = {
      description = "RDS DB snapshot created by hand or exported"
      pattern = {
        source        = ["aws.rds"]
        "detail-type" = ["RDS DB Snapshot Event"]
        detail = {
          EventID = ["RDS-EVENT-0042", "RDS-EVENT-0197", "RDS-EVENT-0159", "RDS-EVENT-0160", "RDS-EVENT-0161"]
        }
      }
    }
    cluster-snapshots = {
      description = "RDS DB cluster snapshot created by hand or exported"
      pattern = {
        source        = ["aws.rds"]
        "detail-type" = ["RDS DB Cluster Snapshot Event"]
        detail = {
          EventID = ["RDS-EVENT-0075", "RDS-EVENT-0162", "RDS-EVENT-0163", "RDS-EVENT-0164"]
        }
      }
    }
  }

  # Automated snapshot created (0091; cluster 0169): with export_automated_snapshots = "every",
  # each daily automated snapshot is exported as it is taken (about 30 exports a month per
  # source). With "weekly" (the default) the weekly run exports each source's newest one.
  automated_rules = {
    automated-snapshots = {
      description = "RDS DB automated snapshot created"
      pattern = {
        source        = ["aws.rds"]
        "detail-type" = ["RDS DB Snapshot Event"]
        detail = {
          EventID = ["RDS-EVENT-0091"]
        }
      }
    }
    automated-cluster-snapshots = {
      description = "RDS DB cluster automated snapshot created"
      pattern = {
        source        = ["aws.rds"]
        "detail-type" = ["RDS DB Cluster Snapshot Event"]
        detail = {
          EventID = ["RDS-EVENT-0169"]
        }
      }
    }
  }
  every_automated = var.export_automated_snapshots == "every"
}

# --- The export bucket ----------------------------------------------------------------------------

resource "aws_s3_bucket" "export" {
  # checkov:skip=CKV_AWS_18:Access logs of an export bucket would cost more than the exports at the example deployment's scale; CloudTrail records who changed what.
  # checkov:skip=CKV_AWS_144:Exports are a second copy of RDS snapshots already; a cross-region third copy is out of a $25 budget.
  # checkov:skip=CKV2_AWS_62:Nothing reacts to new export objects; the function notifies when an export completes.
  bucket_prefix = "${var.common.prefix}-watchkeeper-exports-"
  force_destroy = var.force_destroy
}

resource "aws_s3_bucket_versioning" "export" {
  bucket = aws_s3_bucket.export.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "export" {
  bucket = aws_s3_bucket.export.id

  rule {
    bucket_key_enabled = true

    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.common.kms_key_arn
    }
  }
}

resource "aws_s3_bucket_public_access_block" "export" {
  bucket                  = aws_s3_bucket.export.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "export" {
  bucket = aws_s3_bucket.export.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "export" {
  bucket = aws_s3_bucket.export.id

  # Glacier Instant Retrieval: Athena and DuckDB still read the Parquet where it is (Flexible
  # Retrieval would need a restore first). Objects under 128 KB (the index objects, latest.json,
  # RDS's export_info files) stay in Standard: Glacier bills each as 128 KB.
  rule {
    id     = "parquet-to-glacier-instant-retrieval"
    status = "Enabled"

    filter {
      object_size_greater_than = 131072
    }

    transition {
      days          = var.glacier_days
      storage_class = "GLACIER_IR"
    }

    # No abort of incomplete uploads here: S3 refuses it beside an object size filter (the
    # "expire" rule below carries it for every object).
  }

  rule {
    id     = "expire"
    status = "Enabled"

    filter {}

    expiration {
      days = var.expiry_days
    }

    noncurrent_version_expiration {
      noncurrent_days = 7
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

data "aws_iam_policy_document" "export_bucket" {
  statement {
    sid       = "DenyPlaintext"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.export.arn, "${aws_s3_bucket.export.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "export" {
  bucket = aws_s3_bucket.export.id
  policy = data.aws_iam_policy_document.export_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.export]
}

# --- The role RDS export assumes ------------------------------------------------------------------

data "aws_iam_policy_document" "export_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["export.rds.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "export" {
  name               = "${var.common.prefix}-rds-snapshot-export"
  assume_role_policy = data.aws_iam_policy_document.export_assume.json
}

# What RDS export needs on the bucket (the actions StartExportTask documents for the role).
data "aws_iam_policy_document" "export_role" {
  statement {
    sid       = "ExportBucket"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [aws_s3_bucket.export.arn]
  }

  statement {
    sid       = "ExportObjects"
    actions   = ["s3:PutObject*", "s3:GetObject*", "s3:DeleteObject*"]
    resources = ["${aws_s3_bucket.export.arn}/*"]
  }
}

resource "aws_iam_role_policy" "export" {
  name   = "rds-snapshot-export"
  role   = aws_iam_role.export.id
  policy = data.aws_iam_policy_document.export_role.json
}

# --- The function's own permissions ---------------------------------------------------------------

data "aws_iam_policy_document" "function" {
  # checkov:skip=CKV_AWS_356:Only rds:DescribeExportTasks has "*": the function lists every export of the account (RDS runs 5 at once), which no snapshot ARN scopes.
  # Which sources exist, and their snapshots: this account and region only.
  statement {
    sid = "ReadRds"
    actions = [
      "rds:DescribeDBInstances",
      "rds:DescribeDBClusters",
      "rds:DescribeDBSnapshots",
      "rds:DescribeDBClusterSnapshots",
    ]
    resources = [
      "arn:${local.partition}:rds:${local.region}:${local.account_id}:db:*",
      "arn:${local.partition}:rds:${local.region}:${local.account_id}:cluster:*",
      "arn:${local.partition}:rds:${local.region}:${local.account_id}:snapshot:*",
      "arn:${local.partition}:rds:${local.region}:${local.account_id}:cluster-snapshot:*",
    ]
  }

  # Every running export of the account (RDS runs at most five at once): an unfiltered list,
  # which a snapshot or cluster ARN would refuse.
  statement {
    sid       = "ReadExports"
    actions   = ["rds:DescribeExportTasks"]
    resources = ["*"]
  }

  # Snapshots of this account and region (the function exports snapshots, never a live
  # cluster); which ones is its decision (EXPORT_SOURCES / EXPORT_SOURCE_TAG).
  statement {
    sid     = "StartExports"
    actions = ["rds:StartExportTask"]
    resources = [
      "arn:${local.partition}:rds:${local.region}:${local.account_id}:snapshot:*",
      "arn:${local.partition}:rds:${local.region}:${local.account_id}:cluster-snapshot:*",
    ]
  }

  statement {
    sid       = "PassExportRole"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.export.arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["export.rds.amazonaws.com"]
    }
  }

  # StartExportTask: the caller creates the grant RDS export encrypts with.
  statement {
    sid       = "ExportKeyGrant"
    actions   = ["kms:CreateGrant"]
    resources = [var.common.kms_key_arn]

    # Only a grant an AWS service makes for the caller (RDS export), never one for a principal
    # of the function's choosing.
    condition {
      test     = "Bool"
      variable = "kms:GrantIsForAWSResource"
      values   = ["true"]
    }
  }

  statement {
    sid       = "ExportKeyDescribe"
    actions   = ["kms:DescribeKey"]
    resources = [var.common.kms_key_arn]
  }

  # The index objects and the `latest` pointers the function writes and reads back, under the
  # bucket's default SSE-KMS key.
  statement {
    sid     = "IndexObjects"
    actions = ["s3:GetObject", "s3:PutObject"]
    # Only the index objects and the pointers: the function can neither read nor overwrite the
    # exported data (RDS writes that with the export role).
    resources = [
      "${aws_s3_bucket.export.arn}/${var.export_prefix}*.index.json",
      "${aws_s3_bucket.export.arn}/${var.export_prefix}*/latest.json",
    ]
  }

  # Listing lets a `latest` pointer not written yet read as 404 (absent) instead of 403.
  statement {
    sid       = "IndexList"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.export.arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.export_prefix}*"]
    }
  }

  statement {
    sid       = "IndexObjectsKey"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [var.common.kms_key_arn]

    # Only as S3 uses it for the bucket's default encryption.
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }
}

# --- The function ---------------------------------------------------------------------------------

module "function" {
  source = "../lambda"

  name               = local.name
  description        = "RDS snapshots exported to S3 on events and on a weekly scan"
  prefix             = var.common.prefix
  artifact           = "${var.common.artifacts_dir}/${local.name}/bootstrap.zip"
  architecture       = var.common.architecture
  timeout            = 60
  state_bucket       = var.common.state_bucket
  notify             = var.common.notify
  log_retention_days = var.common.log_retention_days
  log_level          = var.common.log_level
  alarm_topic_arn    = var.common.alarm_topic_arn
  # The weekly run lists every export task of the account and starts several exports: seconds,
  # not the suite's 1.5 s. Alarmed when it nears the 60 s timeout.
  duration_alarm_ms     = 45000
  max_retry_attempts    = 2
  max_event_age_seconds = 21600
  policy_json           = data.aws_iam_policy_document.function.json

  environment = {
    EXPORT_BUCKET             = aws_s3_bucket.export.id
    EXPORT_PREFIX             = var.export_prefix
    EXPORT_ROLE_ARN           = aws_iam_role.export.arn
    EXPORT_KMS_KEY_ARN        = var.common.kms_key_arn
    EXPORT_SOURCES            = join(",", var.export_sources)
    EXPORT_SOURCE_TAG         = var.export_source_tag
    EXPORT_TABLES             = join(",", var.export_tables)
    EXPORT_MAX_ACTIVE         = tostring(var.max_active)
    EXPORT_BACKUP_WINDOW_DAYS = tostring(var.backup_window_days)
    EXPORT_HUNG_HOURS         = tostring(var.hung_hours)
  }
}

# --- Triggers -------------------------------------------------------------------------------------

resource "aws_cloudwatch_event_rule" "rds" {
  for_each = local.rules

  name          = "${var.common.prefix}-${local.name}-${each.key}"
  description   = each.value.description
  event_pattern = jsonencode(each.value.pattern)
}

resource "aws_cloudwatch_event_target" "rds" {
  for_each = local.rules

  rule = aws_cloudwatch_event_rule.rds[each.key].name
  arn  = module.function.function_arn
}

resource "aws_lambda_permission" "rds" {
  for_each = local.rules

  statement_id   = "EventBridge-${each.key}"
  action         = "lambda:InvokeFunction"
  function_name  = module.function.function_name
  principal      = "events.amazonaws.com"
  source_arn     = aws_cloudwatch_event_rule.rds[each.key].arn
  source_account = local.account_id
}

resource "aws_cloudwatch_event_rule" "automated" {
  for_each = local.every_automated ? local.automated_rules : {}

  name          = "${var.common.prefix}-${local.name}-${each.key}"
  description   = each.value.description
  event_pattern = jsonencode(each.value.pattern)
}

resource "aws_cloudwatch_event_target" "automated" {
  for_each = local.every_automated ? local.automated_rules : {}

  rule = aws_cloudwatch_event_rule.automated[each.key].name
  arn  = module.function.function_arn
}

resource "aws_lambda_permission" "automated" {
  for_each = local.every_automated ? local.automated_rules : {}

  statement_id   = "EventBridge-${each.key}"
  action         = "lambda:InvokeFunction"
  function_name  = module.function.function_name
  principal      = "events.amazonaws.com"
  source_arn     = aws_cloudwatch_event_rule.automated[each.key].arn
  source_account = local.account_id
}

# The example deployment: copy snapshots to S3 weekly. The scan also catches whatever the events missed.
resource "aws_cloudwatch_event_rule" "weekly" {
  name                = "${var.common.prefix}-${local.name}-weekly"
  description         = "snapshot-exporter weekly reconciling scan"
  schedule_expression = var.schedule
}

resource "aws_cloudwatch_event_target" "weekly" {
  rule = aws_cloudwatch_event_rule.weekly.name
  arn  = module.function.function_arn
}

resource "aws_lambda_permission" "weekly" {
  statement_id   = "EventBridgeWeekly"
  action         = "lambda:InvokeFunction"
  function_name  = module.function.function_name
  principal      = "events.amazonaws.com"
  source_arn     = aws_cloudwatch_event_rule.weekly.arn
  source_account = local.account_id
}
