# The alert topic every function (and every alarm) publishes to, its subscriptions, the topic
# AWS Budgets notifies, the SES identities of the email channel, and the suite's one KMS key
# (both topics, and the RDS snapshot exports: one customer-managed key is $1 a month).

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  # AWS services that publish to the topics. A Budgets notification to a topic whose policy does
  # not let budgets.amazonaws.com publish is dropped without a word, hence the explicit list.
  # RDS event subscriptions publish as events.rds.amazonaws.com (not rds.amazonaws.com).
  publishers = ["budgets.amazonaws.com", "events.amazonaws.com", "events.rds.amazonaws.com", "cloudwatch.amazonaws.com"]
}

# --- The suite's KMS key --------------------------------------------------------------------------

data "aws_iam_policy_document" "key" {
  # checkov:skip=CKV_AWS_109:A key policy: "*" is this key, and the account-root statement is what lets IAM policies grant use of it.
  # checkov:skip=CKV_AWS_111:A key policy: "*" is this key, administered by the account as AWS's default key policy does.
  # checkov:skip=CKV_AWS_356:A key policy: "*" is this key, not every resource.
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  # Publishing to an encrypted topic needs the key: the services that publish. No source
  # condition here: AWS documents the key statement for Budgets (and EventBridge) without one,
  # and a condition the service's KMS request does not carry would drop every notification
  # without a word. Which account's resources may publish is the topics' policies' business
  # (aws:SourceAccount there).
  statement {
    sid       = "ServicesPublishToEncryptedTopics"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = local.publishers
    }
  }
}

resource "aws_kms_key" "suite" {
  description         = "${var.prefix} Watchkeeper: alert topics and RDS snapshot exports"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.key.json
}

resource "aws_kms_alias" "suite" {
  name          = "alias/${var.prefix}-watchkeeper"
  target_key_id = aws_kms_key.suite.key_id
}

# --- The alert topic ------------------------------------------------------------------------------

resource "aws_sns_topic" "alerts" {
  name              = "${var.prefix}-alerts"
  kms_master_key_id = aws_kms_key.suite.arn
}

data "aws_iam_policy_document" "alerts" {
  statement {
    sid       = "AccountOwnsTopic"
    actions   = ["sns:Publish", "sns:Subscribe", "sns:GetTopicAttributes", "sns:ListSubscriptionsByTopic"]
    resources = [aws_sns_topic.alerts.arn]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid       = "ServicesPublish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts.arn]

    principals {
      type        = "Service"
      identifiers = local.publishers
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_sns_topic_policy" "alerts" {
  arn    = aws_sns_topic.alerts.arn
  policy = data.aws_iam_policy_document.alerts.json
}

resource "aws_sns_topic_subscription" "email" {
  topic_arn = aws_sns_topic.alerts.arn
  protocol  = "email"
  endpoint  = var.manager_email
}

# Only what must page: the functions set the message attribute sms = "true" on the 100 % budget
# alert, on "system down", and on what deploy-notifier tells as critical (an ALARM, a flapping
# alarm, an account-specific Health issue, a high GuardDuty finding) and the OK that ends it.
resource "aws_sns_topic_subscription" "sms" {
  count = var.sms_phone_number == "" ? 0 : 1

  topic_arn     = aws_sns_topic.alerts.arn
  protocol      = "sms"
  endpoint      = var.sms_phone_number
  filter_policy = jsonencode({ sms = ["true"] })
}

# --- The topic AWS Budgets notifies (budget-alerter reads it) -------------------------------------

resource "aws_sns_topic" "budgets" {
  name              = "${var.prefix}-budget-notifications"
  kms_master_key_id = aws_kms_key.suite.arn
}

data "aws_iam_policy_document" "budgets" {
  statement {
    sid       = "AccountOwnsTopic"
    actions   = ["sns:Publish", "sns:Subscribe", "sns:GetTopicAttributes", "sns:ListSubscriptionsByTopic"]
    resources = [aws_sns_topic.budgets.arn]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid       = "BudgetsPublish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.budgets.arn]

    principals {
      type        = "Service"
      identifiers = ["budgets.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_sns_topic_policy" "budgets" {
  arn    = aws_sns_topic.budgets.arn
  policy = data.aws_iam_policy_document.budgets.json
}

# --- SES: the sender and, in the sandbox, the recipient -------------------------------------------

resource "aws_sesv2_email_identity" "sender" {
  count = var.email_from == "" ? 0 : 1

  email_identity = var.email_from
}

# While the account is in the SES sandbox, recipients must be verified identities too.
resource "aws_sesv2_email_identity" "recipient" {
  count = var.email_from == "" || var.email_from == var.manager_email ? 0 : 1

  email_identity = var.manager_email
}
