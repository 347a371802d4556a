# The smallest useful Yo-Yo: one pool with one spot L4 VM that runs a 30-minute window
# at 02:00 UTC, wakes when work is queued, and is stopped whenever it is idle.
#
#   cp terraform.tfvars.example terraform.tfvars   # then edit
#   make package plan deploy                       # from the repository root

# Application-default *user* credentials (docs/deploy.md) need a quota project for
# APIs such as Cloud Billing Budgets and Service Usage, or they answer 403:
# user_project_override sends billing_project as that quota project.
provider "google" {
  project               = var.project_id
  region                = var.region
  user_project_override = true
  billing_project       = var.project_id
}

provider "google-beta" {
  project               = var.project_id
  region                = var.region
  user_project_override = true
  billing_project       = var.project_id
}

module "yoyo" {
  source = "../.."

  project_id          = var.project_id
  region              = var.region
  function_source_zip = var.function_source_zip

  billing_account = var.billing_account
  budget = {
    amount = var.budget_amount
  }

  caps = {
    daily_usd   = 10
    monthly_usd = 100
  }

  pools = {
    default = {
      zone             = var.zone
      image            = var.image
      machine_type     = "g2-standard-8"
      gpu_type         = "nvidia-l4"
      gpu_count        = 1
      hourly_price_usd = 0.35
      weights_prefix   = "models/default"

      cycle = {
        cron      = "0 2 * * *"
        time_zone = "Etc/UTC"
        window_s  = 1800
      }
    }
  }

  status_page_invokers = var.status_page_invokers
}
