variable "prefix" {
  type        = string
  description = "Prefix of the bucket's name."
}

variable "functions" {
  type        = list(string)
  description = "The functions whose claims (<function>/claims/) expire."
}

variable "claim_expiry_days" {
  type        = number
  description = "Days a dedupe marker is kept: longer than any retry or duplicate delivery can arrive."
  default     = 30
}

variable "force_destroy" {
  type        = bool
  description = "Let terraform destroy empty the bucket (all versions) first."
  default     = false
}
