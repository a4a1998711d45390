# Test only (see tests/infra-apply/emulator_override.tf).

resource "aws_s3_bucket_lifecycle_configuration" "export" {
  # moto drops a rule's ObjectSizeGreaterThan filter, so the provider's read-back never matches
  # what it wrote and it waits 3 minutes, then fails. The same two rules, the first without the
  # size filter (an override replaces every rule block; the deployed ones are in main.tf).
  rule {
    id     = "parquet-to-glacier-instant-retrieval"
    status = "Enabled"

    filter {}

    transition {
      days          = var.glacier_days
      storage_class = "GLACIER_IR"
    }
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
