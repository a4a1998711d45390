# The bucket of claims (dedupe markers) and state documents: <function>/claims/... and
# <function>/docs/... Versioned, encrypted, private, TLS only; claims expire, documents stay.

resource "aws_s3_bucket" "state" {
  # checkov:skip=CKV_AWS_18:Access logs of a bucket only the functions touch would cost more than the bucket; CloudTrail covers who changed what.
  # checkov:skip=CKV_AWS_144:Claims and small state documents; losing a region loses nothing a sweep or the next event does not rebuild.
  # checkov:skip=CKV_AWS_145:SSE-S3: no per-request KMS cost or key grants for the functions; the bucket holds no secrets (claims and state only).
  # checkov:skip=CKV2_AWS_62:Nothing reacts to state writes; event notifications would have no consumer.
  bucket_prefix = "${var.prefix}-watchkeeper-state-"
  force_destroy = var.force_destroy
}

resource "aws_s3_bucket_versioning" "state" {
  bucket = aws_s3_bucket.state.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "state" {
  bucket = aws_s3_bucket.state.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_public_access_block" "state" {
  bucket                  = aws_s3_bucket.state.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "state" {
  bucket = aws_s3_bucket.state.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

locals {
  expiring_prefixes = merge(
    { for f in var.functions : "expire-${f}-claims" => "${f}/claims/" },
    contains(var.functions, "deploy-notifier") ? {
      "expire-deploy-notifier-deployments" = "deploy-notifier/docs/deployments/"
      "expire-deploy-notifier-alarms"      = "deploy-notifier/docs/alarms/"
      "expire-deploy-notifier-health"      = "deploy-notifier/docs/health/"
      "expire-deploy-notifier-findings"    = "deploy-notifier/docs/findings/"
    } : {},
  )
}

resource "aws_s3_bucket_lifecycle_configuration" "state" {
  bucket = aws_s3_bucket.state.id

  # Dedupe markers only matter while a duplicate or a retry can still arrive (days); after that
  # they are clutter. State documents (docs/) are kept, but for deploy-notifier's deployment
  # records, which matter for hours (a rollout's duration, a late start's check): a deployment
  # superseded before it ended would keep its start forever. Its alarm and Health histories
  # matter for days (an alarm's changes are kept a week; a Health event's updates while it is
  # open; a finding's band while GuardDuty updates it): one per alarm, event or finding ever seen
  # would otherwise pile up.
  dynamic "rule" {
    for_each = local.expiring_prefixes

    content {
      id     = rule.key
      status = "Enabled"

      filter {
        prefix = rule.value
      }

      expiration {
        days = var.claim_expiry_days
      }
    }
  }

  rule {
    id     = "old-versions-and-uploads"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = 7
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

data "aws_iam_policy_document" "state" {
  statement {
    sid       = "DenyPlaintext"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.state.arn, "${aws_s3_bucket.state.arn}/*"]

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

resource "aws_s3_bucket_policy" "state" {
  bucket = aws_s3_bucket.state.id
  policy = data.aws_iam_policy_document.state.json

  depends_on = [aws_s3_bucket_public_access_block.state]
}
