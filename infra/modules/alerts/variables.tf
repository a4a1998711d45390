variable "prefix" {
  type        = string
  description = "Prefix of every name."
}

variable "manager_email" {
  type        = string
  description = "Email address subscribed to the alert topic."
}

variable "sms_phone_number" {
  type        = string
  description = "E.164 number subscribed by SMS, filtered to sms = true (empty: none)."
}

variable "email_from" {
  type        = string
  description = "SES sender identity (empty: no SES channel)."
}
