locals {
  required_services = toset(concat(
    [
      "cloudfunctions.googleapis.com",
      "run.googleapis.com",
      "cloudbuild.googleapis.com",
      "artifactregistry.googleapis.com",
      "pubsub.googleapis.com",
      "cloudscheduler.googleapis.com",
      "datastore.googleapis.com",
      "firestore.googleapis.com",
      "storage.googleapis.com",
      "iam.googleapis.com",
      "cloudresourcemanager.googleapis.com",
      # Log-based metrics, alert policies, the dashboard and the uptime check (monitoring.tf).
      "logging.googleapis.com",
      "monitoring.googleapis.com",
    ],
    # Only the optional load balancer needs Compute Engine.
    local.lb_enabled ? ["compute.googleapis.com"] : [],
  ))
}

resource "google_project_service" "required" {
  for_each = local.required_services

  project = var.project_id
  service = each.value

  # Other workloads in the project may rely on these APIs; destroying this stack must not switch them off.
  disable_on_destroy = false
}

# The project number names the Pub/Sub service agent, which needs rights for dead-lettering.
data "google_project" "this" {
  project_id = var.project_id

  depends_on = [google_project_service.required]
}
