variable "project_id" {
  description = "Project to deploy Yo-Yo into."
  type        = string
}

variable "region" {
  description = "Region of the control plane."
  type        = string
  default     = "us-central1"
}

variable "zone" {
  description = "Zone of the GPU VM (must offer the GPU type)."
  type        = string
  default     = "us-central1-a"
}

variable "billing_account" {
  description = "Billing account ID for the budget (XXXXXX-XXXXXX-XXXXXX); null to skip the budget."
  type        = string
  default     = null
}

variable "budget_amount" {
  description = "Monthly budget in the billing account's currency."
  type        = number
  default     = 100
}

variable "image" {
  description = "GPU VM image built by vm/image/build-image.sh, e.g. projects/PROJECT/global/images/family/yoyo-gpu."
  type        = string
}

variable "function_source_zip" {
  description = "Archive built by `make package`."
  type        = string
  default     = "../../../build/function-source.zip"
}

variable "status_page_invokers" {
  description = "Who may open the status page, e.g. [\"user:you@example.com\"]."
  type        = list(string)
  default     = []
}
