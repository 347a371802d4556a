output "functions" {
  description = "Deployed Cloud Functions: entry point => name."
  value       = module.yoyo.functions
}

output "topics" {
  description = "Pub/Sub topics: suffix => name."
  value       = module.yoyo.topics
}

output "instances" {
  description = "GPU VMs per pool."
  value       = module.yoyo.instances
}

output "weights_uris" {
  description = "Upload each pool's model here (gcloud storage cp -r MODEL_DIR/* URI/)."
  value       = module.yoyo.weights_uris
}

output "status_page_url" {
  description = "Authenticated status page."
  value       = module.yoyo.status_page_url
}

output "service_accounts" {
  description = "Service account of each role."
  value       = module.yoyo.service_accounts
}

output "eventarc_triggers" {
  description = "Eventarc trigger of each event-driven function."
  value       = module.yoyo.eventarc_triggers
}

output "control_config" {
  description = "The YOYO_CONFIG JSON the functions receive (for yoyoctl)."
  value       = module.yoyo.control_config
}

output "weights_bucket" {
  description = "Bucket holding the model weights."
  value       = module.yoyo.weights_bucket
}

output "gateway_url" {
  description = "Base URL for OpenAI clients (the gateway function's URL + /v1)."
  value       = module.yoyo.gateway_url
}
