# Test only (see tests/infra-apply/emulator_override.tf).

resource "aws_lambda_function" "function" {
  lifecycle {
    # moto does not keep a function's LoggingConfig (JSON logs, levels, log group), so every
    # plan after apply would want to set it again. Checked instead: the deployed function's
    # environment is read back and compared with what each function's configuration reads.
    ignore_changes = [logging_config]
  }
}
