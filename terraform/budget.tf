# The Cloud Billing budget on this project. Every notification (about every 20-40
# minutes, plus each threshold crossing) goes to the budget topic, where on_budget
# decides whether to engage the kill switch (budget.kill_fraction / kill_thresholds /
# forecast_kill). Creating it needs billing permissions on the billing account
# (docs/deploy.md); with billing_account = null no budget is created.

resource "google_billing_budget" "this" {
  count = var.billing_account == null ? 0 : 1

  billing_account = var.billing_account
  display_name    = "${var.prefix}-${var.project_id}"

  budget_filter {
    projects = ["projects/${local.project_number}"]
  }

  amount {
    specified_amount {
      currency_code = var.budget.currency_code
      units         = tostring(var.budget.amount)
    }
  }

  dynamic "threshold_rules" {
    for_each = distinct(var.budget.alert_thresholds)
    content {
      threshold_percent = threshold_rules.value
      spend_basis       = "CURRENT_SPEND"
    }
  }

  dynamic "threshold_rules" {
    for_each = var.budget.forecast_threshold == null ? [] : [var.budget.forecast_threshold]
    content {
      threshold_percent = threshold_rules.value
      spend_basis       = "FORECASTED_SPEND"
    }
  }

  all_updates_rule {
    pubsub_topic   = google_pubsub_topic.event["budget"].id
    schema_version = "1.0"
  }

  depends_on = [
    google_project_service.apis,
    google_pubsub_topic_iam_member.budget_publisher,
  ]
}
