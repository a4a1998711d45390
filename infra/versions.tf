terraform {
  # 1.9: variable validations may refer to other variables.
  required_version = ">= 1.9"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 6.x: a Function URL with auth type NONE gets both public permissions it needs
      # (lambda:InvokeFunctionUrl and lambda:InvokeFunction via the URL) from the provider.
      version = "~> 6.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.4"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }

  # Remote state in S3, as in the example deployment. Partial configuration: the bucket, key and region are
  # given at init (terraform init -backend-config=backend.hcl), see backend.hcl.example.
  backend "s3" {}
}
