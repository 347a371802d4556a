output "instances" {
  description = "The pool's VMs: name => self link."
  value       = { for name, vm in google_compute_instance.vm : name => vm.self_link }
}

output "instance_names" {
  description = "Names of the pool's VMs."
  value       = [for vm in google_compute_instance.vm : vm.name]
}

output "zones" {
  description = "The zone of each of the pool's VMs: name => zone."
  value       = { for name, vm in google_compute_instance.vm : name => vm.zone }
}

output "alert_policy" {
  description = "Resource name of the pool's queue-threshold alert policy."
  value       = google_monitoring_alert_policy.queue.name
}
