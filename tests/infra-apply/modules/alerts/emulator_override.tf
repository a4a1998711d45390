# Test only (see tests/infra-apply/emulator_override.tf).

# moto keeps SES v2 identity tags under another ARN than the one the provider reads them back
# from, so every plan after apply would want to tag the identities again.
resource "aws_sesv2_email_identity" "sender" {
  lifecycle {
    ignore_changes = [tags, tags_all]
  }
}

resource "aws_sesv2_email_identity" "recipient" {
  lifecycle {
    ignore_changes = [tags, tags_all]
  }
}
