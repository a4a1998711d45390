terraform {
  # 1.9: variable validations may refer to other variables; 1.10: ephemeral resources; 1.11:
  # write-only arguments (the CI signing key).
  required_version = ">= 1.11"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 6.29: `invoked_via_function_url` on aws_lambda_permission, for the lambda:InvokeFunction
      # statement a Function URL needs (deploy-notifier's function_url_v6.tf). Nothing else: the
      # CI key is drawn by Secrets Manager (ephemeral, write-only), the CA layer zip is built by
      # `cargo xtask build`.
      version = ">= 6.29, < 7.0"
    }
  }

  # Remote state in S3, as in the example deployment. Partial configuration: the bucket, key and region are
  # given at init (terraform init -backend-config=backend.hcl), see backend.hcl.example.
  backend "s3" {}
}
