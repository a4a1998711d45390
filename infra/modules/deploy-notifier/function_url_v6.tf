# The lambda:InvokeFunction statements a Function URL needs since October 2025, allowed only for
# requests that come through the URL (`lambda:InvokedViaFunctionUrl`): `invoked_via_function_url`
# exists from AWS provider 6.29 (versions.tf sets that floor). Kept in this file alone so that a
# provider without it (the test's 5.100 mirror) can drop exactly this.

# Public URL (ci_auth = hmac): the second statement of a public URL.
resource "aws_lambda_permission" "url_public_invoke" {
  # checkov:skip=CKV_AWS_301:Only through the Function URL (invoked_via_function_url), whose requests the function authenticates (HMAC).
  count = local.hmac ? 1 : 0

  statement_id             = "FunctionUrlPublicInvoke"
  action                   = "lambda:InvokeFunction"
  function_name            = module.ci_function.function_name
  principal                = "*"
  invoked_via_function_url = true
}

# IAM mode: the callers named may invoke through the URL, and only through it (a direct invoke
# with a forged event is refused).
resource "aws_lambda_permission" "ci_invoke" {
  for_each = local.hmac ? toset([]) : toset(var.ci_invoker_arns)

  statement_id             = "CiInvoke${substr(sha256(each.value), 0, 12)}"
  action                   = "lambda:InvokeFunction"
  function_name            = module.ci_function.function_name
  principal                = each.value
  invoked_via_function_url = true
}
