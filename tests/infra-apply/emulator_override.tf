# Test only: the root module against the AWS emulator (moto). Copied into a scratch copy of
# infra/ by tests/tests/infra/apply.rs, with @ENDPOINT@ and @STATE@ filled in. Never used to deploy.

terraform {
  # The machine's provider mirror holds hashicorp/aws 5.100.0 only; production asks >= 6.29 for
  # invoked_via_function_url (deploy-notifier's function_url_v6.tf, which this copy leaves out).
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100"
    }
  }

  # The state stays in the scratch copy: the suite's S3 backend is for a real account.
  backend "local" {
    path = "@STATE@"
  }
}

provider "aws" {
  # moto accepts any key; no account lookups beyond STS, which moto serves.
  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  s3_use_path_style           = true
  # An operation moto does not implement answers 500, which the provider's default 25 retries
  # turn into over ten minutes; 3 still ride out a connection the local server drops (seen once
  # in a plan's read of a budget: "use of closed network connection").
  max_retries = 3

  # Every service the suite's resources use, at the emulator.
  endpoints {
    budgets        = "@ENDPOINT@"
    cloudwatch     = "@ENDPOINT@"
    cloudwatchlogs = "@ENDPOINT@"
    ec2            = "@ENDPOINT@"
    events         = "@ENDPOINT@"
    iam            = "@ENDPOINT@"
    kms            = "@ENDPOINT@"
    lambda         = "@ENDPOINT@"
    s3             = "@ENDPOINT@"
    secretsmanager = "@ENDPOINT@"
    sesv2          = "@ENDPOINT@"
    sns            = "@ENDPOINT@"
    sqs            = "@ENDPOINT@"
    sts            = "@ENDPOINT@"
  }
}
